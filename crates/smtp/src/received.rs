//! The Received header carepost adds to every message it accepts (RFC 5321 section 4.4,
//! with the protocol names of RFC 3848 and RFC 6531), in Postfix's layout.
//!
//! It deliberately leaves out `for <recipient>` and the authenticated account: a Received
//! header travels with the message to every later hop, and the recipient of a Bcc, or the
//! name of the staff member who sent it, is not for them to read.

use std::net::IpAddr;

use carepost_model::TlsInfo;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::tls::cipher_bits;

/// What the header says about the session.
pub struct Trace<'a> {
    pub helo: Option<&'a str>,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    pub esmtp: bool,
    pub tls: Option<&'a TlsInfo>,
    pub authenticated: bool,
    pub smtputf8: bool,
}

/// The `with` keyword: SMTP, ESMTP, then S for TLS and A for authentication (RFC 3848);
/// UTF8SMTP for SMTPUTF8 transactions (RFC 6531).
pub fn protocol(t: &Trace<'_>) -> String {
    let base = match (t.smtputf8, t.esmtp) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    };
    let mut p = base.to_owned();
    if t.tls.is_some() {
        p.push('S');
    }
    if t.authenticated {
        p.push('A');
    }
    p
}

/// Makes a client-supplied HELO name safe inside a header comment-free clause.
fn clean_helo(helo: &str) -> String {
    let cleaned: String = helo
        .chars()
        .take(255)
        .map(|c| if c.is_ascii_alphanumeric() || ".-_:[]".contains(c) { c } else { '_' })
        .collect();
    if cleaned.is_empty() { "unknown".into() } else { cleaned }
}

fn ip_literal(ip: IpAddr) -> String {
    match carepost_model::canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    }
}

/// The header, folded, ending in CRLF.
pub fn header(t: &Trace<'_>, now: OffsetDateTime) -> String {
    let mut h = String::with_capacity(320);
    h.push_str("Received: from ");
    h.push_str(&clean_helo(t.helo.unwrap_or("unknown")));
    h.push_str(" ([");
    h.push_str(&ip_literal(t.client_ip));
    h.push_str("])\r\n");
    if let Some(tls) = t.tls {
        let bits = cipher_bits(&tls.cipher);
        h.push_str(&format!("\t(using {} with cipher {} ({bits}/{bits} bits))\r\n", tls.version, tls.cipher));
    }
    h.push_str(&format!("\tby {} (carepost) with {};\r\n\t", t.hostname, protocol(t)));
    let date = now
        .format(format_description!(
            "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] +0000 (UTC)"
        ))
        .unwrap_or_default();
    h.push_str(&date);
    h.push_str("\r\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_like_header() {
        let tls = TlsInfo { version: "TLSv1.3".into(), cipher: "TLS_AES_256_GCM_SHA384".into() };
        let t = Trace {
            helo: Some("client.example (evil)\r\nX-Injected: 1"),
            client_ip: "::ffff:192.0.2.7".parse().unwrap(),
            hostname: "mx.carepost.example",
            esmtp: true,
            tls: Some(&tls),
            authenticated: true,
            smtputf8: false,
        };
        let now = time::macros::datetime!(2026-03-05 09:04:05 UTC);
        let h = header(&t, now);
        assert_eq!(
            h,
            "Received: from client.example__evil___X-Injected:_1 ([192.0.2.7])\r\n\
             \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\
             \tby mx.carepost.example (carepost) with ESMTPSA;\r\n\
             \tThu, 5 Mar 2026 09:04:05 +0000 (UTC)\r\n"
        );
        let plain = Trace { tls: None, authenticated: false, smtputf8: true, ..t };
        assert_eq!(protocol(&plain), "UTF8SMTP");
        assert_eq!(protocol(&Trace { esmtp: false, smtputf8: false, ..plain }), "SMTP");
    }
}
