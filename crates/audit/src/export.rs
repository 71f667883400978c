//! Exporting records for a SIEM or an auditor: JSON lines, or RFC 5424 syslog lines.

use std::io::Write;

use carepost_model::Timestamp;
use carepost_store::audit_log::AuditRow;

use crate::{Audit, AuditError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    JsonLines,
    Syslog,
}

/// IANA private enterprise number reserved for documentation (RFC 5612), naming our
/// structured-data element until carepost has its own.
const SD_ID: &str = "audit@32473";

fn json_line(r: &AuditRow) -> String {
    let details: serde_json::Value = serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "seq": r.seq,
        "time": Timestamp::from_micros(r.at).to_rfc3339(),
        "actor": r.actor,
        "action": r.action,
        "target": r.target,
        "source_ip": r.source_ip,
        "outcome": r.outcome,
        "details": details,
        "prev_hash": hex::encode(&r.prev_hash),
        "hash": hex::encode(&r.hash),
    })
    .to_string()
}

/// Escapes a structured-data parameter value (RFC 5424 section 6.3.3).
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// A printable-ASCII token without spaces, as RFC 5424 header fields require.
fn header_token(value: &str, max: usize) -> String {
    let t: String = value.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if t.is_empty() { "-".into() } else { t }
}

fn syslog_line(r: &AuditRow, hostname: &str) -> String {
    // facility 13 (log audit); severity 6 (informational) or 4 (warning) for refusals
    let severity = if r.outcome == "success" { 6 } else { 4 };
    let pri = 13 * 8 + severity;
    format!(
        "<{pri}>1 {time} {host} carepost - {msgid} [{SD_ID} seq=\"{seq}\" actor=\"{actor}\" target=\"{target}\" ip=\"{ip}\" outcome=\"{outcome}\" hash=\"{hash}\"] {details}",
        time = Timestamp::from_micros(r.at).to_rfc3339(),
        host = header_token(hostname, 255),
        msgid = header_token(&r.action, 32),
        seq = r.seq,
        actor = sd_escape(&r.actor),
        target = sd_escape(&r.target),
        ip = sd_escape(r.source_ip.as_deref().unwrap_or("")),
        outcome = sd_escape(&r.outcome),
        hash = hex::encode(&r.hash),
        details = r.details.replace(['\r', '\n'], " "),
    )
}

impl Audit {
    /// Writes every record at or after `since` to `out`, one line each. Returns the count.
    pub async fn export(
        &self,
        since: Option<Timestamp>,
        format: ExportFormat,
        hostname: &str,
        out: &mut (dyn Write + Send),
    ) -> Result<u64, AuditError> {
        let since = since.map(Timestamp::as_micros).unwrap_or(i64::MIN);
        let mut after = 0;
        let mut count = 0;
        loop {
            let page = self.inner.store.audit_records_since(since, after, 5_000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in &page {
                let line = match format {
                    ExportFormat::JsonLines => json_line(r),
                    ExportFormat::Syslog => syslog_line(r, hostname),
                };
                writeln!(out, "{line}").map_err(AuditError::Export)?;
                count += 1;
            }
        }
        out.flush().map_err(AuditError::Export)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_follow_rfc5424() {
        let r = AuditRow {
            seq: 7,
            at: 0,
            actor: "user:a\"b".into(),
            action: "smtp.auth".into(),
            target: "acct]x".into(),
            source_ip: Some("192.0.2.1".into()),
            outcome: "failure".into(),
            details: "{\"n\":\"1\"}".into(),
            prev_hash: vec![0; 32],
            hash: vec![1; 32],
        };
        let line = syslog_line(&r, "mx1.example.org");
        assert!(line.starts_with("<108>1 1970-01-01T00:00:00Z mx1.example.org carepost - smtp.auth [audit@32473 seq=\"7\" actor=\"user:a\\\"b\" target=\"acct\\]x\""), "{line}");
        assert!(line.ends_with("] {\"n\":\"1\"}"));
        let json: serde_json::Value = serde_json::from_str(&json_line(&r)).unwrap();
        assert_eq!(json["seq"], 7);
        assert_eq!(json["details"]["n"], "1");
    }
}
