-- PostgreSQL twin of migrations/sqlite/0011_key_review.sql: the same tables and meaning, BIGINT for INTEGER and
-- BYTEA for BLOB.
-- Keys learned from signed mail are no longer trusted on first use. A key's state says how
-- far it may be used:
--   trusted      imported by an operator, found through WKD, or learned with a chain to a
--                configured trust anchor: used for encryption
--   unconfirmed  learned from DKIM- and DMARC-authenticated signed mail without an anchor:
--                not used for encryption until an operator confirms it
--   confirmed    an unconfirmed or held key an operator confirmed (`carepost keys confirm`)
--   held         learned for an address that already had another key: never used, kept for
--                an operator's review
ALTER TABLE recipient_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'trusted';

-- Certificates learned before this release were trusted on first use from unauthenticated
-- mail; any of them may have been planted. They wait for an operator's confirmation.
UPDATE recipient_keys SET state = 'unconfirmed' WHERE source = 'learned';
