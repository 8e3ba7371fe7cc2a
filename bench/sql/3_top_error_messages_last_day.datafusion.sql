-- The most frequent application errors of the last day.
SELECT err_type, err_message, count(*) AS n
FROM logs
WHERE event_time >= TIMESTAMP '2026-11-07T00:00:00Z' AND level IN ('error', 'fatal') AND err_type IS NOT NULL
GROUP BY err_type, err_message ORDER BY n DESC, err_type, err_message LIMIT 10
