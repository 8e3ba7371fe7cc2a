-- p95 latency per flow (Warrant's routes) per 5 minutes over the last day: exact percentiles.
SELECT date_bin(INTERVAL '5 minutes', time) AS bucket, flow, count(*) AS requests,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms
FROM requests
WHERE time >= TIMESTAMP '2026-11-07T00:00:00Z' AND flow IS NOT NULL
GROUP BY 1, 2 ORDER BY 1, 2
