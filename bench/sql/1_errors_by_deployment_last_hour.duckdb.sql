SELECT deployment_id, count(*) AS errors
FROM logs
WHERE event_time >= TIMESTAMPTZ '2026-11-07 23:00:00+00' AND (level IN ('error', 'fatal') OR status >= 500)
GROUP BY deployment_id ORDER BY errors DESC, deployment_id
