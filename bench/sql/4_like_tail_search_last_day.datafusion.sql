-- A tail search: the newest lines of the last day that mention ECONNRESET.
SELECT event_time, request_id, message
FROM logs
WHERE event_time >= TIMESTAMP '2026-11-07T00:00:00Z' AND message LIKE '%ECONNRESET%'
ORDER BY event_time DESC, request_id LIMIT 50
