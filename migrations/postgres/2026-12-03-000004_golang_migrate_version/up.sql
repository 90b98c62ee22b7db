-- parsec's Go services run golang-migrate at start. On a database without its bookkeeping table
-- they would apply their migration 000001 again and fail at `CREATE TABLE runs`. Our first
-- migration leaves the schema exactly as their 000001..000006 do, so record that: version 6, not
-- dirty. A database parsec created already has the row, and keeps it.
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version BIGINT  NOT NULL PRIMARY KEY,
    dirty   BOOLEAN NOT NULL
);
INSERT INTO schema_migrations (version, dirty)
SELECT 6, FALSE
WHERE NOT EXISTS (SELECT 1 FROM schema_migrations);
