//! Which TLS a hop must have, strongest rule first: DANE (RFC 7672) > MTA-STS (RFC 8461) >
//! domains configured TLS-required > opportunistic. Certificate checks are carepost's own,
//! per server, through [`PeerVerifier`].

pub mod dane;
pub mod mta_sts;

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::{DeliveryConfig, SmartHostTls};
use crate::dns::{Dns, DnsError, TlsaRecord};
use crate::routing::{Candidate, RouteKind};
use mta_sts::{StsMode, StsPolicy};

/// How the peer's identity was established, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Dane,
    MtaSts,
    Pkix,
    None,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Dane => "dane",
            Verification::MtaSts => "mta-sts",
            Verification::Pkix => "pkix",
            Verification::None => "none",
        }
    }

    pub fn is_verified(self) -> bool {
        self != Verification::None
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one host connection must achieve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsDemand {
    /// Never STARTTLS (a trusted internal smart host).
    Never,
    /// STARTTLS when offered, any certificate; whether it also passes PKIX for `names` is
    /// recorded, since a message that needs verified TLS may still use the connection then.
    Opportunistic { names: Vec<String> },
    /// TLS required, certificate not checked (DANE with only unusable TLSA records).
    Encrypted,
    /// TLS with a certificate valid (PKIX) for one of `names`.
    Pkix { names: Vec<String>, method: Verification },
    /// TLS with a certificate matching a TLSA record (RFC 7672).
    Dane { records: Vec<TlsaRecord>, names: Vec<String> },
}

impl TlsDemand {
    /// Whether a connection without TLS (or whose TLS failed) must not be used.
    pub fn requires_tls(&self) -> bool {
        !matches!(self, TlsDemand::Never | TlsDemand::Opportunistic { .. })
    }

    /// The policy that set the demand, for messages and the audit log.
    pub fn source(&self) -> &'static str {
        match self {
            TlsDemand::Never => "no TLS configured",
            TlsDemand::Opportunistic { .. } => "opportunistic TLS",
            TlsDemand::Encrypted => "DANE (encryption only)",
            TlsDemand::Pkix { method: Verification::MtaSts, .. } => "MTA-STS",
            TlsDemand::Pkix { .. } => "TLS required",
            TlsDemand::Dane { .. } => "DANE",
        }
    }
}

/// What to do with one candidate host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    Use(TlsDemand),
    /// Do not connect to this host (MTA-STS enforce and the host is not in the policy).
    Skip(String),
    /// The policy could not be determined (TLSA look-up failed): try later.
    Defer(String),
}

/// Names a certificate may carry when carepost itself must vouch for a hop: the recipient
/// domain, and the MX host when DNSSEC proved the MX answer or the host is in the domain
/// (an unsigned MX answer could have been forged to name the attacker's host).
pub fn secure_names(domain: &str, host: &str, mx_secure: bool) -> Vec<String> {
    let mut names = Vec::new();
    if !domain.is_empty() {
        names.push(domain.to_owned());
    }
    if host != domain && (mx_secure || host.ends_with(&format!(".{domain}"))) {
        names.push(host.to_owned());
    }
    if names.is_empty() {
        names.push(host.to_owned());
    }
    names
}

