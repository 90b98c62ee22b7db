DROP TABLE reprovide_regions_ecs;
DROP TABLE reprovide_observations_ecs;
DROP TABLE reprovide_rounds_ecs;
