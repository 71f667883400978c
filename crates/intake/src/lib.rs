//! The one way in for mail. SMTP (MX, submission, relay), the REST API, portal replies and
//! carepost's own notices all hand a message to [`Intake`], which:
//!
//! 1. takes out what the sender may set beside the message ([`passphrase`]);
//! 2. parses it once and scans its text with DLP ([`inspect`]);
//! 3. asks policy for a typed [`Decision`](carepost_policy::Decision) per recipient, and
//!    refuses a blocked message while the client is still connected;
//! 4. seals and queues it through the [`Spool`](carepost_spool::Spool), durable before the
//!    door answers 250 or 202;
//! 5. tells the archive's [`journal`], learns certificates from proven signed mail and sends
//!    policy's notices ([`notices`]).
//!
//! It knows nothing of delivery: the queue runner reads what intake queued through the spool.

pub mod inspect;
mod intake;
pub mod journal;
mod notices;
pub mod passphrase;

pub use inspect::{Inspection, direction_of, inspect};
pub use intake::{Accepted, CertificateLearning, Intake, IntakeError, IntakeSettings, SubmitHints};
pub use journal::{Journal, JournalEntry};
pub use passphrase::{PASSPHRASE_HEADER, PASSPHRASE_LENGTH, passphrase_problem, take_passphrase_header};
