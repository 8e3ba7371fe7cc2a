-- Exact p50/p95 latency by route per 5 minutes.
SELECT date_bin(INTERVAL '5 minutes', time) AS bucket, flow, count(*) AS n,
       median(latency_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms
FROM requests
WHERE flow IS NOT NULL AND time >= TIMESTAMP '2026-11-30T10:00:00Z'
GROUP BY 1, 2 ORDER BY 1, 2
