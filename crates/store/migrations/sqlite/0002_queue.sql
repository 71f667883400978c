-- The durable queue. A message row and its recipient rows commit in one transaction with the
-- message's data key, before the client is told "250". Everything naming a person is sealed
-- under the message's data key (object "msg/<id>"); look-ups use blind indexes.
CREATE TABLE messages (
    id                TEXT    PRIMARY KEY,
    tenant            TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    source            TEXT    NOT NULL,
    size              INTEGER NOT NULL,
    body_blob         TEXT    NOT NULL,
    envelope          BLOB    NOT NULL,   -- sealed JSON: sender, DSN, REQUIRETLS, SMTPUTF8
    arrival           BLOB    NOT NULL,   -- sealed JSON: client, HELO, account, TLS
    message_id_index  BLOB,               -- blind index of the Message-ID header
    inspection        TEXT,               -- JSON: verdict, entity types and counts; no values
    state             TEXT    NOT NULL,   -- active | done
    done_at           INTEGER
);
CREATE INDEX messages_by_state ON messages (state, received_at);
CREATE INDEX messages_by_message_id ON messages (tenant, message_id_index);

CREATE TABLE recipients (
    message_id      TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    tenant          TEXT    NOT NULL,
    address         BLOB    NOT NULL,   -- sealed JSON: address, NOTIFY, ORCPT
    address_index   BLOB    NOT NULL,   -- blind index of the lowercased address
    domain_index    BLOB    NOT NULL,   -- blind index of the domain: one queue per destination
    decision        TEXT,               -- JSON from policy: required protection, actions
    state           TEXT    NOT NULL,   -- queued | inflight | held | delivered | bounced
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_reply      BLOB,               -- sealed: the last remote reply or local reason
    method          TEXT,               -- how it was delivered: tls, smime, pgp, portal, local
    delay_notified  INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX recipients_due ON recipients (state, next_attempt_at);
CREATE INDEX recipients_by_address ON recipients (tenant, address_index);
