-- Real fixture entries: ids kept as text (too large for u64), PII redacted, unknown fields in attributes.
SELECT log_id, event_time, source, method, path, status, client_ip, attributes IS NOT NULL AS has_attributes
FROM logs WHERE origin = 'vercel' AND event_time < TIMESTAMP '2025-01-01T00:00:00Z'
ORDER BY event_time, log_id LIMIT 8
