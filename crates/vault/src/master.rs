//! The master key and where it comes from.
//!
//! The master key only ever wraps tenant secrets. It can live in a file in the data directory
//! (the default, created on first start with mode 0600), in an environment variable, or come
//! from an external command — the hook for a KMS or HSM, which prints the key on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::VaultError;

pub const MASTER_KEY_LEN: usize = 32;

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// A file holding the key in base64; created on first use if missing.
    File(PathBuf),
    /// An environment variable holding the key in base64.
    Env(String),
    /// A command run through `sh -c` that prints the key in base64 on stdout.
    Command(String),
}

/// 32 secret bytes; zeroed when dropped.
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.key_id())
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, VaultError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| VaultError::Random)?;
        Ok(MasterKey { bytes })
    }

    pub fn from_bytes(raw: &[u8]) -> Option<Self> {
        let bytes: [u8; MASTER_KEY_LEN] = raw.try_into().ok()?;
        Some(MasterKey { bytes: Zeroizing::new(bytes) })
    }

    /// Parses the base64 text form the key sources use.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let decoded = Zeroizing::new(B64.decode(text.trim()).map_err(|_| "not valid base64".to_owned())?);
        MasterKey::from_bytes(&decoded)
            .ok_or_else(|| format!("a master key is {MASTER_KEY_LEN} bytes, this one is {}", decoded.len()))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.bytes.as_ref()))
    }

    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }

    /// A public fingerprint of the key, stored beside what it wraps so that starting with the
    /// wrong key gives a clear error instead of a decryption failure.
    pub fn key_id(&self) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.bytes.as_ref());
        let tag = hmac::sign(&key, b"carepost master key id v1");
        tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Loads the key from its source. A missing key file is created when `create` is set
    /// (first start); other sources must already hold a key.
    pub fn load(source: &MasterKeySource, create: bool) -> Result<Self, VaultError> {
        match source {
            MasterKeySource::File(path) => load_file(path, create),
            MasterKeySource::Env(var) => {
                let value = std::env::var(var)
                    .map_err(|_| VaultError::MasterKeyEnv { var: var.clone(), reason: "not set".into() })?;
                MasterKey::from_base64(&value).map_err(|reason| VaultError::MasterKeyEnv { var: var.clone(), reason })
            }
            MasterKeySource::Command(command) => {
                let err = |reason: String| VaultError::MasterKeyCommand { command: command.clone(), reason };
                let output = Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| err(e.to_string()))?;
                if !output.status.success() {
                    return Err(err(format!("exited with {}", output.status)));
                }
                let stdout = Zeroizing::new(output.stdout);
                let text = std::str::from_utf8(&stdout).map_err(|_| err("printed non-UTF-8 output".into()))?;
                MasterKey::from_base64(text).map_err(err)
            }
        }
    }

    /// Writes the key to a new file with mode 0600, durably. Refuses to overwrite.
    pub fn write_new_file(&self, path: &Path) -> Result<(), VaultError> {
        let err = |reason: String| VaultError::MasterKeyFile { path: path.to_owned(), reason };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| err(e.to_string()))?;
        let mut text = Zeroizing::new(self.to_base64().to_string());
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(|e| err(e.to_string()))?;
        file.sync_all().map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }
}

fn load_file(path: &Path, create: bool) -> Result<MasterKey, VaultError> {
    let err = |reason: String| VaultError::MasterKeyFile { path: path.to_owned(), reason };
    match std::fs::read(path) {
        Ok(raw) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path).map_err(|e| err(e.to_string()))?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(err(format!(
                        "is readable by other users (mode {:o}); run chmod 600 on it",
                        mode & 0o777
                    )));
                }
            }
            let raw = Zeroizing::new(raw);
            let text = std::str::from_utf8(&raw).map_err(|_| err("is not text".into()))?;
            MasterKey::from_base64(text).map_err(err)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = MasterKey::generate()?;
            key.write_new_file(path)?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_source_creates_then_reuses_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let source = MasterKeySource::File(path.clone());
        assert!(MasterKey::load(&source, false).is_err());
        let first = MasterKey::load(&source, true).unwrap();
        let again = MasterKey::load(&source, false).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = MasterKey::load(&source, false).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }

    #[test]
    fn env_and_command_sources() {
        let key = MasterKey::generate().unwrap();
        let b64 = key.to_base64();
        // SAFETY: single-threaded use of a variable name unique to this test.
        unsafe { std::env::set_var("CAREPOST_TEST_MASTER_KEY_A", b64.as_str()) };
        let from_env = MasterKey::load(&MasterKeySource::Env("CAREPOST_TEST_MASTER_KEY_A".into()), false).unwrap();
        assert_eq!(from_env.key_id(), key.key_id());
        let from_cmd = MasterKey::load(&MasterKeySource::Command(format!("echo {}", b64.as_str())), false).unwrap();
        assert_eq!(from_cmd.key_id(), key.key_id());
        let failing = MasterKey::load(&MasterKeySource::Command("exit 3".into()), false).unwrap_err();
        assert!(failing.to_string().contains("exit"), "{failing}");
        let short = MasterKey::load(&MasterKeySource::Command("echo aGVsbG8=".into()), false).unwrap_err();
        assert!(short.to_string().contains("32 bytes"), "{short}");
        let missing = MasterKey::load(&MasterKeySource::Env("CAREPOST_TEST_UNSET_VAR".into()), false).unwrap_err();
        assert!(missing.to_string().contains("not set"), "{missing}");
    }
}
