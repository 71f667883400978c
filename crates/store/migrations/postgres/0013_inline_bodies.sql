-- Small sealed message bodies kept in the database, in the transaction that queues the
-- message, so they share its commit instead of costing a blob each. Large bodies stay
-- blobs; messages.body_blob says which (see carepost_store::queue::INLINE_BODY).
CREATE TABLE message_bodies (
    message_id TEXT  PRIMARY KEY,
    sealed     BYTEA NOT NULL
);
