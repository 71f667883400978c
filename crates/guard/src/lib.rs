//! The client-address guard both doors share: sign-in failures counted per client and per
//! (login, client) pair, and blocks that refuse a client at connection time. The networks
//! blocks are written in (`Network`) are the model's, re-exported here for the doors.
//!
//! The SMTP server and the web server each hold a [`Guard`] over the same store, so a client
//! blocked for spraying passwords at SMTP AUTH is refused by the portal too, and the other
//! way round. Neither server depends on the other to reach it.

pub mod guard;

pub use carepost_model::canonical_ip;
pub use carepost_model::{Network, NetworkError};
pub use guard::{AUTOMATIC_BY, ActiveBlock, Guard, GuardSettings, REFRESH_EVERY};
