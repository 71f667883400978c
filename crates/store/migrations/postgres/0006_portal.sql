-- PostgreSQL twin of migrations/sqlite/0006_portal.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- The secure portal. A message kept for pick-up is one row per recipient, sealed under its
-- own data key (object "portal/<id>"): deleting that key shreds the copy (retraction,
-- expiry). Who the recipient is and when and from where they opened it are sealed under a
-- second key (object "portal-track/<id>") that outlives the content, so the sender can still
-- see the opens of a withdrawn message.
CREATE TABLE portal_messages (
    id              TEXT    PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    source_message  TEXT    NOT NULL,   -- the queue message it came from
    recipient_index BYTEA    NOT NULL,   -- blind index "portal-rcpt" of the lowercased address
    recipient       BYTEA    NOT NULL,   -- sealed (portal-track): the address
    envelope        BYTEA    NOT NULL,   -- sealed (portal): sender, subject, participants, passphrase hash
    body_blob       TEXT    NOT NULL,   -- sealed (portal): the message as received
    size            BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    state           TEXT    NOT NULL,   -- active | retracted | expired
    withdrawn_at    BIGINT,
    withdrawn_by    TEXT
);
CREATE INDEX portal_messages_by_recipient ON portal_messages (tenant, recipient_index, created_at);
CREATE INDEX portal_messages_due ON portal_messages (state, expires_at);

-- Single-purpose links: only a SHA-256 of the token is stored.
CREATE TABLE portal_tokens (
    token_hash BYTEA    PRIMARY KEY,
    purpose    TEXT    NOT NULL,        -- pickup (the recipient) | sender (status and retraction)
    message_id TEXT    NOT NULL REFERENCES portal_messages (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

-- When and from where a recipient opened a message: sealed (portal-track) JSON.
CREATE TABLE portal_opens (
    message_id TEXT    NOT NULL REFERENCES portal_messages (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    detail     BYTEA    NOT NULL,
    PRIMARY KEY (message_id, seq)
);

-- Recipients who proved their address and set a password. Sealed under "portal-account/<id>".
CREATE TABLE portal_accounts (
    id              TEXT    PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    address_index   BYTEA    NOT NULL,   -- blind index "portal-rcpt", as on portal_messages
    address         BYTEA    NOT NULL,   -- sealed address
    password_hash   TEXT,               -- argon2id PHC string; NULL until set
    totp            BYTEA,               -- sealed TOTP secret; NULL: none
    totp_pending    BYTEA,               -- sealed TOTP secret being set up
    totp_last_step  BIGINT,            -- last accepted time step (no replay)
    failures        BIGINT NOT NULL DEFAULT 0,
    first_failure_at BIGINT,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (tenant, address_index)
);

-- Signed-in browsers: only a SHA-256 of the session id is stored.
CREATE TABLE portal_sessions (
    id_hash      BYTEA    PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES portal_accounts (id) ON DELETE CASCADE,
    stage        TEXT    NOT NULL,      -- full | totp (password given, second factor due)
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL       -- absolute end
);
CREATE INDEX portal_sessions_by_account ON portal_sessions (account_id);

-- One-time codes sent to an address: a keyed hash, an expiry and an attempt count.
CREATE TABLE portal_codes (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    address_index BYTEA    NOT NULL,
    purpose       TEXT    NOT NULL,     -- verify | reset
    code_hash     BYTEA    NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE INDEX portal_codes_by_address ON portal_codes (tenant, address_index, purpose, created_at);
