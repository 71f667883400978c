-- PostgreSQL twin of migrations/sqlite/0003_accounts.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- Local accounts that sign in to SMTP submission (and later the portal and console).
-- The login name and the addresses an account may send as are usually e-mail addresses, so
-- they are sealed under the account's own data key (object "account/<id>") and found through
-- blind indexes. Room for later: role is free text checked by the application, mfa holds the
-- second factor's sealed settings.
CREATE TABLE accounts (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    login_index   BYTEA    NOT NULL,   -- blind index of the lowercased login name
    login         BYTEA    NOT NULL,   -- sealed login name
    role          TEXT    NOT NULL DEFAULT 'sender',
    password_hash TEXT,               -- argon2id PHC string; NULL: no password sign-in
    mfa           BYTEA,               -- sealed second-factor settings; NULL: none
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (tenant, login_index)
);

-- The addresses an account may use as the envelope sender.
CREATE TABLE account_addresses (
    account_id    TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    tenant        TEXT    NOT NULL,
    address_index BYTEA    NOT NULL,   -- blind index of the lowercased address
    address       BYTEA    NOT NULL,   -- sealed address
    PRIMARY KEY (account_id, address_index)
);
CREATE INDEX account_addresses_by_address ON account_addresses (tenant, address_index);

-- Per-application passwords: random secrets stored as a keyed hash, named, revocable.
CREATE TABLE app_passwords (
    id           TEXT    PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    secret_hash  BYTEA    NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    UNIQUE (account_id, name)
);

-- Client networks refused at connection time: added by hand or after repeated
-- authentication failures.
CREATE TABLE blocks (
    network    TEXT    PRIMARY KEY,   -- an address or CIDR network, canonical form
    until      BIGINT,               -- NULL: until removed
    reason     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,      -- 'smtp' for automatic blocks, else the operator
    created_at BIGINT NOT NULL
);
