//! carepost's cryptographic packaging of e-mail.
//!
//! - [`smime`]: S/MIME 4.0 (RFC 8551) signing, encryption (AuthEnvelopedData
//!   with AES-256-GCM or EnvelopedData with AES-256-CBC) and verification of
//!   inbound signatures, so the key directory can learn senders' certificates.
//! - [`openpgp`]: PGP/MIME (RFC 3156) encryption, optionally signed.
//! - [`keys`]: certificate and OpenPGP key facts and the "may we encrypt to
//!   this now?" check (expired, not yet valid, revoked, wrong usage).
//! - [`wkd`]: OpenPGP Web Key Directory URLs and look-up.
//! - [`config`]: `[secure]`: the organization's signing identities, WKD, learning.
//! - [`directory`]: the recipient key directory: imported, learned and WKD keys,
//!   sealed at rest, and the choice of a usable key for a recipient.
//! - [`portal`]: keeping a message sealed for pick-up in the secure portal, the
//!   notification and receipt, retraction and expiry (crypto-shredding).
//! - [`mime`]: splitting a message into the headers that stay outside and the
//!   entity that gets protected, and putting them back together.
//!
//! RSA private-key operations go through aws-lc-rs only; the `rsa` crate
//! (RUSTSEC-2023-0071) is never used for them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod directory;
pub mod keys;
pub mod mime;
pub mod openpgp;
pub mod portal;
pub mod smime;
pub mod wkd;

mod oids;
mod pem;
