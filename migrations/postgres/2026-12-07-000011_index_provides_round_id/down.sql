DROP INDEX CONCURRENTLY IF EXISTS idx_provides_ecs_round_id;
