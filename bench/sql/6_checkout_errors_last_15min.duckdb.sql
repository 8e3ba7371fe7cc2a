SELECT status, count(*) AS requests
FROM requests
WHERE time >= TIMESTAMPTZ '2026-11-07 23:45:00+00' AND flow = 'subscribe_checkout' AND outcome = 'failure'
GROUP BY status ORDER BY status
