-- One request record per HTTP request, with the flow it counted in.
SELECT flow, status, outcome, count(*) AS n FROM requests WHERE kind = 'http' GROUP BY flow, status, outcome ORDER BY flow NULLS LAST, status, outcome
