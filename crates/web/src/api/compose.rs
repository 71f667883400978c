//! From a checked request to a MIME message and its envelope, shared by `/api/v1` and
//! `/v3/mail/send`. Everything a client can get wrong is found here, before anything is
//! stored.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use carepost_model::{Address, BodyType, Envelope, Recipient};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as MimeAddress;
use mail_builder::headers::text::Text;

use super::ApiError;

/// Recipients of one message (to, cc and bcc together).
pub const MAX_RECIPIENTS: usize = 1000;
const MAX_SUBJECT: usize = 998;
const MAX_HEADERS: usize = 100;

/// Headers the API sets itself; a client cannot give them.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "sender",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "received",
    "return-path",
    "dkim-signature",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "authentication-results",
    // The sender's portal passphrase is the request's `portal_passphrase`, never a header.
    "x-carepost-passphrase",
];

#[derive(Debug, Clone)]
pub struct Mailbox {
    pub email: Address,
    pub name: Option<String>,
}

impl Mailbox {
    pub fn parse(field: &str, email: &str, name: Option<&str>) -> Result<Self, ApiError> {
        let email =
            Address::parse(email.trim()).map_err(|e| ApiError::invalid(field, format!("not a valid address: {e}")))?;
        let name = name.map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if name.as_deref().is_some_and(|n| n.chars().any(char::is_control) || n.len() > 256) {
            return Err(ApiError::invalid(field, "the name has control characters or is longer than 256 bytes"));
        }
        Ok(Mailbox { email, name })
    }

    fn mime(&self) -> MimeAddress<'static> {
        MimeAddress::new_address(self.name.clone(), self.email.as_str().to_owned())
    }
}

/// A decoded attachment. Its bytes are shared, not copied, by every message built from one
/// request (a SendGrid request with 1,000 personalizations decodes its files once).
#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub content: Bytes,
    /// `Some(cid)` for an inline part.
    pub inline_cid: Option<String>,
}

impl Attachment {
    pub fn parse(
        field: &str,
        content_b64: &str,
        filename: &str,
        content_type: Option<&str>,
        inline_cid: Option<&str>,
    ) -> Result<Self, ApiError> {
        // Folded base64 is cleaned into a copy; the usual unfolded content is decoded in place.
        let cleaned: Option<String> = content_b64
            .bytes()
            .any(|b| b.is_ascii_whitespace())
            .then(|| content_b64.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let content = STANDARD
            .decode(cleaned.as_deref().unwrap_or(content_b64).as_bytes())
            .map_err(|_| ApiError::invalid(format!("{field}.content"), "not valid base64"))?;
        if filename.trim().is_empty()
            || filename.len() > 255
            || filename.chars().any(|c| c.is_control() || c == '/' || c == '\\')
        {
            return Err(ApiError::invalid(
                format!("{field}.filename"),
                "a file name has 1 to 255 characters, no slashes or control characters",
            ));
        }
        let content_type = content_type.map(str::trim).filter(|t| !t.is_empty()).unwrap_or("application/octet-stream");
        if !media_type_ok(content_type) {
            return Err(ApiError::invalid(format!("{field}.type"), "not a media type such as application/pdf"));
        }
        if let Some(cid) = inline_cid
            && (cid.is_empty()
                || cid.len() > 255
                || !cid.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>'))
        {
            return Err(ApiError::invalid(format!("{field}.content_id"), "not a valid content id"));
        }
        Ok(Attachment {
            filename: filename.trim().to_owned(),
            content_type: content_type.to_ascii_lowercase(),
            content: Bytes::from(content),
            inline_cid: inline_cid.map(str::to_owned),
        })
    }
}

fn token_ok(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

fn media_type_ok(t: &str) -> bool {
    t.len() <= 127 && t.split_once('/').is_some_and(|(a, b)| token_ok(a) && token_ok(b))
}

/// Checks one extra header: an RFC 5322 field name that carepost does not set itself, and a
/// value on one line.
pub fn check_header(field: &str, name: &str, value: &str) -> Result<(), ApiError> {
    let name_ok = !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if !name_ok {
        return Err(ApiError::invalid(field, format!("'{name}' is not a header field name")));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ApiError::invalid(
            field,
            format!("{name} is set by carepost from the request, not as an extra header"),
        ));
    }
    if value.contains(['\r', '\n']) || value.len() > 998 || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ApiError::invalid(field, format!("the value of {name} must be one line of at most 998 bytes")));
    }
    Ok(())
}

