INSERT INTO logs (log_id) VALUES ('x')
