-- The Vercel fixtures keep their source and type; static hits are requests too.
SELECT source, type, count(*) AS n FROM logs WHERE origin = 'vercel' GROUP BY source, type ORDER BY source, type
