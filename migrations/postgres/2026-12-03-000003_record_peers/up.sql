-- How many peers a provide sent its record to (each answered the provide's own lookup). NULL when
-- the server did not say (parsec's Go servers) or the provide failed before storing.
ALTER TABLE provides_ecs ADD COLUMN record_peers INTEGER;
