-- PostgreSQL twin of migrations/sqlite/0008_staff.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- Staff accounts sign in to the web as well as to SMTP submission: the accounts of 0003 gain
-- what web sign-in needs. Roles (checked by the application): admin, compliance, sender,
-- api_only. The unused "mfa" placeholder of 0003 gives way to explicit columns.
ALTER TABLE accounts DROP COLUMN mfa;
-- 0003 took any role text; what is not one of the four roles becomes a sender (the least
-- privilege that keeps SMTP submission working) rather than an account that cannot be read.
UPDATE accounts SET role = 'sender' WHERE role NOT IN ('admin', 'compliance', 'sender', 'api_only');
ALTER TABLE accounts ADD COLUMN totp BYTEA;              -- sealed TOTP secret; NULL: none
ALTER TABLE accounts ADD COLUMN totp_pending BYTEA;      -- sealed TOTP secret being set up
ALTER TABLE accounts ADD COLUMN totp_last_step BIGINT; -- last accepted time step (no replay)
ALTER TABLE accounts ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN first_failure_at BIGINT;
ALTER TABLE accounts ADD COLUMN locked_until BIGINT;

-- WebAuthn security keys. The credential (public key, counter) is sealed under the
-- account's data key; the credential id is kept in clear so that one key cannot be
-- registered to two accounts.
CREATE TABLE staff_security_keys (
    id            TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    credential_id BYTEA    NOT NULL UNIQUE,
    credential    BYTEA    NOT NULL,   -- sealed webauthn-rs SecurityKey (JSON)
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX staff_security_keys_by_account ON staff_security_keys (account_id);

-- Signed-in staff browsers: only a SHA-256 of the session id is stored.
CREATE TABLE staff_sessions (
    id_hash      BYTEA    PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stage        TEXT    NOT NULL,      -- full | mfa (second factor due) | enroll (must set one up)
    ceremony     TEXT,                  -- a WebAuthn ceremony in progress (webauthn-rs state, JSON)
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL       -- absolute end
);
CREATE INDEX staff_sessions_by_account ON staff_sessions (account_id);

-- Client addresses each account signed in from, as keyed hashes: a sign-in from an address
-- not in here sends the account a notice.
CREATE TABLE staff_seen_ips (
    account_id    TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    ip_hash       BYTEA    NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, ip_hash)
);

-- Organization-wide settings an administrator changes at run time (require_mfa: on | off).
CREATE TABLE org_settings (
    tenant     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT    NOT NULL,
    PRIMARY KEY (tenant, name)
);
