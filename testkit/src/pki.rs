//! A throw-away PKI made with the openssl command line, the way an administrator or a
//! correspondent makes certificates: a test CA and the S/MIME leaves it issues, and the
//! self-signed certificates anyone can make. Everything lives in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::{require_tool, run_ok};

/// An `openssl` command run in `dir`; fails the test when openssl is not installed.
pub fn openssl(dir: &Path) -> Command {
    require_tool("openssl");
    let mut command = Command::new("openssl");
    command.current_dir(dir);
    command
}

/// A test certificate authority and the leaf certificates it issued, all in one temporary
/// directory.
pub struct Pki {
    pub dir: TempDir,
}

/// A certificate and its key as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Leaf {
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).expect("reading the certificate")
    }

    pub fn key_pem(&self) -> Vec<u8> {
        std::fs::read(&self.key).expect("reading the key")
    }
}

/// Key algorithm for a leaf.
#[derive(Clone, Copy)]
pub enum LeafKey {
    Rsa,
    EcP256,
}

impl LeafKey {
    fn newkey(self) -> &'static [&'static str] {
        match self {
            LeafKey::Rsa => &["-newkey", "rsa:2048"],
            LeafKey::EcP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        }
    }
}

impl Pki {
    /// A fresh RSA CA.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"];
        self_signed(dir.path(), "ca", "/CN=carepost test CA", &ca);
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).expect("reading the CA certificate")
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
        let key_file = format!("{name}.key");
        let csr = format!("{name}.csr");
        let cert = format!("{name}.pem");
        let ext = format!("{name}.ext");
        run_ok(openssl(self.dir.path()).arg("req").args(key.newkey()).args([
            "-nodes",
            "-keyout",
            &key_file,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}/emailAddress={email}"),
        ]));
        std::fs::write(self.path(&ext), extensions).expect("writing the extension file");
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
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A self-signed RSA S/MIME certificate for `address` (common name NAME), as anyone can make
/// with `openssl req`, in `dir/NAME.pem` and `dir/NAME.key`.
pub fn self_signed_smime(dir: &Path, name: &str, address: &str) -> Leaf {
    let san = format!("subjectAltName=email:{address}");
    let extensions = [
        san.as_str(),
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=emailProtection",
        "basicConstraints=critical,CA:FALSE",
    ];
    self_signed(dir, name, &format!("/CN={name}/emailAddress={address}"), &extensions)
}

/// `openssl req -x509`: a self-signed RSA certificate for `subject` with `extensions`, in
/// `dir/NAME.pem` and `dir/NAME.key`.
fn self_signed(dir: &Path, name: &str, subject: &str, extensions: &[&str]) -> Leaf {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    let mut command = openssl(dir);
    command.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", subject]);
    command.args(["-keyout", &key, "-out", &cert]);
    for extension in extensions {
        command.args(["-addext", extension]);
    }
    run_ok(&mut command);
    Leaf { cert: dir.join(cert), key: dir.join(key) }
}

/// `openssl cms -decrypt` of the message file `message` with `leaf`'s key: the plain text.
pub fn cms_decrypt(leaf: &Leaf, message: &Path) -> String {
    let dir = message.parent().unwrap_or(Path::new("."));
    let out = run_ok(
        openssl(dir)
            .args(["cms", "-decrypt", "-recip"])
            .arg(&leaf.cert)
            .arg("-inkey")
            .arg(&leaf.key)
            .arg("-in")
            .arg(message),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
