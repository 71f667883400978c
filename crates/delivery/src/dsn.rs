//! Delivery status notifications (RFC 3464, with RFC 6533 for UTF-8 addresses): the bounce
//! and delay notices carepost sends to a message's sender, quoting the remote reply.

use carepost_model::header::headers_of;
use carepost_model::{DsnReturn, Timestamp};
use time::format_description::well_known::Rfc2822;

/// What happened to a recipient (RFC 3464 section 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    /// Handed to a server that does not itself send DSNs.
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient's part of a notice.
#[derive(Debug, Clone)]
pub struct DsnRecipient {
    pub address: String,
    /// ORCPT as received, `addr-type;xtext`.
    pub orcpt: Option<String>,
    pub action: Action,
    /// Enhanced status code, `5.1.1`.
    pub status: String,
    /// The remote host that answered, if one did.
    pub remote_mta: Option<String>,
    /// The remote reply (`550 5.1.1 ...`), only when a remote server gave it.
    pub diagnostic: Option<String>,
    /// Plain words for the sender.
    pub reason: String,
    pub last_attempt: Option<Timestamp>,
    pub will_retry_until: Option<Timestamp>,
}

/// Everything a notice says.
pub struct DsnReport<'a> {
    pub reporting_mta: &'a str,
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    pub arrival: Timestamp,
    /// carepost's id of the original message (for the sender's help desk).
    pub queue_id: &'a str,
    pub recipients: &'a [DsnRecipient],
    /// The original message.
    pub original: &'a [u8],
    /// RET: the whole message or only its headers (the default: headers carry less PHI).
    pub ret: Option<DsnReturn>,
}

fn date(t: Timestamp) -> String {
    t.to_datetime().format(&Rfc2822).unwrap_or_else(|_| t.to_rfc3339())
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    flat.chars().take(max).collect()
}

fn address_field(address: &str) -> String {
    if address.is_ascii() { format!("rfc822; {address}") } else { format!("utf-8; {address}") }
}

