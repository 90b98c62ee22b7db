-- Built concurrently: inserts into the table go on while it builds (see docs/operations.md,
-- Database). IF NOT EXISTS: databases migrated before this migration have it already.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_retrievals_ecs_created_at ON retrievals_ecs (created_at);
