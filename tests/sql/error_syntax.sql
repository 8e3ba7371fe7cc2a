SELEC count(*) FROM logs
