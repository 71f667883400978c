-- PostgreSQL twin of migrations/sqlite/0005_recipient_keys.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- The recipient key directory: S/MIME certificates and OpenPGP keys of correspondents,
-- imported by an operator, learned from signed mail, or found through WKD. A key names its
-- holder, so the address and the key itself are sealed (object "key/<id>").
CREATE TABLE recipient_keys (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,   -- smime | pgp
    address_index BYTEA    NOT NULL,
    address       BYTEA    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    material      BYTEA    NOT NULL,   -- certificate DER or binary OpenPGP key, sealed
    source        TEXT    NOT NULL,   -- import | learned | wkd
    capabilities  TEXT,               -- JSON list of S/MIME capability OIDs the holder advertised
    not_after     BIGINT,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant, kind, address_index, fingerprint)
);
CREATE INDEX recipient_keys_by_address ON recipient_keys (tenant, address_index);

-- When a network look-up (WKD) for an address last ran, so that misses are not retried on
-- every message.
CREATE TABLE key_lookups (
    tenant        TEXT    NOT NULL,
    address_index BYTEA    NOT NULL,
    method        TEXT    NOT NULL,
    checked_at    BIGINT NOT NULL,
    found         BIGINT NOT NULL,   -- 0 nothing published, 1 found, 2 look-up failed
    PRIMARY KEY (tenant, address_index, method)
);