/// The TLS demand for `candidate` on a route to `domain`.
pub async fn host_policy(
    config: &DeliveryConfig,
    dns: &dyn Dns,
    kind: RouteKind,
    domain: &str,
    candidate: &Candidate,
    addresses_secure: bool,
    sts: Option<&StsPolicy>,
) -> HostPolicy {
    let host = candidate.host.as_str();
    if let RouteKind::SmartHost(tls) = kind {
        return HostPolicy::Use(match tls {
            SmartHostTls::Required => TlsDemand::Pkix { names: vec![host.to_owned()], method: Verification::Pkix },
            SmartHostTls::Opportunistic => TlsDemand::Opportunistic { names: vec![host.to_owned()] },
            SmartHostTls::None => TlsDemand::Never,
        });
    }
    let is_name = host.parse::<std::net::IpAddr>().is_err();
    // RFC 7672 section 2.2: TLSA records count only when the chain of names that led to the
    // host (the MX answer and the host's addresses) was DNSSEC-validated.
    let dane_eligible = config.dane && is_name && addresses_secure && (!candidate.from_mx || candidate.mx_secure);
    if dane_eligible {
        match dns.tlsa(&format!("_{}._tcp.{host}", candidate.port)).await {
            Ok(answer) if answer.secure && !answer.records.is_empty() => {
                let records = dane::usable(&answer.records);
                let mut names = vec![host.to_owned()];
                if !domain.is_empty() && domain != host {
                    names.push(domain.to_owned());
                }
                return HostPolicy::Use(if records.is_empty() {
                    // RFC 7672 section 2.2: only unusable records still mean "TLS, always".
                    TlsDemand::Encrypted
                } else {
                    TlsDemand::Dane { records, names }
                });
            }
            Ok(_) => {}
            Err(e) if e.is_absent() => {}
            Err(e @ (DnsError::Bogus { .. } | DnsError::Temporary { .. })) => {
                return HostPolicy::Defer(format!("TLSA look-up failed: {e}"));
            }
            Err(_) => {}
        }
    }
    if let Some(policy) = sts.filter(|p| config.mta_sts && p.mode == StsMode::Enforce) {
        if !policy.mx_matches(host) {
            return HostPolicy::Skip("the MX host is not listed in the domain's MTA-STS policy".into());
        }
        return HostPolicy::Use(TlsDemand::Pkix { names: vec![host.to_owned()], method: Verification::MtaSts });
    }
    let names = secure_names(domain, host, candidate.mx_secure);
    if config.tls_required(domain) {
        return HostPolicy::Use(TlsDemand::Pkix { names, method: Verification::Pkix });
    }
    HostPolicy::Use(TlsDemand::Opportunistic { names })
}

/// Trust roots and the crypto provider, shared by every connection.
pub struct TlsContext {
    provider: Arc<CryptoProvider>,
    pkix: Arc<WebPkiServerVerifier>,
}

#[derive(Debug, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct TlsSetupError(pub String);

