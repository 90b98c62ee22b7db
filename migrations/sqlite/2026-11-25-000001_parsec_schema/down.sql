DROP TABLE provides_ecs;
DROP TABLE retrievals_ecs;
DROP TABLE nodes_ecs;
DROP TABLE schedulers_ecs;