/// Why a body with a bare carriage return is refused.
pub const BARE_CR: &str = "has a carriage return (CR) not followed by a line feed (LF); end lines with LF or CRLF";

/// Whether `text` has a CR that is not the start of a CRLF. Such a CR is refused rather than
/// repaired: some mail servers take it as a line ending, which is how a hidden second message
/// is smuggled past the first (`\r.\r\nMAIL FROM:...`).
pub fn has_bare_cr(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
}

/// A message ready to be built. Body texts and attachment bytes are reference-counted:
/// the drafts of one request share them, and building a message borrows them.
#[derive(Debug, Clone)]
pub struct Draft {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
    pub text: Option<Arc<str>>,
    pub html: Option<Arc<str>>,
    pub attachments: Arc<[Attachment]>,
    pub headers: Vec<(String, String)>,
}

impl Draft {
    /// Checks what the fields cannot check alone: recipients, subject, a body.
    pub fn check(&self, prefix: &str) -> Result<(), ApiError> {
        let total = self.to.len() + self.cc.len() + self.bcc.len();
        if total == 0 {
            return Err(ApiError::invalid(format!("{prefix}to"), "at least one recipient (to, cc or bcc) is required"));
        }
        if total > MAX_RECIPIENTS {
            return Err(ApiError::invalid(
                format!("{prefix}to"),
                format!("at most {MAX_RECIPIENTS} recipients per message"),
            ));
        }
        if self.subject.len() > MAX_SUBJECT || self.subject.contains(['\r', '\n']) {
            return Err(ApiError::invalid(
                format!("{prefix}subject"),
                format!("one line of at most {MAX_SUBJECT} bytes"),
            ));
        }
        if self.text.is_none() && self.html.is_none() {
            return Err(ApiError::invalid(format!("{prefix}text"), "text or html (or both) is required"));
        }
        for (name, body) in [("text", &self.text), ("html", &self.html)] {
            if body.as_deref().is_some_and(has_bare_cr) {
                return Err(ApiError::invalid(format!("{prefix}{name}"), BARE_CR));
            }
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(ApiError::invalid(format!("{prefix}headers"), format!("at most {MAX_HEADERS} extra headers")));
        }
        Ok(())
    }

    /// The envelope: the From address as sender, each distinct recipient once.
    pub fn envelope(&self) -> Envelope {
        let mut seen = HashSet::new();
        let recipients: Vec<Recipient> = self
            .to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .filter(|m| seen.insert(m.email.as_str().to_ascii_lowercase()))
            .map(|m| Recipient::new(m.email.clone()))
            .collect();
        let smtputf8 =
            !self.from.email.as_str().is_ascii() || recipients.iter().any(|r| !r.address.as_str().is_ascii());
        Envelope {
            mail_from: Some(self.from.email.clone()),
            recipients,
            dsn_ret: None,
            dsn_envid: None,
            require_tls: false,
            smtputf8,
            body: BodyType::SevenBit,
        }
    }

