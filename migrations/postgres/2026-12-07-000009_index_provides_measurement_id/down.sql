DROP INDEX CONCURRENTLY IF EXISTS idx_provides_ecs_measurement_id;
