-- PostgreSQL twin of migrations/sqlite/0012_many_nodes.sql.

ALTER TABLE recipients ADD COLUMN lease_holder TEXT;
CREATE INDEX recipients_by_lease ON recipients (lease_holder) WHERE state = 'inflight';

-- An account's addresses in the order they were given (the first is the default sender).
-- Rows from before this migration keep an arbitrary order among themselves, as PostgreSQL
-- never promised one.
ALTER TABLE account_addresses ADD COLUMN position BIGINT NOT NULL DEFAULT 0;

CREATE TABLE leases (
    name   TEXT   PRIMARY KEY,
    holder TEXT   NOT NULL,
    until  BIGINT NOT NULL
);
