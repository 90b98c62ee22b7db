-- What parsec-rs adds to parsec's schema. Every new column is nullable or has a default, so
-- parsec's own Go servers and schedulers keep writing to the same tables unchanged.

-- Ports above 32767 overflow parsec's SMALLINT.
ALTER TABLE nodes_ecs ALTER COLUMN server_port TYPE INTEGER;
ALTER TABLE nodes_ecs ALTER COLUMN peer_port TYPE INTEGER;
-- Discovery: the online nodes of a fleet.
CREATE INDEX idx_nodes_ecs_fleet_online ON nodes_ecs (fleet) WHERE offline_since IS NULL;

ALTER TABLE provides_ecs
    -- The round the row belongs to: joins a provide with its retrievals without matching CIDs.
    ADD COLUMN round_id       UUID,
    -- Wall-clock start of the operation (created_at is when it finished).
    ADD COLUMN started_at     TIMESTAMPTZ,
    -- Which repetition of the operation within the round (0 for the first).
    ADD COLUMN probe          INTEGER,
    -- The OpenTelemetry trace of the round (hex), when tracing is on.
    ADD COLUMN trace_id       TEXT,
    -- Unique per measurement: a batch retried after an ambiguous failure is stored once.
    ADD COLUMN measurement_id UUID;

ALTER TABLE retrievals_ecs
    ADD COLUMN round_id       UUID,
    ADD COLUMN started_at     TIMESTAMPTZ,
    ADD COLUMN probe          INTEGER,
    ADD COLUMN trace_id       TEXT,
    ADD COLUMN measurement_id UUID,
    -- The step of a retrieval, as provides_ecs has had since parsec's 000006.
    ADD COLUMN step           TEXT NOT NULL DEFAULT 'retrieval';

CREATE UNIQUE INDEX idx_provides_ecs_measurement_id ON provides_ecs (measurement_id);
CREATE UNIQUE INDEX idx_retrievals_ecs_measurement_id ON retrievals_ecs (measurement_id);
CREATE INDEX idx_provides_ecs_round_id ON provides_ecs (round_id);
CREATE INDEX idx_retrievals_ecs_round_id ON retrievals_ecs (round_id);
