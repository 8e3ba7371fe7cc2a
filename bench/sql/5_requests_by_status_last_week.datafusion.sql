-- Request counts by status over the week.
SELECT status, count(*) AS requests
FROM requests
WHERE time >= TIMESTAMP '2026-11-01T00:00:00Z'
GROUP BY status ORDER BY status
