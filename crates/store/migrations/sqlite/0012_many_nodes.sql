-- Several nodes on one store (PostgreSQL), and the same schema on SQLite so that both
-- backends pass one test suite.

-- Which node holds an in-flight recipient's lease: a live node renews its own leases, and
-- a dead node's run out and are claimed again by another.
ALTER TABLE recipients ADD COLUMN lease_holder TEXT;
CREATE INDEX recipients_by_lease ON recipients (lease_holder) WHERE state = 'inflight';

-- An account's addresses in the order they were given (the first is the default sender).
-- SQLite kept that order in rowid, which PostgreSQL does not have.
ALTER TABLE account_addresses ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
UPDATE account_addresses SET position = rowid;

-- Singleton jobs (portal expiry sweep, webhook dispatch, retention sweeps): one node at a
-- time holds a job's lease until `until` (microseconds) and renews it while it runs.
CREATE TABLE leases (
    name   TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
);
