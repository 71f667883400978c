//! SMTP TLS reporting (RFC 8460): carepost, as a sender, counts the TLS sessions it made to
//! each recipient domain under that domain's policy (DANE, MTA-STS, or none) and the ways
//! they failed, and once a UTC day is over sends each domain that publishes a
//! `_smtp._tls` record its daily report (gzipped JSON, by mail or HTTPS POST).
//!
//! Counts are kept in memory until the report is sent: a restart loses the current day's
//! counts, which RFC 8460 allows (reports are best effort) and which keeps recipient domains
//! off the disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::sync::Mutex;

use bytes::Bytes;
use carepost_model::{Address, BodyType, Envelope, Recipient, TenantId, Timestamp};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};
use mail_auth::report::tlsrpt::{
    DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary, TlsReport,
};

use crate::client::ClientError;
use crate::dns::Dns;
use crate::tls_policy::TlsDemand;
use crate::tls_policy::mta_sts::{StsMode, StsPolicy};
use crate::{Spool, Submission};

const DAY_SECS: i64 = 86_400;

/// The policy a session was made under, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedPolicy {
    pub kind: PolicyType,
    pub strings: Vec<String>,
}

impl ReportedPolicy {
    pub fn none() -> Self {
        ReportedPolicy { kind: PolicyType::NoPolicyFound, strings: Vec::new() }
    }

