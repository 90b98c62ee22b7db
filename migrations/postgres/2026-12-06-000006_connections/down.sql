ALTER TABLE retrievals_ecs DROP COLUMN connections;
ALTER TABLE provides_ecs DROP COLUMN connections;
