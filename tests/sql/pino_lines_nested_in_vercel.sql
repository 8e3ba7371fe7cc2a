-- pino lines found inside Vercel messages keep the Vercel request id, and pino's level wins.
SELECT l.request_id, l.level, l.message, r.status, r.flow
FROM logs l JOIN requests r ON l.request_id = r.request_id
WHERE l.origin = 'vercel' AND l.type = 'stdout' AND l.level <> 'info'
ORDER BY l.request_id, l.log_id
