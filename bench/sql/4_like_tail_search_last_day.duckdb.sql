SELECT event_time, request_id, message
FROM logs
WHERE event_time >= TIMESTAMPTZ '2026-11-07 00:00:00+00' AND message LIKE '%ECONNRESET%'
ORDER BY event_time DESC, request_id LIMIT 50
