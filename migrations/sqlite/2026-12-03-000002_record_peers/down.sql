ALTER TABLE provides_ecs DROP COLUMN record_peers;
