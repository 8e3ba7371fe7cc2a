-- Errors by deployment in the last hour of the data.
SELECT deployment_id, count(*) AS errors
FROM logs
WHERE event_time >= TIMESTAMP '2026-11-07T23:00:00Z' AND (level IN ('error', 'fatal') OR status >= 500)
GROUP BY deployment_id ORDER BY errors DESC, deployment_id
