SELECT err_type, err_message, count(*) AS n
FROM logs
WHERE event_time >= TIMESTAMPTZ '2026-11-07 00:00:00+00' AND level IN ('error', 'fatal') AND err_type IS NOT NULL
GROUP BY err_type, err_message ORDER BY n DESC, err_type, err_message LIMIT 10
