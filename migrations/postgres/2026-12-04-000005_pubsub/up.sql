-- Pubsub rounds beside parsec's tables: one row per published message and one per receiver of
-- it, with the identity columns every measurement row of parsec-rs has (round, measurement id,
-- trace, start). started_at is the publisher's send (wall clock) in both; a delivery's arrival is
-- started_at + duration. Durations are seconds, as in parsec's tables.

CREATE TABLE pubsub_publishes_ecs
(
    id             SERIAL PRIMARY KEY,
    scheduler_id   INTEGER          NOT NULL REFERENCES schedulers_ecs (id) ON DELETE CASCADE,
    node_id        INTEGER          NOT NULL REFERENCES nodes_ecs (id) ON DELETE CASCADE,
    round_id       UUID             NOT NULL,
    measurement_id UUID             NOT NULL UNIQUE,
    trace_id       TEXT,
    started_at     TIMESTAMPTZ      NOT NULL,
    topic          TEXT             NOT NULL,
    message_id     TEXT             NOT NULL,
    message_bytes  INTEGER          NOT NULL,
    -- From the send to the last receiver's first copy; the whole deadline when one never got it.
    duration       DOUBLE PRECISION NOT NULL,
    -- Why not every receiver got it, or why gossipsub refused to publish.
    error          TEXT,
    -- Subscribed peers the publisher knew, and its mesh peers of the topic, at the send.
    topic_peers    INTEGER,
    mesh_peers     INTEGER
);
CREATE INDEX idx_pubsub_publishes_ecs_round_id ON pubsub_publishes_ecs (round_id);
CREATE INDEX idx_pubsub_publishes_ecs_started_at ON pubsub_publishes_ecs (started_at);

CREATE TABLE pubsub_deliveries_ecs
(
    id                SERIAL PRIMARY KEY,
    scheduler_id      INTEGER          NOT NULL REFERENCES schedulers_ecs (id) ON DELETE CASCADE,
    node_id           INTEGER          NOT NULL REFERENCES nodes_ecs (id) ON DELETE CASCADE,
    round_id          UUID             NOT NULL,
    measurement_id    UUID             NOT NULL UNIQUE,
    trace_id          TEXT,
    started_at        TIMESTAMPTZ      NOT NULL,
    topic             TEXT             NOT NULL,
    message_id        TEXT             NOT NULL,
    -- From the publisher's send to this receiver's first copy (`error` set: not by the deadline).
    duration          DOUBLE PRECISION NOT NULL,
    error             TEXT,
    -- Copies received, the first included (0: none).
    copies            INTEGER          NOT NULL,
    -- The peer that forwarded the first copy: the publisher's own id when it came in one hop
    -- (gossipsub does not say how many hops a copy took otherwise).
    first_from        TEXT,
    -- Across processes: this receiver's clock minus the scheduler's, and the bound of its error
    -- (seconds); NULL when publisher and receiver share a clock.
    clock_offset      DOUBLE PRECISION,
    clock_uncertainty DOUBLE PRECISION,
    -- The receiver's libp2p implementation.
    implementation    TEXT             NOT NULL DEFAULT 'rust-libp2p'
);
CREATE INDEX idx_pubsub_deliveries_ecs_round_id ON pubsub_deliveries_ecs (round_id);
CREATE INDEX idx_pubsub_deliveries_ecs_started_at ON pubsub_deliveries_ecs (started_at);