/// Builds the notice as a complete RFC 5322 message.
pub fn build(report: &DsnReport<'_>, message_id: &str) -> Vec<u8> {
    let worst = if report.recipients.iter().any(|r| r.action == Action::Failed) {
        Action::Failed
    } else if report.recipients.iter().any(|r| r.action == Action::Delayed) {
        Action::Delayed
    } else {
        Action::Delivered
    };
    let subject = match worst {
        Action::Failed => "Undelivered Mail Returned to Sender",
        Action::Delayed => "Delayed Mail (still being retried)",
        _ => "Successful Mail Delivery Report",
    };
    let utf8 = report.recipients.iter().any(|r| !r.address.is_ascii()) || !report.sender.is_ascii();
    let boundary = format!("carepost-dsn-{}", message_id.split('@').next().unwrap_or("b").trim_start_matches('<'));
    let now = Timestamp::now();
    let mut m = String::with_capacity(2048 + report.original.len());
    m.push_str(&format!("From: Mail Delivery System <MAILER-DAEMON@{}>\r\n", report.reporting_mta));
    m.push_str(&format!("To: <{}>\r\n", report.sender));
    m.push_str(&format!("Subject: {subject}\r\n"));
    m.push_str(&format!("Date: {}\r\n", date(now)));
    m.push_str(&format!("Message-ID: {message_id}\r\n"));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a delivery status notification in MIME format.\r\n\r\n");

    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ));
    m.push_str(&format!("This is the mail system at {}.\r\n\r\n", report.reporting_mta));
    match worst {
        Action::Failed => m.push_str("Your message could not be delivered to one or more recipients. It has not been sent to them.\r\n"),
        Action::Delayed => m.push_str("Your message has not been delivered yet to one or more recipients. carepost keeps trying; you do not need to send it again.\r\n"),
        _ => m.push_str("Your message was delivered to the recipients below, as you asked to be told.\r\n"),
    }
    m.push_str(&format!("Message reference: {}\r\n\r\n", report.queue_id));
    for r in report.recipients {
        m.push_str(&format!("<{}>: {}\r\n", r.address, one_line(&r.reason, 400)));
        if let (Some(host), Some(diag)) = (&r.remote_mta, &r.diagnostic) {
            m.push_str(&format!("    {host} said: {}\r\n", one_line(diag, 900)));
        }
        if let Some(until) = r.will_retry_until {
            m.push_str(&format!("    carepost will keep trying until {}.\r\n", date(until)));
        }
    }
    m.push_str("\r\n");

    let status_type = if utf8 { "message/global-delivery-status" } else { "message/delivery-status" };
    m.push_str(&format!("--{boundary}\r\nContent-Type: {status_type}\r\n\r\n"));
    m.push_str(&format!("Reporting-MTA: dns; {}\r\n", report.reporting_mta));
    if let Some(envid) = report.envid {
        m.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid, 200)));
    }
    m.push_str(&format!("Arrival-Date: {}\r\n", date(report.arrival)));
    for r in report.recipients {
        m.push_str("\r\n");
        if let Some(orcpt) = &r.orcpt {
            m.push_str(&format!("Original-Recipient: {}\r\n", one_line(orcpt, 500)));
        }
        m.push_str(&format!("Final-Recipient: {}\r\n", address_field(&r.address)));
        m.push_str(&format!("Action: {}\r\n", r.action.as_str()));
        m.push_str(&format!("Status: {}\r\n", r.status));
        if let Some(host) = &r.remote_mta {
            m.push_str(&format!("Remote-MTA: dns; {host}\r\n"));
        }
        if let Some(diag) = &r.diagnostic {
            m.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(diag, 900)));
        }
        if let Some(t) = r.last_attempt {
            m.push_str(&format!("Last-Attempt-Date: {}\r\n", date(t)));
        }
        if let Some(t) = r.will_retry_until {
            m.push_str(&format!("Will-Retry-Until: {}\r\n", date(t)));
        }
    }
    m.push_str("\r\n");

    let mut out = m.into_bytes();
    // A delay notice never returns content; a bounce returns the headers unless RET=FULL.
    let full = worst == Action::Failed && report.ret == Some(DsnReturn::Full);
    let (part_type, content) = if full {
        (if utf8 { "message/global" } else { "message/rfc822" }, report.original)
    } else {
        (if utf8 { "message/global-headers" } else { "text/rfc822-headers" }, headers_of(report.original))
    };
    out.extend_from_slice(format!("--{boundary}\r\nContent-Type: {part_type}\r\n\r\n").as_bytes());
    out.extend_from_slice(content);
    if !content.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(action: Action) -> DsnRecipient {
        DsnRecipient {
            address: "patient@example.net".into(),
            orcpt: Some("rfc822;patient@example.net".into()),
            action,
            status: "5.1.1".into(),
            remote_mta: Some("mx.example.net".into()),
            diagnostic: Some("550 5.1.1 <patient@example.net>: user unknown".into()),
            reason: "the recipient's server refused the address".into(),
            last_attempt: Some(Timestamp::now()),
            will_retry_until: None,
        }
    }

    const ORIGINAL: &[u8] = b"From: clinic@example.org\r\nSubject: results\r\n\r\nSECRET BODY\r\n";

    #[test]
    fn bounce_is_a_multipart_report_quoting_the_remote_reply() {
        let rcpts = [recipient(Action::Failed)];
        let report = DsnReport {
            reporting_mta: "mx.carepost.test",
            sender: "clinic@example.org",
            envid: Some("env-42"),
            arrival: Timestamp::now(),
            queue_id: "01ABC",
            recipients: &rcpts,
            original: ORIGINAL,
            ret: None,
        };
        let text = String::from_utf8(build(&report, "<x@mx.carepost.test>")).unwrap();
        for needle in [
            "Content-Type: multipart/report; report-type=delivery-status;",
            "Subject: Undelivered Mail Returned to Sender",
            "Reporting-MTA: dns; mx.carepost.test",
            "Original-Envelope-Id: env-42",
            "Original-Recipient: rfc822;patient@example.net",
            "Final-Recipient: rfc822; patient@example.net",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.example.net",
            "Diagnostic-Code: smtp; 550 5.1.1 <patient@example.net>: user unknown",
            "Content-Type: text/rfc822-headers",
            "Subject: results",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("SECRET BODY"), "headers only unless RET=FULL");
        let full = String::from_utf8(build(&DsnReport { ret: Some(DsnReturn::Full), ..report }, "<y@h>")).unwrap();
        assert!(full.contains("Content-Type: message/rfc822") && full.contains("SECRET BODY"));
    }

    #[test]
    fn delay_notice_never_returns_the_body() {
        let mut r = recipient(Action::Delayed);
        r.status = "4.4.1".into();
        r.will_retry_until = Some(Timestamp::now().plus_seconds(86400));
        let rcpts = [r];
        let report = DsnReport {
            reporting_mta: "h",
            sender: "s@example.org",
            envid: None,
            arrival: Timestamp::now(),
            queue_id: "q",
            recipients: &rcpts,
            original: ORIGINAL,
            ret: Some(DsnReturn::Full),
        };
        let text = String::from_utf8(build(&report, "<z@h>")).unwrap();
        assert!(text.contains("Action: delayed") && text.contains("Will-Retry-Until:"), "{text}");
        assert!(!text.contains("SECRET BODY"));
    }
}
