-- PostgreSQL twin of migrations/sqlite/0010_attempts_and_mta_sts.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- Wrong passphrases tried on a portal message. Each try reserves one here before the
-- passphrase is compared (and gives it back when it was right), so no number of parallel
-- guesses gets more than `web.code_attempts` comparisons, and a restart forgets nothing.
ALTER TABLE portal_messages ADD COLUMN passphrase_failures BIGINT NOT NULL DEFAULT 0;

-- MTA-STS policies learned from recipient domains (RFC 8461 section 5.1: a policy is kept
-- until its max_age runs out, across restarts). The domain is kept as a blind index and the
-- policy sealed under the row's own data key (object "mta-sts/<hex of domain_index>"): a
-- recipient's domain is part of their address.
CREATE TABLE mta_sts_policies (
    domain_index BYTEA    PRIMARY KEY,   -- blind index "mta-sts-domain" of the lowercased domain
    policy       BYTEA    NOT NULL,      -- sealed: the policy id and the policy file as fetched
    fetched_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL       -- fetched_at + max_age
);
