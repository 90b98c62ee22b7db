-- (The indexes on these columns are dropped by the down migrations of 000009..000012; a
-- database migrated before they existed has them from here.)
DROP INDEX IF EXISTS idx_provides_ecs_measurement_id, idx_retrievals_ecs_measurement_id,
    idx_provides_ecs_round_id, idx_retrievals_ecs_round_id;
ALTER TABLE retrievals_ecs
    DROP COLUMN step,
    DROP COLUMN measurement_id,
    DROP COLUMN trace_id,
    DROP COLUMN probe,
    DROP COLUMN started_at,
    DROP COLUMN round_id;

ALTER TABLE provides_ecs
    DROP COLUMN measurement_id,
    DROP COLUMN trace_id,
    DROP COLUMN probe,
    DROP COLUMN started_at,
    DROP COLUMN round_id;

DROP INDEX idx_nodes_ecs_fleet_online;
-- Narrowing fails loudly if a stored port does not fit parsec's SMALLINT.
ALTER TABLE nodes_ecs ALTER COLUMN peer_port TYPE SMALLINT;
ALTER TABLE nodes_ecs ALTER COLUMN server_port TYPE SMALLINT;
