//! Shared types of carepost: identifiers, e-mail addresses, tenants, timestamps, and the
//! [`Sensitive`] wrapper that keeps PHI out of logs.
//!
//! Everything here is plain data: no I/O, no policy. Crates higher up the workspace agree on
//! these types so that a message id minted by SMTP ingress means the same thing to delivery,
//! the audit log and the portal.

/// Serializes a type as its `Display` text and reads it back through `FromStr`, so that the
/// configuration file, JSON and the command line all carry the text people write.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

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
