DROP INDEX CONCURRENTLY IF EXISTS idx_retrievals_ecs_round_id;
