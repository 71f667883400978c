//! The TLS side of STARTTLS and port 465: rustls on aws-lc-rs, TLS 1.2 and 1.3 only, and
//! only forward-secret AEAD cipher suites.

use std::path::Path;
use std::sync::Arc;

use carepost_model::TlsInfo;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::{ServerConfig, ServerConnection, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Cipher suites offered, strongest first. TLS 1.3 suites are all AEAD with ephemeral keys;
/// the TLS 1.2 ones are restricted to ECDHE with AES-GCM or ChaCha20-Poly1305.
const SUITES: &[SupportedCipherSuite] = &[
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// A server configuration from a PEM certificate chain and private key.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_err = |path: &Path, reason: String| TlsError::Pem { path: path.display().to_string(), reason };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| pem_err(cert_file, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err(cert_file, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| pem_err(key_file, e.to_string()))?;
    let provider = rustls::crypto::CryptoProvider { cipher_suites: SUITES.to_vec(), ..aws_lc_rs::default_provider() };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // SMTP has no use for session tickets across listeners; plain session-id resumption is
    // enough and keeps no long-lived ticket key in memory.
    config.send_tls13_tickets = 0;
    // Our suite order (AEAD, strongest first) decides, not the client's: a client that lists
    // a weaker suite first still gets the strongest one both sides support.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The protocol and cipher a handshake settled on, named as IANA and Postfix's logs name them.
pub fn negotiated(conn: &ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_owned(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let name = format!("{:?}", s.suite());
            name.strip_prefix("TLS13_").map(|rest| format!("TLS_{rest}")).unwrap_or(name)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    TlsInfo { version, cipher }
}

/// Key bits of a cipher, for the Received header's `(256/256 bits)`.
pub fn cipher_bits(cipher: &str) -> u16 {
    if cipher.contains("AES_128") { 128 } else { 256 }
}
