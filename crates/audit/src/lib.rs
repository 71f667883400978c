//! The tamper-evident audit log.
//!
//! Every step of a message's path and every security event becomes one [`Event`]. Records
//! form a hash chain: each record's hash covers its fields and the previous record's hash, so
//! changing, deleting, inserting or reordering a record breaks the chain at that point. Every
//! `checkpoint_every` records, and at shutdown, the head of the chain is signed with an
//! Ed25519 key derived from the vault, so that rewriting the whole tail (which a chain alone
//! cannot reveal) needs the vault's keys. Signed checkpoints are also appended to an anchor
//! file outside the database, so that deleting the tail of the log together with its
//! checkpoints is still detected.
//!
//! Records carry ids, hashes and outcomes, never message content or addresses.

mod chain;
mod event;
mod export;
mod verify;

pub use chain::{Audit, AuditError, CheckpointKey, record_hash};
pub use event::{Event, Outcome};
pub use export::ExportFormat;
pub use verify::{Problem, Verification};
