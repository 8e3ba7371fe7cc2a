COPY logs TO '/tmp/stolen.parquet'
