-- The definition columns of slo_status (the state columns change with time).
SELECT name, flow, objective, period, sli_kind, threshold_ms, runbook FROM slo_status ORDER BY name