    /// The policy behind a host's TLS demand (`sts` when an MTA-STS policy is in force).
    pub fn of(demand: &TlsDemand, sts: Option<&StsPolicy>) -> Self {
        match demand {
            TlsDemand::Dane { records, .. } => ReportedPolicy {
                kind: PolicyType::Tlsa,
                strings: records
                    .iter()
                    .map(|r| format!("{} {} {} {}", r.usage, r.selector, r.matching, hex(&r.data)))
                    .collect(),
            },
            _ => match sts.filter(|p| p.mode != StsMode::None) {
                Some(p) => ReportedPolicy { kind: PolicyType::Sts, strings: sts_strings(p) },
                None => ReportedPolicy::none(),
            },
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sts_strings(p: &StsPolicy) -> Vec<String> {
    let mode = match p.mode {
        StsMode::Enforce => "enforce",
        StsMode::Testing => "testing",
        StsMode::None => "none",
    };
    let mut out = vec!["version: STSv1".to_owned(), format!("mode: {mode}")];
    out.extend(p.mx.iter().map(|m| format!("mx: {m}")));
    out.push(format!("max_age: {}", p.max_age));
    out
}

/// The RFC 8460 result type of a failed connection, or `None` when the failure had nothing
/// to do with TLS.
pub fn result_type(e: &ClientError) -> Option<ResultType> {
    match e {
        ClientError::NoStartTls { .. } => Some(ResultType::StartTlsNotSupported),
        ClientError::Tls { reason, .. } => {
            let r = reason.to_ascii_lowercase();
            Some(if r.contains("tlsa") {
                ResultType::TlsaInvalid
            } else if r.contains("not valid for name") || r.contains("notvalidforname") {
                ResultType::CertificateHostMismatch
            } else if r.contains("expired") {
                ResultType::CertificateExpired
            } else if r.contains("unknownissuer") || r.contains("unknown issuer") {
                ResultType::CertificateNotTrusted
            } else {
                ResultType::ValidationFailure
            })
        }
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FailureKey {
    result: ResultType,
    mx: String,
    ip: Option<IpAddr>,
}

#[derive(Debug, Default)]
struct DomainDay {
    policy: Option<ReportedPolicy>,
    mx_hosts: BTreeSet<String>,
    success: u32,
    failures: HashMap<FailureKey, u32>,
}

/// Session counts per UTC day and recipient domain.
#[derive(Default)]
pub struct TlsRptCollector {
    days: Mutex<BTreeMap<i64, HashMap<String, DomainDay>>>,
}

fn day_of(t: Timestamp) -> i64 {
    t.as_micros().div_euclid(1_000_000 * DAY_SECS)
}

impl TlsRptCollector {
    fn entry<R>(&self, at: Timestamp, domain: &str, policy: &ReportedPolicy, f: impl FnOnce(&mut DomainDay) -> R) -> R {
        let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        let day = days.entry(day_of(at)).or_default().entry(domain.to_ascii_lowercase()).or_default();
        // The strongest policy seen that day is the one reported.
        if day.policy.as_ref().is_none_or(|p| p.kind == PolicyType::NoPolicyFound) {
            day.policy = Some(policy.clone());
        }
        f(day)
    }

    pub fn success(&self, at: Timestamp, domain: &str, policy: &ReportedPolicy, mx: &str) {
        self.entry(at, domain, policy, |d| {
            d.success += 1;
            d.mx_hosts.insert(mx.to_owned());
        });
    }

    pub fn failure(
        &self,
        at: Timestamp,
        domain: &str,
        policy: &ReportedPolicy,
        mx: &str,
        ip: Option<IpAddr>,
        result: ResultType,
    ) {
        self.entry(at, domain, policy, |d| {
            d.mx_hosts.insert(mx.to_owned());
            *d.failures.entry(FailureKey { result, mx: mx.to_owned(), ip }).or_default() += 1;
        });
    }

    /// The earliest day with counts, if it is before `today`.
    pub fn finished_day(&self, now: Timestamp) -> Option<i64> {
        let days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        days.keys().next().copied().filter(|d| *d < day_of(now))
    }

    /// Takes every report of days before `before_day`.
    pub fn take_reports(&self, before_day: i64, organization: &str, contact: &str) -> Vec<(String, TlsReport)> {
        let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        let finished: Vec<i64> = days.keys().copied().filter(|d| *d < before_day).collect();
        let mut out = Vec::new();
        for day in finished {
            let Some(domains) = days.remove(&day) else { continue };
            for (domain, counts) in domains {
                out.push((domain.clone(), report(day, &domain, counts, organization, contact)));
            }
        }
        out
    }
}

fn report(day: i64, domain: &str, counts: DomainDay, organization: &str, contact: &str) -> TlsReport {
    let start = day * DAY_SECS;
    let policy = counts.policy.unwrap_or_else(ReportedPolicy::none);
    let total_failure = counts.failures.values().sum();
    let mut failure_details: Vec<FailureDetails> = counts
        .failures
        .into_iter()
        .map(|(key, n)| FailureDetails {
            result_type: key.result,
            receiving_mx_hostname: Some(key.mx),
            receiving_ip: key.ip,
            failed_session_count: n,
            ..FailureDetails::default()
        })
        .collect();
    failure_details.sort_by(|a, b| a.receiving_mx_hostname.cmp(&b.receiving_mx_hostname));
    TlsReport {
        organization_name: Some(organization.to_owned()),
        date_range: DateRange {
            start_datetime: mail_parser::DateTime::from_timestamp(start),
            end_datetime: mail_parser::DateTime::from_timestamp(start + DAY_SECS - 1),
        },
        contact_info: Some(contact.to_owned()),
        report_id: format!("{}_{domain}@{organization}", mail_parser::DateTime::from_timestamp(start).to_rfc3339()),
        policies: vec![Policy {
            policy: PolicyDetails {
                policy_type: policy.kind,
                policy_string: policy.strings,
                policy_domain: domain.to_owned(),
                mx_host: counts.mx_hosts.into_iter().collect(),
            },
            summary: Summary { total_success: counts.success, total_failure },
            failure_details,
        }],
    }
}

/// Where a domain wants its reports: the `rua` of its single valid `_smtp._tls` record.
pub async fn report_addresses(dns: &dyn Dns, domain: &str) -> Vec<ReportUri> {
    let Ok(answer) = dns.txt(&format!("_smtp._tls.{domain}")).await else { return Vec::new() };
    let records: Vec<TlsRpt> = answer
        .records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=TLSRPTv1"))
        .filter_map(|r| TlsRpt::parse(r.as_bytes()).ok())
        .collect();
    match <[TlsRpt; 1]>::try_from(records) {
        Ok([record]) => record.rua,
        Err(_) => Vec::new(),
    }
}

/// Sends one domain's report to every address it asked for. Returns how many went out.
pub async fn deliver(
    spool: &Spool,
    http: &reqwest::Client,
    hostname: &str,
    domain: &str,
    report: &TlsReport,
    to: &[ReportUri],
) -> usize {
    let mut sent = 0;
    let mailboxes: Vec<Address> = to
        .iter()
        .filter_map(|u| match u {
            ReportUri::Mail(m) => Address::parse(m.trim_start_matches("mailto:")).ok(),
            ReportUri::Http(_) => None,
        })
        .collect();
    if !mailboxes.is_empty() {
        let list: Vec<&str> = mailboxes.iter().map(Address::as_str).collect();
        let from = format!("noreply-tls-reports@{hostname}");
        match report.to_rfc5322(domain, hostname, ("TLS reports", from.as_str()), list.iter().copied()) {
            Ok(text) => {
                let envelope = Envelope {
                    // Reports are not answered with bounces (RFC 8460 section 5.3 leaves the
                    // sender open; the null sender keeps report loops impossible).
                    mail_from: None,
                    recipients: mailboxes.iter().cloned().map(Recipient::new).collect(),
                    dsn_ret: None,
                    dsn_envid: None,
                    require_tls: false,
                    smtputf8: false,
                    body: BodyType::SevenBit,
                };
                let submission = Submission::new(
                    TenantId::default(),
                    envelope,
                    carepost_model::Arrival::system(),
                    Bytes::from(text),
                );
                match spool.accept(submission).await {
                    Ok(_) => sent += mailboxes.len(),
                    Err(e) => tracing::warn!(error = %e, "cannot queue a TLS report"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot build a TLS report"),
        }
    }
    for url in to.iter().filter_map(|u| match u {
        ReportUri::Http(url) => Some(url),
        ReportUri::Mail(_) => None,
    }) {
        let mut gz = mail_auth::flate2::write::GzEncoder::new(Vec::new(), mail_auth::flate2::Compression::default());
        if gz.write_all(report.to_json().as_bytes()).is_err() {
            continue;
        }
        let Ok(body) = gz.finish() else { continue };
        let posted =
            http.post(url).header(reqwest::header::CONTENT_TYPE, "application/tlsrpt+gzip").body(body).send().await;
        match posted {
            Ok(r) if r.status().is_success() => sent += 1,
            Ok(r) => tracing::info!(status = %r.status(), "TLS report POST refused"),
            Err(e) => tracing::info!(error = %e, "TLS report POST failed"),
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{StaticDns, TlsaRecord};

    #[test]
    fn counts_sessions_per_day_and_domain() {
        let c = TlsRptCollector::default();
        let day1 = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let day2 = Timestamp::parse("2026-11-24T01:00:00Z").unwrap();
        let dane = ReportedPolicy::of(
            &TlsDemand::Dane {
                records: vec![TlsaRecord { usage: 3, selector: 1, matching: 1, data: vec![0xab; 32] }],
                names: vec![],
            },
            None,
        );
        c.success(day1, "Partner.Example", &dane, "mx1.partner.example");
        c.success(day1, "partner.example", &dane, "mx1.partner.example");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        c.failure(day1, "partner.example", &dane, "mx2.partner.example", Some(ip), ResultType::TlsaInvalid);
        c.success(day2, "partner.example", &dane, "mx1.partner.example");
        assert_eq!(c.finished_day(day1), None);
        assert_eq!(c.finished_day(day2), Some(day_of(day1)));

        let reports = c.take_reports(day_of(day2), "mx.carepost.example", "postmaster@carepost.example");
        assert_eq!(reports.len(), 1);
        let (domain, r) = &reports[0];
        assert_eq!(domain, "partner.example");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["organization-name"], "mx.carepost.example");
        assert_eq!(json["date-range"]["start-datetime"], "2026-11-23T00:00:00Z");
        assert_eq!(json["date-range"]["end-datetime"], "2026-11-23T23:59:59Z");
        let policy = &json["policies"][0];
        assert_eq!(policy["policy"]["policy-type"], "tlsa");
        assert_eq!(policy["policy"]["policy-string"][0], format!("3 1 1 {}", "ab".repeat(32)));
        assert_eq!(policy["policy"]["mx-host"], serde_json::json!(["mx1.partner.example", "mx2.partner.example"]));
        assert_eq!(policy["summary"]["total-successful-session-count"], 2);
        assert_eq!(policy["summary"]["total-failure-session-count"], 1);
        assert_eq!(policy["failure-details"][0]["result-type"], "tlsa-invalid");
        assert_eq!(policy["failure-details"][0]["receiving-ip"], "192.0.2.1");
        assert!(c.take_reports(day_of(day2), "o", "c").is_empty(), "a day is reported once");
        assert_eq!(c.finished_day(Timestamp::parse("2026-11-25T00:00:00Z").unwrap()), Some(day_of(day2)));
    }

    #[test]
    fn failures_map_to_rfc_8460_result_types() {
        let tls = |reason: &str| ClientError::Tls { policy: "MTA-STS", reason: reason.into(), required: true };
        assert_eq!(result_type(&ClientError::NoStartTls { policy: "DANE" }), Some(ResultType::StartTlsNotSupported));
        assert_eq!(
            result_type(&tls("invalid peer certificate: certificate not valid for name \"mx\"")),
            Some(ResultType::CertificateHostMismatch)
        );
        assert_eq!(result_type(&tls("invalid peer certificate: Expired")), Some(ResultType::CertificateExpired));
        assert_eq!(
            result_type(&tls("invalid peer certificate: UnknownIssuer")),
            Some(ResultType::CertificateNotTrusted)
        );
        assert_eq!(result_type(&tls("the certificate matches no TLSA record (DANE)")), Some(ResultType::TlsaInvalid));
        assert_eq!(result_type(&ClientError::Timeout { stage: "greeting" }), None);
    }

    #[tokio::test]
    async fn report_addresses_come_from_one_valid_record() {
        let dns = StaticDns::new();
        dns.add_txt("_smtp._tls.a.example", "v=TLSRPTv1; rua=mailto:tls@a.example,https://reports.a.example/tls");
        dns.add_txt("_smtp._tls.two.example", "v=TLSRPTv1; rua=mailto:x@two.example");
        dns.add_txt("_smtp._tls.two.example", "v=TLSRPTv1; rua=mailto:y@two.example");
        let a = report_addresses(&dns, "a.example").await;
        assert_eq!(a.len(), 2);
        assert!(matches!(&a[0], ReportUri::Mail(m) if m.trim_start_matches("mailto:") == "tls@a.example"));
        assert!(report_addresses(&dns, "two.example").await.is_empty());
        assert!(report_addresses(&dns, "none.example").await.is_empty());
    }
}
