SELECT * FROM read_parquet('/etc/passwd')
