-- Flow envelopes (pino lines with flow and outcome) are rows of kind 'envelope'.
SELECT envelope, outcome, flow, count(*) AS n FROM requests WHERE kind = 'envelope'
GROUP BY envelope, outcome, flow ORDER BY envelope, outcome
