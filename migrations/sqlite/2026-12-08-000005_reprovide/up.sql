-- Reprovide rounds beside parsec's tables (the embedded store's types; see the Postgres
-- migration): one row per round (a node sends the provider records of all its CIDs again with
-- one strategy) and one per prefix a sweep walked (its regions' records, sent after one
-- exploration). Durations are seconds, as in parsec's tables.

CREATE TABLE reprovide_rounds_ecs
(
    id             INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    scheduler_id   INTEGER          NOT NULL REFERENCES schedulers_ecs (id) ON DELETE CASCADE,
    -- The providing node.
    node_id        INTEGER          NOT NULL REFERENCES nodes_ecs (id) ON DELETE CASCADE,
    round_id       TEXT             NOT NULL,
    measurement_id TEXT             NOT NULL UNIQUE,
    trace_id       TEXT,
    started_at     TIMESTAMP        NOT NULL,
    -- 'classic' (a provide per CID) or 'sweep' (region by region), and the walks at once.
    strategy       TEXT             NOT NULL,
    workers        INTEGER          NOT NULL,
    cids           BIGINT           NOT NULL,
    -- From the round's start to its last record's acknowledgement or failure.
    duration       DOUBLE           NOT NULL,
    error          TEXT,
    lookups        BIGINT           NOT NULL,
    -- Requests sent (lookup queries and ADD_PROVIDERs), those that failed, records acknowledged.
    messages       BIGINT           NOT NULL,
    failures       BIGINT           NOT NULL,
    copies_stored  BIGINT           NOT NULL
);
CREATE INDEX idx_reprovide_rounds_ecs_started_at ON reprovide_rounds_ecs (started_at);

-- What was measured around a round, one row per round (diesel's tables stay within 16 columns).
CREATE TABLE reprovide_observations_ecs
(
    id                   INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    round_measurement_id TEXT NOT NULL UNIQUE REFERENCES reprovide_rounds_ecs (measurement_id) ON DELETE CASCADE,
    -- Provides (classic) or prefixes walked (sweep).
    walks                INTEGER NOT NULL,
    -- Where measured: connections the provider opened or accepted, bytes it wrote to its protocol
    -- streams, CPU seconds and peak resident bytes of its work.
    connections          BIGINT,
    bytes_out            BIGINT,
    cpu                  DOUBLE,
    peak_memory          BIGINT,
    -- Afterwards: sampled CIDs and those another peer found; (sampled CID, true closest peer)
    -- pairs and those whose peer holds the record.
    sampled              INTEGER NOT NULL,
    found                INTEGER NOT NULL,
    placements           INTEGER NOT NULL,
    placed               INTEGER NOT NULL
);

CREATE TABLE reprovide_regions_ecs
(
    id                   INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    round_measurement_id TEXT             NOT NULL REFERENCES reprovide_rounds_ecs (measurement_id) ON DELETE CASCADE,
    -- The walk's place among the round's walks, in the order they ended.
    walk                 INTEGER          NOT NULL,
    -- The prefix scheduled, as bits ('ε' for the whole key space).
    prefix               TEXT             NOT NULL,
    -- Regions the explored prefix was cut into that held CIDs, and the peers found under it.
    regions              INTEGER          NOT NULL,
    peers                INTEGER          NOT NULL,
    cids                 BIGINT           NOT NULL,
    lookups              BIGINT           NOT NULL,
    messages             BIGINT           NOT NULL,
    failures             BIGINT           NOT NULL,
    copies_stored        BIGINT           NOT NULL,
    duration             DOUBLE           NOT NULL,
    UNIQUE (round_measurement_id, walk)
);
