-- PostgreSQL twin of migrations/sqlite/0002_queue.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- The durable queue. A message row and its recipient rows commit in one transaction with the
-- message's data key, before the client is told "250". Everything naming a person is sealed
-- under the message's data key (object "msg/<id>"); look-ups use blind indexes.
CREATE TABLE messages (
    id                TEXT    PRIMARY KEY,
    tenant            TEXT    NOT NULL,
    received_at       BIGINT NOT NULL,
    source            TEXT    NOT NULL,
    size              BIGINT NOT NULL,
    body_blob         TEXT    NOT NULL,
    envelope          BYTEA    NOT NULL,   -- sealed JSON: sender, DSN, REQUIRETLS, SMTPUTF8
    arrival           BYTEA    NOT NULL,   -- sealed JSON: client, HELO, account, TLS
    message_id_index  BYTEA,               -- blind index of the Message-ID header
    inspection        TEXT,               -- JSON: verdict, entity types and counts; no values
    state             TEXT    NOT NULL,   -- active | done
    done_at           BIGINT
);
CREATE INDEX messages_by_state ON messages (state, received_at);
CREATE INDEX messages_by_message_id ON messages (tenant, message_id_index);

CREATE TABLE recipients (
    message_id      TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    idx             BIGINT NOT NULL,
    tenant          TEXT    NOT NULL,
    address         BYTEA    NOT NULL,   -- sealed JSON: address, NOTIFY, ORCPT
    address_index   BYTEA    NOT NULL,   -- blind index of the lowercased address
    domain_index    BYTEA    NOT NULL,   -- blind index of the domain: one queue per destination
    decision        TEXT,               -- JSON from policy: required protection, actions
    state           TEXT    NOT NULL,   -- queued | inflight | held | delivered | bounced
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_reply      BYTEA,               -- sealed: the last remote reply or local reason
    method          TEXT,               -- how it was delivered: tls, smime, pgp, portal, local
    delay_notified  BIGINT NOT NULL DEFAULT 0,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX recipients_due ON recipients (state, next_attempt_at);
CREATE INDEX recipients_by_address ON recipients (tenant, address_index);
