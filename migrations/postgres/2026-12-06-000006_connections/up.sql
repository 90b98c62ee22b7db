-- A lock this migration waits 100 ms for (behind a long query or autovacuum on a table it
-- alters) fails it, and run_migrations tries again a moment later: writers queue behind a
-- waiting ALTER TABLE, so it must not wait long.
SET LOCAL lock_timeout = '100ms';

-- What the measuring server does with its connections when an operation ends: 'warm' (as
-- parsec's Go servers: only a found provider's connection is closed) or 'cold' (every connection
-- is closed, so the next operation dials afresh). NULL when the server did not say (parsec's).
-- Nullable with no default: adding it rewrites no row and takes no long lock.
ALTER TABLE provides_ecs ADD COLUMN connections TEXT;
ALTER TABLE retrievals_ecs ADD COLUMN connections TEXT;
