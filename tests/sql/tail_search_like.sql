-- A tail search: newest lines that mention a word, newest first.
SELECT event_time, log_id, level, message FROM logs
WHERE message LIKE '%Stripe%' OR err_message LIKE '%Stripe%'
ORDER BY event_time DESC, log_id LIMIT 5
