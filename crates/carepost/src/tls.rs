//! The TLS identity used by SMTP and HTTPS: the operator's certificate, or on first start a
//! self-signed certificate for localhost so that carepost works out of the box.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::Config;

/// Paths of the PEM certificate chain and private key to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// True when carepost generated a self-signed development certificate.
    pub generated: bool,
}

pub fn ensure_identity(config: &Config) -> anyhow::Result<TlsIdentity> {
    if !config.tls.cert_file.as_os_str().is_empty() || !config.tls.key_file.as_os_str().is_empty() {
        let cert_file = config.in_data_dir(&config.tls.cert_file);
        let key_file = config.in_data_dir(&config.tls.key_file);
        for (key, path) in [("tls.cert_file", &cert_file), ("tls.key_file", &key_file)] {
            anyhow::ensure!(path.is_file(), "{key}: {} does not exist or is not a file", path.display());
        }
        return Ok(TlsIdentity { cert_file, key_file, generated: false });
    }
    let dir = config.data_dir.join("tls");
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    if !cert_file.exists() || !key_file.exists() {
        generate(&dir, &cert_file, &key_file, &config.hostname)?;
    }
    Ok(TlsIdentity { cert_file, key_file, generated: true })
}

fn generate(dir: &Path, cert_file: &Path, key_file: &Path, hostname: &str) -> anyhow::Result<()> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if hostname != "localhost" {
        names.push(hostname.to_owned());
    }
    let certified = rcgen::generate_simple_self_signed(names).context("generating the development TLS certificate")?;
    crate::install::create_private_dir(dir)?;
    write_private(key_file, certified.signing_key.serialize_pem().as_bytes())?;
    write_private(cert_file, certified.cert.pem().as_bytes())?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
