//! Shared types of carepost: identifiers, e-mail addresses, tenants, timestamps, and the
//! [`Sensitive`] wrapper that keeps PHI out of logs.
//!
//! Everything here is plain data: no I/O, no policy. Crates higher up the workspace agree on
//! these types so that a message id minted by SMTP ingress means the same thing to delivery,
//! the audit log and the portal.

mod address;
mod client;
mod envelope;
pub mod header;
mod id;
mod interval;
mod listen;
mod network;
mod sensitive;
mod timestamp;

pub use address::{Address, AddressError};
pub use client::{ClientKey, IPV6_CLIENT_PREFIX, canonical_ip};
pub use envelope::{
    Arrival, BodyType, DsnNotify, DsnReturn, Envelope, Recipient, SenderAuthentication, Source, TlsInfo,
};
pub use id::{Id, IdError, MessageId, TenantId, TenantIdError};
pub use interval::{Interval, IntervalError};
pub use listen::Listen;
pub use network::{Network, NetworkError};
pub use sensitive::{Sensitive, install_redaction_key, redaction_tag};
pub use timestamp::Timestamp;
