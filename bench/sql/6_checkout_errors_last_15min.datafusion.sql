-- A responder's first question: checkout failures in the last 15 minutes, by status.
SELECT status, count(*) AS requests
FROM requests
WHERE time >= TIMESTAMP '2026-11-07T23:45:00Z' AND flow = 'subscribe_checkout' AND outcome = 'failure'
GROUP BY status ORDER BY status
