-- A lock this migration waits 100 ms for (behind a long query or autovacuum on a table it
-- alters) fails it, and run_migrations tries again a moment later: writers queue behind a
-- waiting ALTER TABLE, so it must not wait long.
SET LOCAL lock_timeout = '100ms';
-- Every table it alters, locked at once, big ones first: a writer holds its target table and then
-- needs nodes_ecs for its foreign key, so taking nodes_ecs first would wait on writers that wait
-- on us (a cycle only the lock timeout breaks, over and over).
LOCK TABLE provides_ecs, retrievals_ecs, nodes_ecs IN ACCESS EXCLUSIVE MODE;

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

-- The indexes on the new columns are built concurrently, outside any transaction, by 000009 to
-- 000012: built here they would block every insert into these tables (parsec's Go writers too)
-- until this migration commits, minutes on a table of years of rows. Adding the columns only
-- changes the catalog (nullable, or a constant default), so this transaction is short.
