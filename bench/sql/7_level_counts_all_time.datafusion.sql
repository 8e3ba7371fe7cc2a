-- Not time-bounded: log lines by level over the whole archive (a full scan of one column).
SELECT level, count(*) AS n FROM logs GROUP BY level ORDER BY level
