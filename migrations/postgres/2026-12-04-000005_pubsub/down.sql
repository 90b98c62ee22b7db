DROP TABLE pubsub_deliveries_ecs;
DROP TABLE pubsub_publishes_ecs;
