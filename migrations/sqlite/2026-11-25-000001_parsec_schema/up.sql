-- The embedded default store: parsec's four *_ecs tables with parsec-rs's columns
-- (migrations/postgres), in the types SQLite has. INET, JSONB and TEXT[] are TEXT (the array as
-- a JSON array), UUIDs are their hyphenated text, timestamps are TIMESTAMP text in UTC.

CREATE TABLE schedulers_ecs
(
    id           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    fleets       TEXT        NOT NULL,
    dependencies TEXT        NOT NULL,
    created_at   TIMESTAMP   NOT NULL
);

CREATE TABLE nodes_ecs
(
    id             INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    cpu            INTEGER     NOT NULL,
    memory         INTEGER     NOT NULL,
    peer_id        TEXT        NOT NULL,
    region         TEXT        NOT NULL,
    cmd            TEXT        NOT NULL,
    fleet          TEXT        NOT NULL,
    dependencies   TEXT        NOT NULL,
    ip_address     TEXT        NOT NULL,
    server_port    INTEGER     NOT NULL,
    peer_port      INTEGER     NOT NULL,
    last_heartbeat TIMESTAMP  ,
    offline_since  TIMESTAMP  ,
    created_at     TIMESTAMP   NOT NULL
);
CREATE INDEX idx_nodes_ecs_fleet ON nodes_ecs (fleet);

CREATE TABLE retrievals_ecs
(
    id             INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    scheduler_id   INTEGER     NOT NULL REFERENCES schedulers_ecs (id) ON DELETE CASCADE,
    node_id        INTEGER     NOT NULL REFERENCES nodes_ecs (id) ON DELETE CASCADE,
    rt_size        INTEGER     NOT NULL,
    duration       DOUBLE      NOT NULL,
    cid            TEXT        NOT NULL,
    error          TEXT,
    created_at     TIMESTAMP   NOT NULL,
    round_id       TEXT,
    started_at     TIMESTAMP  ,
    probe          INTEGER,
    trace_id       TEXT,
    measurement_id TEXT UNIQUE,
    step           TEXT        NOT NULL DEFAULT 'retrieval'
);

CREATE TABLE provides_ecs
(
    id             INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    scheduler_id   INTEGER     NOT NULL REFERENCES schedulers_ecs (id) ON DELETE CASCADE,
    node_id        INTEGER     NOT NULL REFERENCES nodes_ecs (id) ON DELETE CASCADE,
    rt_size        INTEGER     NOT NULL,
    duration       DOUBLE      NOT NULL,
    cid            TEXT        NOT NULL,
    error          TEXT,
    created_at     TIMESTAMP   NOT NULL,
    step           TEXT        NOT NULL,
    round_id       TEXT,
    started_at     TIMESTAMP  ,
    probe          INTEGER,
    trace_id       TEXT,
    measurement_id TEXT UNIQUE
);

CREATE INDEX idx_provides_ecs_created_at ON provides_ecs (created_at);
CREATE INDEX idx_retrievals_ecs_created_at ON retrievals_ecs (created_at);
CREATE INDEX idx_provides_ecs_round_id ON provides_ecs (round_id);
CREATE INDEX idx_retrievals_ecs_round_id ON retrievals_ecs (round_id);
