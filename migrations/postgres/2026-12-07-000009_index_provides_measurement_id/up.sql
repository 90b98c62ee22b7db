-- Built concurrently: inserts into the table go on while it builds (see docs/operations.md,
-- Database). IF NOT EXISTS: databases migrated before this migration have it already.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_provides_ecs_measurement_id ON provides_ecs (measurement_id);
