//! The client-address guard both doors share: sign-in failures counted per client and per
//! (login, client) pair, blocks that refuse a client at connection time, and the networks
//! (`Network`) that trusted lists, relay lists, blocks and API-key limits are written in.
//!
//! The SMTP server and the web server each hold a [`Guard`] over the same store, so a client
//! blocked for spraying passwords at SMTP AUTH is refused by the portal too, and the other
//! way round. Neither server depends on the other to reach it.

pub mod guard;
pub mod network;

pub use carepost_model::canonical_ip;
pub use guard::{AUTOMATIC_BY, ActiveBlock, Guard, GuardSettings, REFRESH_EVERY};
pub use network::{Network, NetworkError};
