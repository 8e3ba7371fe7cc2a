-- The catalog's flows.
SELECT * FROM flows ORDER BY name
