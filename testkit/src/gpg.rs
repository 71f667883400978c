//! GnuPG as a correspondent's OpenPGP software: a throw-away home directory, keys made the
//! way `gpg --quick-gen-key` makes them, and the agent stopped when the home goes away.

use std::process::Command;

use tempfile::TempDir;

use crate::{require_tool, run_ok};

/// A throw-away GnuPG home directory; its agent is stopped when dropped.
pub struct GpgHome {
    pub dir: TempDir,
}

impl GpgHome {
    pub fn new() -> GpgHome {
        require_tool("gpg");
        let dir = tempfile::tempdir().expect("a temporary directory");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod 700 the home");
        GpgHome { dir }
    }

    /// A `gpg` command in batch mode, using this home, with no passphrases.
    pub fn gpg(&self) -> Command {
        let mut command = Command::new("gpg");
        command.env("GNUPGHOME", self.dir.path()).current_dir(self.dir.path()).args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        command
    }

    /// Generates an Ed25519 certification/signing key with a Curve25519 encryption subkey
    /// for `user_id`, valid for `expire` (gpg syntax), and returns its fingerprint.
    /// `faked_time` backdates the generation.
    pub fn generate(&self, user_id: &str, expire: &str, faked_time: Option<&str>) -> String {
        let with_time = |command: &mut Command| {
            if let Some(time) = faked_time {
                command.args(["--faked-system-time", time]);
            }
        };
        let mut command = self.gpg();
        with_time(&mut command);
        run_ok(command.args(["--quick-gen-key", user_id, "ed25519", "sign,cert", expire]));
        let fingerprint = self.fingerprint(user_id);
        let mut command = self.gpg();
        with_time(&mut command);
        run_ok(command.args(["--quick-add-key", &fingerprint, "cv25519", "encr", expire]));
        fingerprint
    }

    /// The primary key fingerprint of the key matching `query`.
    pub fn fingerprint(&self, query: &str) -> String {
        let listing = run_ok(self.gpg().args(["--with-colons", "--list-keys", query])).stdout;
        let listing = String::from_utf8_lossy(&listing);
        listing
            .lines()
            .find(|line| line.starts_with("fpr:"))
            .and_then(|line| line.split(':').nth(9))
            .map(str::to_string)
            .expect("gpg listed no fingerprint")
    }

    /// The binary public key for `query`.
    pub fn export(&self, query: &str) -> Vec<u8> {
        run_ok(self.gpg().args(["--export", query])).stdout
    }

    /// The ASCII-armored public key for `query`, as a correspondent mails or publishes it.
    pub fn export_armored(&self, query: &str) -> Vec<u8> {
        run_ok(self.gpg().args(["--armor", "--export", query])).stdout
    }

    /// The armored secret key for `query`.
    pub fn export_secret(&self, query: &str) -> Vec<u8> {
        run_ok(self.gpg().args(["--armor", "--export-secret-keys", query])).stdout
    }
}

impl Default for GpgHome {
    fn default() -> Self {
        GpgHome::new()
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").env("GNUPGHOME", self.dir.path()).args(["--kill", "all"]).output();
    }
}
