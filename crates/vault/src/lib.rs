//! The vault: carepost's keys and everything sealed under them.
//!
//! Key hierarchy (DESIGN.md, "Keys"):
//!
//! ```text
//! master key (file | env | command)                 never stored by carepost in the database
//!   └─ tenant secrets, wrapped under the master key  kek (versioned), blind-index key, ...
//!        └─ one data key per object, wrapped under the tenant's active kek
//!             └─ the object: sealed with AES-256-GCM, tenant and object id as associated data
//! ```
//!
//! The vault does the cryptography and keeps unwrapped tenant secrets in memory; the store
//! persists wrapped keys next to the data they protect (so that a data key commits in the
//! same transaction as its object). Rotating a kek rewraps data keys and never re-encrypts
//! payloads; deleting a data key crypto-shreds its object wherever copies of the ciphertext
//! live.

mod blob;
#[cfg(feature = "s3")]
mod blob_s3;
mod error;
mod keyring;
mod master;
mod password;
pub mod password_policy;
mod seal;

pub use blob::{BlobKey, BlobStore, CopyProgress, CopyReport, LocalDirBlobStore, copy_blobs};
#[cfg(feature = "s3")]
pub use blob_s3::{DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, S3BlobStore, S3Settings, parse_s3_url};
pub use error::VaultError;
pub use keyring::{DataKey, KeyRing, SecretPurpose, WrappedDataKey, WrappedSecret, object_aad};
pub use master::{MasterKey, MasterKeySource};
pub use password::{
    HashingLimit, MAX_PASSWORD_LEN, hash_password, hash_password_limited, verify_nothing, verify_nothing_limited,
    verify_password, verify_password_limited,
};
pub use password_policy::{PasswordPolicy, PasswordRejected};
pub use seal::{SEGMENT_SIZE, Sealer, open, seal, sealed_len};
