//! Shared helpers for carepost-secure's integration tests: running the real
//! peers (openssl, gpg) and making a throw-away PKI with the openssl CLI.
//!
//! Debian packages needed by these tests: openssl, gnupg.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use der::{Decode, Encode};
use tempfile::TempDir;

/// Panics (fails the test) when a peer tool is missing: these tests must
/// never pass by skipping.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "`{name}` is not installed; install the Debian package (openssl / gnupg) to run these tests");
}

/// Runs a command, failing the test with its stderr if it does not succeed.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// Runs a command and returns whether it succeeded.
pub fn run_status(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

pub fn openssl(dir: &Path) -> Command {
    require_tool("openssl");
    let mut command = Command::new("openssl");
    command.current_dir(dir);
    command
}

/// A test certificate authority and the leaf certificates it issued, all in
/// one temporary directory.
pub struct Pki {
    pub dir: TempDir,
}

/// A leaf certificate and key as files in the PKI directory.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Leaf {
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).unwrap()
    }
    pub fn key_pem(&self) -> Vec<u8> {
        std::fs::read(&self.key).unwrap()
    }
}

/// Key algorithm for a leaf.
#[derive(Clone, Copy)]
pub enum LeafKey {
    Rsa,
    EcP256,
}

impl Pki {
    /// A fresh RSA CA.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        run_ok(openssl(dir.path()).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=carepost test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).unwrap()
    }

    /// Issues a leaf for `email`; `key_usage` is the keyUsage extension value.
    pub fn issue(&self, name: &str, email: &str, key: LeafKey, key_usage: &str) -> Leaf {
        let extensions = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,{key_usage}\nextendedKeyUsage=emailProtection\n\
             subjectAltName=email:{email}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        );
        self.issue_with_extensions(name, email, key, &extensions)
    }

    /// Issues a leaf for `email` with the given openssl extension file text.
    pub fn issue_with_extensions(&self, name: &str, email: &str, key: LeafKey, extensions: &str) -> Leaf {
        let newkey: &[&str] = match key {
            LeafKey::Rsa => &["-newkey", "rsa:2048"],
            LeafKey::EcP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        };
        let key_file = format!("{name}.key");
        let csr = format!("{name}.csr");
        let cert = format!("{name}.pem");
        let ext = format!("{name}.ext");
        run_ok(openssl(self.dir.path()).arg("req").args(newkey).args([
            "-nodes",
            "-keyout",
            &key_file,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}/emailAddress={email}"),
        ]));
        std::fs::write(self.path(&ext), extensions).unwrap();
        run_ok(openssl(self.dir.path()).args([
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "30",
            "-extfile",
            &ext,
        ]));
        Leaf { cert: self.path(&cert), key: self.path(&key_file) }
    }

    /// Issues an RSA leaf whose SubjectPublicKeyInfo is labelled
    /// id-RSAES-OAEP (RFC 4055), which the openssl CLI cannot make: the
    /// certificate is rewritten and signed again with the CA key.
    pub fn issue_oaep(&self, name: &str, email: &str) -> Leaf {
        let leaf = self.issue(name, email, LeafKey::Rsa, "keyEncipherment");
        let pem = leaf.cert_pem();
        let (_, der) = der::pem::decode_vec(&pem).unwrap();
        let mut cert = x509_cert::Certificate::from_der(&der).unwrap();
        cert.tbs_certificate.subject_public_key_info.algorithm =
            spki::AlgorithmIdentifierOwned { oid: "1.2.840.113549.1.1.7".parse().unwrap(), parameters: None };
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let ca_key_pem = std::fs::read(self.path("ca.key")).unwrap();
        let (_, ca_key) = der::pem::decode_vec(&ca_key_pem).unwrap();
        let ca_key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&ca_key).unwrap();
        let mut signature = vec![0u8; ca_key.public_modulus_len()];
        ca_key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), &tbs, &mut signature)
            .unwrap();
        cert.signature = der::asn1::BitString::from_bytes(&signature).unwrap();
        let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert.to_der().unwrap()).unwrap();
        std::fs::write(&leaf.cert, pem).unwrap();
        leaf
    }
}

/// A sample protected entity: what carepost's transform stage hands to packaging.
pub const ENTITY: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Lab result for patient 4711: potassium 4.2 mmol/L =E2=80=94 normal.\r\n\
Please call the clinic with questions.\r\n";

/// Outer headers used when a whole message is needed.
pub const OUTER: &[u8] = b"From: clinic@example.org\r\nTo: alice@example.org\r\nSubject: Results\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n";

/// A throw-away GnuPG home directory; its agent is stopped when dropped.
pub struct GpgHome {
    pub dir: TempDir,
}

impl GpgHome {
    pub fn new() -> GpgHome {
        require_tool("gpg");
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
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

    /// Generates an Ed25519 certification/signing key with a Curve25519
    /// encryption subkey for `user_id`, valid for `expire` (gpg syntax), and
    /// returns its fingerprint. `faked_time` backdates the generation.
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

    /// The armored secret key for `query`.
    pub fn export_secret(&self, query: &str) -> Vec<u8> {
        run_ok(self.gpg().args(["--armor", "--export-secret-keys", query])).stdout
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").env("GNUPGHOME", self.dir.path()).args(["--kill", "all"]).output();
    }
}

/// The ASCII-armored OpenPGP message inside a PGP/MIME entity, as a mail
/// client would hand it to gpg.
pub fn armored_part(entity: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(entity);
    let start = text.find("-----BEGIN PGP MESSAGE-----").expect("no armored message");
    let end_marker = "-----END PGP MESSAGE-----";
    let end = text.find(end_marker).expect("unterminated armored message") + end_marker.len();
    text[start..end].as_bytes().to_vec()
}