impl TlsContext {
    /// The public web roots plus `extra_roots`.
    pub fn new(extra_roots: &[CertificateDer<'static>]) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for cert in extra_roots {
            roots.add(cert.clone()).map_err(|e| TlsSetupError(e.to_string()))?;
        }
        let pkix = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsSetupError(e.to_string()))?;
        Ok(TlsContext { provider, pkix })
    }

    /// A client configuration whose verifier enforces `demand`, and the cell in which it
    /// records how the peer was verified.
    pub fn client_config(
        &self,
        demand: &TlsDemand,
    ) -> Result<(Arc<ClientConfig>, Arc<Mutex<Verification>>), TlsSetupError> {
        let outcome = Arc::new(Mutex::new(Verification::None));
        let verifier = Arc::new(PeerVerifier {
            demand: demand.clone(),
            pkix: self.pkix.clone(),
            provider: self.provider.clone(),
            outcome: outcome.clone(),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok((Arc::new(config), outcome))
    }
}

/// Checks a server certificate as the hop's [`TlsDemand`] says.
#[derive(Debug)]
pub struct PeerVerifier {
    demand: TlsDemand,
    pkix: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    outcome: Arc<Mutex<Verification>>,
}

impl PeerVerifier {
    fn record(&self, v: Verification) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    fn pkix_for_any(
        verifier: &WebPkiServerVerifier,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        names: &[String],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let mut last = rustls::Error::General("no name to verify".into());
        for name in names {
            let Ok(server_name) = ServerName::try_from(name.as_str()) else { continue };
            match verifier.verify_server_cert(end_entity, intermediates, &server_name, &[], now) {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn dane(
        &self,
        records: &[TlsaRecord],
        names: &[String],
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if records.iter().any(|r| r.usage == dane::USAGE_DANE_EE && dane::matches(r, end_entity)) {
            return Ok(());
        }
        for anchor in intermediates {
            if !records.iter().any(|r| r.usage == dane::USAGE_DANE_TA && dane::matches(r, anchor)) {
                continue;
            }
            let mut roots = RootCertStore::empty();
            if roots.add(anchor.clone().into_owned()).is_err() {
                continue;
            }
            let Ok(verifier) =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone()).build()
            else {
                continue;
            };
            if Self::pkix_for_any(&verifier, end_entity, intermediates, names, now).is_ok() {
                return Ok(());
            }
        }
        Err(rustls::Error::General("the certificate matches no TLSA record (DANE)".into()))
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.demand {
            TlsDemand::Never | TlsDemand::Encrypted => {}
            TlsDemand::Opportunistic { names } => {
                if Self::pkix_for_any(&self.pkix, end_entity, intermediates, names, now).is_ok() {
                    self.record(Verification::Pkix);
                }
            }
            TlsDemand::Pkix { names, method } => {
                Self::pkix_for_any(&self.pkix, end_entity, intermediates, names, now)?;
                self.record(*method);
            }
            TlsDemand::Dane { records, names } => {
                self.dane(records, names, end_entity, intermediates, now)?;
                self.record(Verification::Dane);
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::StaticDns;

    fn candidate(host: &str, mx_secure: bool) -> Candidate {
        Candidate { host: host.into(), port: 25, mx_secure, from_mx: true }
    }

    #[tokio::test]
    async fn strongest_policy_wins() {
        let dns = StaticDns::new();
        let tlsa = TlsaRecord { usage: 3, selector: 1, matching: 1, data: vec![7; 32] };
        dns.add_tlsa("_25._tcp.mx.dane.test", tlsa.clone());
        dns.add_tlsa("_25._tcp.mx.pkixonly.test", TlsaRecord { usage: 1, ..tlsa.clone() });
        dns.set_failing("_25._tcp.mx.broken.test");
        let config = DeliveryConfig { tls_required_domains: vec!["required.test".into()], ..Default::default() };
        let sts = mta_sts::parse_policy("version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n").unwrap();
        let policy = |domain: &'static str, host: &'static str, secure: bool, sts: Option<&'static StsPolicy>| {
            let (dns, config) = (dns.clone(), config.clone());
            async move { host_policy(&config, &dns, RouteKind::Mx, domain, &candidate(host, secure), secure, sts).await }
        };
        let sts: &'static StsPolicy = Box::leak(Box::new(sts));

        assert!(matches!(
            policy("dane.test", "mx.dane.test", true, Some(sts)).await,
            HostPolicy::Use(TlsDemand::Dane { .. })
        ));
        // Without DNSSEC the TLSA records do not count.
        assert!(matches!(
            policy("dane.test", "mx.dane.test", false, None).await,
            HostPolicy::Use(TlsDemand::Opportunistic { .. })
        ));
        assert_eq!(
            policy("pkixonly.test", "mx.pkixonly.test", true, None).await,
            HostPolicy::Use(TlsDemand::Encrypted)
        );
        assert!(matches!(policy("broken.test", "mx.broken.test", true, None).await, HostPolicy::Defer(_)));
        assert!(matches!(
            policy("sts.test", "mx.sts.test", false, Some(sts)).await,
            HostPolicy::Use(TlsDemand::Pkix { method: Verification::MtaSts, .. })
        ));
        assert!(matches!(policy("sts.test", "evil.example", false, Some(sts)).await, HostPolicy::Skip(_)));
        assert_eq!(
            policy("required.test", "mx.elsewhere.example", false, None).await,
            HostPolicy::Use(TlsDemand::Pkix { names: vec!["required.test".into()], method: Verification::Pkix })
        );
        assert_eq!(
            policy("plain.test", "mx.plain.test", false, None).await,
            HostPolicy::Use(TlsDemand::Opportunistic { names: vec!["plain.test".into(), "mx.plain.test".into()] })
        );
        let smart = host_policy(
            &config,
            &dns,
            RouteKind::SmartHost(SmartHostTls::None),
            "",
            &candidate("relay", false),
            false,
            None,
        )
        .await;
        assert_eq!(smart, HostPolicy::Use(TlsDemand::Never));
    }
}
