SELECT status, count(*) AS requests
FROM requests
WHERE time >= TIMESTAMPTZ '2026-11-01 00:00:00+00'
GROUP BY status ORDER BY status
