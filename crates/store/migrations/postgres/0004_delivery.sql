-- PostgreSQL twin of migrations/sqlite/0004_delivery.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- Outbound delivery: the suppression list and DKIM signing keys.

-- Addresses carepost must not send to (hard bounces; later complaints and unsubscribes).
-- The address is PHI: looked up by its blind index, kept sealed under the entry's own data
-- key (object "supp/<id>") for listing. Removing an entry shreds that key.
CREATE TABLE suppressions (
    tenant        TEXT    NOT NULL,
    address_index BYTEA    NOT NULL,   -- blind index "rcpt" of the lowercased address
    id            TEXT    NOT NULL,
    address       BYTEA    NOT NULL,   -- sealed: the address
    reason        TEXT    NOT NULL,   -- hard-bounce | complaint | unsubscribe | manual
    detail        BYTEA,               -- sealed: the remote reply or the operator's note
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant, address_index)
);

-- DKIM keys per signing domain. The private key is sealed under its own data key (object
-- "dkim/<id>"). A key signs from active_from until a newer key of the same algorithm is
-- active, and stays published until retired_at.
CREATE TABLE dkim_keys (
    id          TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    selector    TEXT    NOT NULL,
    algorithm   TEXT    NOT NULL,     -- ed25519 | rsa
    public_key  BYTEA    NOT NULL,     -- as published in DNS (p=)
    private_key BYTEA    NOT NULL,     -- sealed PKCS#8
    created_at  BIGINT NOT NULL,
    active_from BIGINT NOT NULL,
    retired_at  BIGINT,
    UNIQUE (domain, selector)
);
CREATE INDEX dkim_keys_by_domain ON dkim_keys (domain, active_from);
