//! The installation of a test server, reached from the test process the way a second carepost
//! process on the same data directory (or shared store) reaches it.

#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use carepost::install::{Access, Installation};
use carepost_model::{Address, Arrival, Envelope, TenantId};
use carepost_spool::{Spool, Submission};

/// The installation `dir/carepost.toml` configures, opened shared, and a spool on it. Close
/// `install.store` when done.
pub async fn open(dir: &Path) -> (Installation, Spool) {
    let config = carepost::Config::load(&dir.join("carepost.toml")).unwrap();
    let install = Installation::open(config, Access::Shared).await.unwrap();
    let spool = Spool::new(install.store.clone(), install.ring.clone(), install.blobs.clone(), install.audit.clone());
    (install, spool)
}

/// Queues `body` from `from` to `to` as a relay host at 127.0.0.1 hands it over, past
/// inspection and policy: its id.
pub async fn queue(spool: &Spool, from: &str, to: &str, body: String) -> String {
    let envelope = Envelope::to_one(Some(Address::parse(from).unwrap()), Address::parse(to).unwrap());
    let submission = Submission::new(TenantId::default(), envelope, relay_arrival(), Bytes::from(body));
    spool.accept(submission).await.unwrap().to_string()
}

/// How a message from a relay host at 127.0.0.1 arrives.
pub fn relay_arrival() -> Arrival {
    serde_json::from_value(serde_json::json!({ "source": "relay", "client_ip": "127.0.0.1" })).unwrap()
}
