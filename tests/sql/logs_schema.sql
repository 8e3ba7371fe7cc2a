-- The documented schema of logs (docs/schema.md).
SELECT column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_name = 'logs' ORDER BY ordinal_position
