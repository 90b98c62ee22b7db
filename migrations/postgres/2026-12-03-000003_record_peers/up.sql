-- A lock this migration waits 100 ms for (behind a long query or autovacuum on a table it
-- alters) fails it, and run_migrations tries again a moment later: writers queue behind a
-- waiting ALTER TABLE, so it must not wait long.
SET LOCAL lock_timeout = '100ms';

-- How many peers a provide sent its record to (each answered the provide's own lookup). NULL when
-- the server did not say (parsec's Go servers) or the provide failed before storing.
ALTER TABLE provides_ecs ADD COLUMN record_peers INTEGER;
