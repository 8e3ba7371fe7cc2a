-- Request counts by status class per hour.
SELECT date_trunc('hour', time) AS hour, CAST(status / 100 AS INT) * 100 AS class, count(*) AS n
FROM requests WHERE kind = 'http' GROUP BY 1, 2 ORDER BY 1, 2
