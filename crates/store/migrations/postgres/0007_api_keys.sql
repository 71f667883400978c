-- PostgreSQL twin of migrations/sqlite/0007_api_keys.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- API keys for the REST API. Only a SHA-256 of the key is stored: the key is 256 random bits,
-- so a plain hash is enough and the key cannot be recovered from the database. The prefix
-- (the key's first characters) is what operators see to tell keys apart.
CREATE TABLE api_keys (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    prefix        TEXT    NOT NULL,
    secret_hash   BYTEA    NOT NULL UNIQUE,
    scopes        TEXT    NOT NULL,     -- comma-separated: send, status, admin
    networks      TEXT    NOT NULL DEFAULT '',  -- comma-separated CIDRs the key may be used from; empty: any
    rate_per_minute BIGINT NOT NULL,   -- requests the key may make per minute
    expires_at    BIGINT,              -- NULL: never
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);

-- Messages submitted through the API: which key sent them, and the Idempotency-Key it gave
-- (SHA-256 of key id and the header value), so a retried request returns the first message.
CREATE TABLE api_messages (
    message_id       TEXT    PRIMARY KEY,
    key_id           TEXT    NOT NULL REFERENCES api_keys (id),
    tenant           TEXT    NOT NULL,
    idempotency_hash BYTEA,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX api_messages_idempotency ON api_messages (key_id, idempotency_hash);
