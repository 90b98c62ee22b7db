-- What the measuring server does with its connections when an operation ends: 'warm' (as
-- parsec's Go servers: only a found provider's connection is closed) or 'cold' (every connection
-- is closed, so the next operation dials afresh). NULL when the server did not say (parsec's).
-- Nullable with no default: adding it rewrites no row and takes no long lock.
ALTER TABLE provides_ecs ADD COLUMN connections TEXT;
ALTER TABLE retrievals_ecs ADD COLUMN connections TEXT;
