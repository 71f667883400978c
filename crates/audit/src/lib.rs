//! The tamper-evident audit log.
//!
//! Every step of a message's path and every security event becomes one [`Event`]. Records
//! form a hash chain: each record's hash covers its fields and the previous record's hash, so
//! changing, deleting, inserting or reordering a record breaks the chain at that point. A chain
//! alone cannot reveal a tail deleted or consistently rewritten, so the head is signed with an
//! Ed25519 key derived from the vault: by the server at most [`HEAD_SIGN_INTERVAL`] after any
//! new record, at shutdown, at the end of every CLI command that appends, and every
//! `checkpoint_every` records. Each process signs the head it wrote itself (kept in memory),
//! never one it read back, so tampering in the database between two signatures is named by
//! the next one. Signed checkpoints are also appended to an anchor file outside the database,
//! so that deleting the tail of the log together with its checkpoints is still detected.
//!
//! Records carry ids, hashes and outcomes, never message content or addresses.

mod chain;
mod event;
mod export;
mod nodes;
mod verify;

pub use chain::{Audit, AuditError, CheckpointKey, HEAD_SIGN_INTERVAL, UNANCHORED_ACTION, record_hash};
pub use event::{Event, Outcome};
pub use export::ExportFormat;
pub use nodes::{NODE_LEASE, NODE_LOST_ACTION, node_lease};
pub use verify::{Problem, Verification};
