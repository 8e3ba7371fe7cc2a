SELECT time_bucket(INTERVAL '5 minutes', time) AS bucket, flow, count(*) AS requests,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms
FROM requests
WHERE time >= TIMESTAMPTZ '2026-11-07 00:00:00+00' AND flow IS NOT NULL
GROUP BY 1, 2 ORDER BY 1, 2
