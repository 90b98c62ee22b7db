-- parsec's schema as its own migrations 000001..000006 leave it
-- (../shared/reference/parsec-postgres-migrations.sql), written so that it also adopts a database
-- a parsec deployment already created: every statement is IF NOT EXISTS, and the step backfill
-- only touches rows without a step.

CREATE TABLE IF NOT EXISTS runs
(
    id           INT GENERATED ALWAYS AS IDENTITY,
    dependencies JSONB       NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ CHECK ( finished_at > started_at ),
    updated_at   TIMESTAMPTZ NOT NULL CHECK ( updated_at >= created_at ),
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS nodes
(
    id            INT GENERATED ALWAYS AS IDENTITY,
    peer_id       TEXT        NOT NULL,
    run_id        INT         NOT NULL,
    region        TEXT        NOT NULL,
    instance_type TEXT        NOT NULL,
    dependencies  JSONB       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT fk_nodes_run_id FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE SET NULL,
    PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS retrievals
(
    id         INT GENERATED ALWAYS AS IDENTITY,
    node_id    INT         NOT NULL,
    rt_size    INT         NOT NULL,
    duration   FLOAT       NOT NULL,
    cid        TEXT        NOT NULL,
    error      TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT fk_retrievals_node FOREIGN KEY (node_id) REFERENCES nodes (id),
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_retrievals_created_at ON retrievals (created_at);

CREATE TABLE IF NOT EXISTS provides
(
    id         INT GENERATED ALWAYS AS IDENTITY,
    node_id    INT         NOT NULL,
    rt_size    INT         NOT NULL,
    duration   FLOAT       NOT NULL,
    cid        TEXT        NOT NULL,
    error      TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT fk_provides_node FOREIGN KEY (node_id) REFERENCES nodes (id),
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_provides_created_at ON provides (created_at);

CREATE TABLE IF NOT EXISTS schedulers_ecs
(
    id           INT GENERATED ALWAYS AS IDENTITY,
    fleets       TEXT[]      NOT NULL,
    dependencies JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS nodes_ecs
(
    id             INT GENERATED ALWAYS AS IDENTITY,
    cpu            INT         NOT NULL,
    memory         INT         NOT NULL,
    peer_id        TEXT        NOT NULL,
    region         TEXT        NOT NULL,
    cmd            TEXT        NOT NULL,
    fleet          TEXT        NOT NULL,
    dependencies   JSONB       NOT NULL,
    ip_address     INET        NOT NULL,
    server_port    SMALLINT    NOT NULL,
    peer_port      SMALLINT    NOT NULL,
    last_heartbeat TIMESTAMPTZ,
    offline_since  TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS retrievals_ecs
(
    id           INT GENERATED ALWAYS AS IDENTITY,
    scheduler_id INT         NOT NULL,
    node_id      INT         NOT NULL,
    rt_size      INT         NOT NULL,
    duration     FLOAT       NOT NULL,
    cid          TEXT        NOT NULL,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT fk_retrievals_ecs_node_id FOREIGN KEY (node_id) REFERENCES nodes_ecs (id) ON DELETE CASCADE,
    CONSTRAINT fk_retrievals_ecs_scheduler_id FOREIGN KEY (scheduler_id) REFERENCES schedulers_ecs (id) ON DELETE CASCADE,
    PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS provides_ecs
(
    id           INT GENERATED ALWAYS AS IDENTITY,
    scheduler_id INT         NOT NULL,
    node_id      INT         NOT NULL,
    rt_size      INT         NOT NULL,
    duration     FLOAT       NOT NULL,
    cid          TEXT        NOT NULL,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT fk_provides_ecs_node_id FOREIGN KEY (node_id) REFERENCES nodes_ecs (id) ON DELETE CASCADE,
    CONSTRAINT fk_provides_ecs_scheduler_id FOREIGN KEY (scheduler_id) REFERENCES schedulers_ecs (id) ON DELETE CASCADE,
    PRIMARY KEY (id)
);

-- Their created_at indexes are built by the concurrent migrations 000007 and 000008: on a
-- database parsec's Go services filled, an index built here would block their inserts.

-- parsec's 000006: the step of a provide ('availability' for the cid.contact fleet).
ALTER TABLE provides_ecs ADD COLUMN IF NOT EXISTS step TEXT;
UPDATE provides_ecs
SET step = CASE WHEN n.fleet = 'cid.contact' THEN 'availability' ELSE 'provide' END
FROM nodes_ecs n
WHERE provides_ecs.node_id = n.id AND provides_ecs.step IS NULL;
ALTER TABLE provides_ecs ALTER COLUMN step SET NOT NULL;
