-- PostgreSQL twin of migrations/sqlite/0001_foundation.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- Tenant and installation secrets, wrapped under the master key.
CREATE TABLE vault_secrets (
    scope         TEXT    NOT NULL,
    purpose       TEXT    NOT NULL,
    version       BIGINT NOT NULL,
    master_key_id TEXT    NOT NULL,
    wrapped       BYTEA    NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, purpose, version)
);

-- One data key per sealed object, wrapped under the tenant's kek. Deleting a row
-- crypto-shreds the object.
CREATE TABLE data_keys (
    tenant      TEXT    NOT NULL,
    object      TEXT    NOT NULL,
    kek_version BIGINT NOT NULL,
    wrapped     BYTEA    NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, object)
);
CREATE INDEX data_keys_by_kek ON data_keys (tenant, kek_version);

-- The hash-chained audit log. Rows are only ever inserted.
CREATE TABLE audit_records (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    source_ip TEXT,
    outcome   TEXT    NOT NULL,
    details   TEXT    NOT NULL,
    prev_hash BYTEA    NOT NULL,
    hash      BYTEA    NOT NULL
);

-- Signed statements "the chain up to seq had this hash".
CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      BYTEA    NOT NULL,
    at        BIGINT NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BYTEA    NOT NULL
);