    /// The MIME message, with `message_id` (without angle brackets). Bcc recipients are in
    /// the envelope only.
    pub fn build(&self, message_id: &str) -> Result<Vec<u8>, ApiError> {
        // Everything large is borrowed from the draft: the only copy of an attachment made
        // here is its base64 in the output.
        let list = |v: &[Mailbox]| MimeAddress::new_list(v.iter().map(Mailbox::mime).collect());
        let mut b = MessageBuilder::new()
            .from(self.from.mime())
            .message_id(message_id.to_owned())
            .subject(self.subject.clone());
        if !self.to.is_empty() {
            b = b.to(list(&self.to));
        }
        if !self.cc.is_empty() {
            b = b.cc(list(&self.cc));
        }
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.mime());
        }
        for (name, value) in &self.headers {
            b = b.header(name.clone(), Text::new(value.clone()));
        }
        if let Some(text) = self.text.as_deref() {
            b = b.text_body(text);
        }
        if let Some(html) = self.html.as_deref() {
            b = b.html_body(html);
        }
        for a in self.attachments.iter() {
            b = match &a.inline_cid {
                Some(cid) => b.inline(a.content_type.as_str(), cid.as_str(), &a.content[..]),
                None => b.attachment(a.content_type.as_str(), a.filename.as_str(), &a.content[..]),
            };
        }
        b.write_to_vec().map_err(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            from: Mailbox::parse("from", "lab@clinic.example", Some("The Lab")).unwrap(),
            reply_to: None,
            to: vec![Mailbox::parse("to[0]", "pat@example.org", None).unwrap()],
            cc: vec![],
            bcc: vec![
                Mailbox::parse("bcc[0]", "audit@clinic.example", None).unwrap(),
                Mailbox::parse("bcc[1]", "PAT@example.org", None).unwrap(),
            ],
            subject: "Your results".into(),
            text: Some("Hello, your results are ready.".into()),
            html: Some("<p>Hello</p>".into()),
            attachments: vec![
                Attachment::parse("attachments[0]", "aGVsbG8=", "r.pdf", Some("application/pdf"), None).unwrap(),
            ]
            .into(),
            headers: vec![("X-Lab-Order".into(), "123".into())],
        }
    }

    #[test]
    fn builds_mime_and_envelope() {
        let d = draft();
        d.check("").unwrap();
        let env = d.envelope();
        assert_eq!(env.recipients.len(), 2, "duplicates collapse");
        let raw = String::from_utf8(d.build("abc@carepost.test").unwrap()).unwrap();
        assert!(raw.contains("Message-ID: <abc@carepost.test>"), "{raw}");
        assert!(raw.contains("X-Lab-Order: 123"));
        assert!(raw.contains("r.pdf"));
        assert!(!raw.to_ascii_lowercase().contains("bcc:"));
        assert!(raw.is_ascii());
    }

    #[test]
    fn bad_input_is_named() {
        assert!(
            matches!(Mailbox::parse("to[0]", "not an address", None), Err(ApiError::Invalid { field: Some(f), .. }) if f == "to[0]")
        );
        assert!(Attachment::parse("a", "!!!", "x", None, None).is_err());
        assert!(Attachment::parse("a", "aGk=", "../x", None, None).is_err());
        assert!(check_header("h", "Bcc", "x").is_err());
        assert!(check_header("h", "X-A", "x\r\nBcc: y").is_err());
        assert!(check_header("h", "X-A", "fine").is_ok());
        let mut d = draft();
        d.text = None;
        d.html = None;
        assert!(d.check("").is_err());
    }

    #[test]
    fn a_bare_carriage_return_in_a_body_is_refused() {
        let mut d = draft();
        d.text = Some("fine\r\nlines\nall\r\n".into());
        d.check("").unwrap();
        for (field, payload) in [("text", "a\r.\r\nMAIL FROM:<x@y.example>"), ("html", "<p>a</p>\r"), ("text", "\rX")] {
            let mut d = draft();
            if field == "text" {
                d.text = Some(payload.into())
            } else {
                d.html = Some(payload.into())
            }
            let err = d.check("messages[0].").unwrap_err();
            assert!(
                matches!(&err, ApiError::Invalid { field: Some(f), .. } if *f == format!("messages[0].{field}")),
                "{err:?}"
            );
        }
    }
}
