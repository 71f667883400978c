//! Transforming one recipient's copy as policy decided, before DKIM signing: the header
//! actions (`add_header`, `tag_subject`), and end-to-end encryption with S/MIME or PGP/MIME.
//! Encryption protects the Subject too: it travels inside, and the outer Subject is neutral.

use std::collections::BTreeMap;

use base64::Engine as _;
use carepost_secure::config::OrganizationSigners;
use carepost_secure::keys::OpenPgpKey;
use carepost_secure::smime::RecipientCert;
use carepost_secure::{mime, openpgp, smime};

/// The key a recipient's copy is encrypted to.
pub enum EndToEnd {
    Smime(RecipientCert),
    Pgp(OpenPgpKey),
}

impl EndToEnd {
    /// How the queue records the delivery: `smime` or `pgp`.
    pub fn method(&self) -> &'static str {
        match self {
            EndToEnd::Smime(_) => "smime",
            EndToEnd::Pgp(_) => "pgp",
        }
    }
}

/// Everything done to one recipient's copy beyond DKIM signing.
#[derive(Default)]
pub struct Transform {
    pub end_to_end: Option<EndToEnd>,
    pub add_headers: BTreeMap<String, String>,
    pub tag_subject: Option<String>,
}

impl Transform {
    pub fn is_identity(&self) -> bool {
        self.end_to_end.is_none() && self.add_headers.is_empty() && self.tag_subject.is_none()
    }

    /// Recipients whose copies would come out the same can share one SMTP transaction.
    pub fn sharing_key(&self) -> Option<String> {
        if self.end_to_end.is_some() {
            return None;
        }
        Some(format!("{:?}|{:?}", self.add_headers, self.tag_subject))
    }

    pub fn apply(&self, message: &[u8], signers: &OrganizationSigners) -> Result<Vec<u8>, String> {
        let mut out = apply_header_actions(message, &self.add_headers, self.tag_subject.as_deref());
        if let Some(key) = &self.end_to_end {
            out = encrypt(&out, key, signers)?;
        }
        Ok(out)
    }
}

/// Encrypts a whole RFC 5322 message to one recipient, signing it with the organization's
/// identity when one is configured.
pub fn encrypt(message: &[u8], key: &EndToEnd, signers: &OrganizationSigners) -> Result<Vec<u8>, String> {
    let split = mime::split_protecting_subject(message);
    let entity = match key {
        EndToEnd::Smime(cert) => match &signers.smime {
            Some(signer) => smime::sign_and_encrypt(&split.inner_entity, signer, std::slice::from_ref(cert)),
            None => smime::encrypt(&split.inner_entity, std::slice::from_ref(cert)),
        }
        .map_err(|e| format!("S/MIME encryption failed: {e}"))?,
        EndToEnd::Pgp(k) => openpgp::encrypt(&split.inner_entity, std::slice::from_ref(k), signers.pgp.as_ref())
            .map_err(|e| format!("OpenPGP encryption failed: {e}"))?,
    };
    Ok(mime::join_protected(&split.outer_headers, &entity))
}

/// A header value as it may appear on the wire: ASCII as is, anything else as an RFC 2047
/// encoded-word.
fn header_text(value: &str) -> String {
    if value.is_ascii() {
        value.to_owned()
    } else {
        format!("=?utf-8?b?{}?=", base64::engine::general_purpose::STANDARD.encode(value))
    }
}

/// Adds header fields at the end of the header section and puts `tag` in front of the
/// Subject (adding a Subject when there is none). Policy validated names and values.
pub fn apply_header_actions(message: &[u8], add: &BTreeMap<String, String>, tag: Option<&str>) -> Vec<u8> {
    if add.is_empty() && tag.is_none() {
        return message.to_vec();
    }
    let end = message.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 2).unwrap_or(message.len());
    let (head, body) = message.split_at(end);
    let mut out = Vec::with_capacity(message.len() + 128);
    let mut tagged = false;
    let mut line_start = true;
    let mut i = 0;
    while i < head.len() {
        if line_start
            && !tagged
            && head.len() - i >= 8
            && head[i..i + 8].eq_ignore_ascii_case(b"subject:")
            && let Some(tag) = tag
        {
            out.extend_from_slice(&head[i..i + 8]);
            i += 8;
            while i < head.len() && (head[i] == b' ' || head[i] == b'\t') {
                i += 1;
            }
            out.push(b' ');
            out.extend_from_slice(header_text(tag).as_bytes());
            out.push(b' ');
            tagged = true;
            line_start = false;
            continue;
        }
        line_start = head[i] == b'\n';
        out.push(head[i]);
        i += 1;
    }
    if let (Some(tag), false) = (tag, tagged) {
        out.extend_from_slice(format!("Subject: {}\r\n", header_text(tag)).as_bytes());
    }
    for (name, value) in add {
        out.extend_from_slice(format!("{name}: {}\r\n", header_text(value)).as_bytes());
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_actions_tag_the_subject_and_add_fields() {
        let m = b"From: a@x.org\r\nSubject: Results\r\nTo: b@y.org\r\n\r\nbody\r\n";
        let add = BTreeMap::from([("X-Classification".to_owned(), "phi".to_owned())]);
        let out = String::from_utf8(apply_header_actions(m, &add, Some("[SECURE]"))).unwrap();
        assert_eq!(
            out,
            "From: a@x.org\r\nSubject: [SECURE] Results\r\nTo: b@y.org\r\nX-Classification: phi\r\n\r\nbody\r\n"
        );
        let out = String::from_utf8(apply_header_actions(
            b"From: a@x.org\r\n\r\nb",
            &BTreeMap::new(),
            Some("Vertraulich – ärztlich"),
        ))
        .unwrap();
        assert!(out.starts_with("From: a@x.org\r\nSubject: =?utf-8?b?"), "{out}");
        assert_eq!(apply_header_actions(m, &BTreeMap::new(), None), m.to_vec());
        // "Subject:" inside the body is not a header.
        let out = apply_header_actions(b"From: a\r\n\r\nSubject: not a header\r\n", &BTreeMap::new(), Some("[T]"));
        assert!(String::from_utf8(out).unwrap().ends_with("\r\n\r\nSubject: not a header\r\n"));
    }
}
