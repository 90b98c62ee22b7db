-- Reverting ours reverts parsec's schema too (see the first migration's down), bookkeeping included.
DROP TABLE IF EXISTS schema_migrations;
