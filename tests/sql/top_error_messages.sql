-- Error signatures of pino lines (err.type and err.message).
SELECT err_type, err_message, count(*) AS n FROM logs WHERE err_type IS NOT NULL
GROUP BY err_type, err_message ORDER BY n DESC, err_type, err_message
