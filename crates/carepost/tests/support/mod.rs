//! The installation of a test server, reached from the test process the way a second carepost
//! process on the same data directory (or shared store) reaches it.

#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use carepost::install::{Access, Installation};
use carepost_model::{Address, Arrival, Envelope, TenantId};
use carepost_spool::{Spool, Submission};
use carepost_testkit::cli::carepost;
use carepost_testkit::web::{Browser, Page};

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

/// The portal's verify form: the code from the mail, and `password` chosen (twice).
pub async fn verify(browser: &mut Browser, csrf: &str, token: &str, code: &str, password: &str) -> Page {
    let form = [("csrf", csrf), ("token", token), ("code", code), ("password", password), ("password2", password)];
    browser.post("/p/verify", &form).await
}

/// The eight-digit code in a portal code mail.
pub fn code_from(mail: &str) -> String {
    let at = mail.find("Your code: ").expect("a code mail");
    mail[at + 11..at + 19].to_owned()
}

/// After a run that delivered everything: `queue list` says the queue is empty, and the audit
/// chain verifies.
pub fn assert_drained_and_verified(dir: &Path) {
    let (code, out, err) = carepost(env!("CARGO_BIN_EXE_carepost"), dir, &["queue", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the queue is empty"), "{out}");
    let (code, out, err) = carepost(env!("CARGO_BIN_EXE_carepost"), dir, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// A message body too large to be kept in the database with its queue rows (over the spool's
/// `INLINE_BODY_MAX`), so that it is stored as a blob.
pub fn large_body(first_line: &str) -> String {
    let line = "Please bring your insurance card and a list of medications.\n";
    format!("{first_line}\n{}", line.repeat(carepost_spool::INLINE_BODY_MAX / line.len() + 1))
}
