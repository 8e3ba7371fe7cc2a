-- Errors by deployment within a time range (prunes hour partitions).
SELECT deployment_id, count(*) AS requests, count(*) FILTER (WHERE outcome = 'failure') AS errors
FROM requests
WHERE time >= TIMESTAMP '2026-11-30T10:00:00Z' AND time < TIMESTAMP '2026-11-30T10:10:00Z'
GROUP BY deployment_id ORDER BY deployment_id
