-- Every log line, by where it came from and its normalized level.
SELECT origin, level, count(*) AS n FROM logs GROUP BY origin, level ORDER BY origin, level
