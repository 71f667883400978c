-- Message events: the durable history of each recipient's delivery, written in the same
-- transaction as the state change it records (the outbox webhooks are sent from). Nothing
-- here is PHI: ids, states, methods, counts, status codes and times. The recipient is named
-- by its position in the message and by the blind index the queue already keeps.
CREATE TABLE message_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of events, and the outbox cursor
    id              TEXT    NOT NULL UNIQUE,            -- for receivers to drop duplicates
    tenant          TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    recipient       INTEGER NOT NULL,                   -- idx of the recipient in the message
    address_index   BLOB    NOT NULL,                   -- blind index "rcpt", as on recipients
    kind            TEXT    NOT NULL,   -- queued | quarantined | held | released | deferred | delivered | bounced | opened | retracted | expired
    method          TEXT,               -- delivered: tls, smtp, smime, pgp, portal
    attempt         INTEGER,            -- delivery attempts so far
    next_attempt_at INTEGER,            -- deferred: when the next attempt is due
    status          TEXT,               -- enhanced status code (RFC 3463), e.g. 4.4.1
    at              INTEGER NOT NULL
);
CREATE INDEX message_events_by_message ON message_events (message_id, recipient, seq);
CREATE INDEX message_events_by_tenant ON message_events (tenant, seq);

-- A portal copy names the queue recipient it was made for, so opens, retractions and
-- expiry join that recipient's history. NULL for copies made before this migration.
ALTER TABLE portal_messages ADD COLUMN source_recipient INTEGER;

-- Webhook endpoints, registered by an administrator. The signing secret is sealed under
-- the endpoint's own data key (object "webhook/<id>"); removing an endpoint shreds it.
CREATE TABLE webhook_endpoints (
    id          TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    url         TEXT    NOT NULL,       -- the operator's endpoint; not PHI
    events      TEXT    NOT NULL,       -- comma-separated event kinds it receives
    secret      BLOB    NOT NULL,       -- sealed signing secret
    cursor      INTEGER NOT NULL,       -- seq of the last event fanned out to it
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER
);

-- One event owed to one endpoint, until it is delivered or given up.
CREATE TABLE webhook_deliveries (
    endpoint_id     TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq       INTEGER NOT NULL,
    state           TEXT    NOT NULL,   -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,            -- HTTP status of the last attempt
    last_error      TEXT,               -- why the last attempt failed (never payload content)
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);

-- Senders an API key may use in From: addresses and @domains, comma-separated; empty: any.
ALTER TABLE api_keys ADD COLUMN allowed_from TEXT NOT NULL DEFAULT '';
