//! The small amount of MIME handling the packaging code needs: canonical line
//! endings, header fields, Content-Type parameters, multipart bodies and
//! base64 bodies.
//!
//! carepost's inspection stage parses whole messages; this module only cuts
//! and glues entities at the places RFC 8551 and RFC 3156 name, and it keeps
//! the exact bytes of what it cuts, because signatures are computed over them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Length of a base64 body line, as RFC 2045 asks (at most 76 characters).
const BASE64_LINE: usize = 76;

/// Returns `input` with every line ending as CRLF (bare LF and bare CR become CRLF).
///
/// S/MIME signatures and PGP/MIME encrypted parts are computed over the
/// canonical form (RFC 8551 §3.1.1, RFC 3156 §5), so this runs before hashing.
pub fn to_crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// Encodes `data` as base64 in lines of 76 characters, each ending in CRLF.
pub(crate) fn base64_lines(data: &[u8]) -> String {
    let encoded = BASE64.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / BASE64_LINE * 2 + 2);
    for chunk in encoded.as_bytes().chunks(BASE64_LINE) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// Decodes a base64 body, ignoring line breaks and other whitespace.
pub(crate) fn decode_base64_body(body: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    BASE64.decode(compact).ok()
}

/// A fresh multipart boundary: a fixed prefix plus 128 random bits in hex.
///
/// The random part keeps the boundary from appearing inside the enclosed
/// parts, which RFC 2046 requires.
pub(crate) fn new_boundary() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut random = [0u8; 16];
    aws_lc_rs::rand::fill(&mut random)?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("=_carepost_{hex}"))
}

/// Splits a CRLF-canonical entity into its header block and its body.
///
/// The header block keeps the CRLF of its last field; the blank line that
/// separates the two belongs to neither. An entity without a blank line is all
/// header.
pub(crate) fn split_head_body(entity: &[u8]) -> (&[u8], &[u8]) {
    if let Some(body) = entity.strip_prefix(b"\r\n") {
        return (&[], body);
    }
    match find(entity, b"\r\n\r\n") {
        Some(pos) => (&entity[..pos + 2], &entity[pos + 4..]),
        None => (entity, &[]),
    }
}

/// One header field with its raw bytes (continuation lines and final CRLF included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderField<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
}

impl HeaderField<'_> {
    /// The field body, unfolded (continuation line breaks removed) and trimmed.
    pub fn unfolded_value(&self) -> String {
        let after_colon = self.raw.iter().position(|&b| b == b':').map_or(&[][..], |p| &self.raw[p + 1..]);
        let text = String::from_utf8_lossy(after_colon);
        text.replace("\r\n", "").replace('\n', "").trim().to_string()
    }
}

/// Cuts a header block into fields. Lines that are neither a field nor a
/// continuation (no colon) are kept as part of the previous field so no byte
/// is lost.
pub(crate) fn header_fields(head: &[u8]) -> Vec<HeaderField<'_>> {
    let mut fields: Vec<HeaderField<'_>> = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    let mut current_name: Option<&str> = None;
    while line_start < head.len() {
        let line_end = find(&head[line_start..], b"\r\n").map_or(head.len(), |p| line_start + p + 2);
        let line = &head[line_start..line_end];
        let continues = matches!(line.first(), Some(b' ' | b'\t'));
        let colon = line.iter().position(|&b| b == b':');
        if !continues && colon.is_some() {
            if let Some(name) = current_name {
                fields.push(HeaderField { name, raw: &head[start..line_start] });
            }
            start = line_start;
            let name_bytes = &line[..colon.unwrap_or(0)];
            current_name = Some(std::str::from_utf8(name_bytes).map(str::trim).unwrap_or(""));
        } else if current_name.is_none() {
            current_name = Some("");
        }
        line_start = line_end;
    }
    if let Some(name) = current_name {
        fields.push(HeaderField { name, raw: &head[start..] });
    }
    fields
}

/// The value of the first header field called `name` (case-insensitive), unfolded.
pub(crate) fn header_value(head: &[u8], name: &str) -> Option<String> {
    header_fields(head).into_iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.unfolded_value())
}

/// A parsed Content-Type value: lowercase `type/subtype` and its parameters
/// (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentType {
    pub mime_type: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Parses `type/subtype; name=value; name="quoted value"`.
    pub fn parse(value: &str) -> ContentType {
        let mut pieces = split_params(value).into_iter();
        let mime_type = pieces.next().unwrap_or_default().trim().to_ascii_lowercase();
        let params = pieces
            .filter_map(|piece| {
                let (name, raw) = piece.split_once('=')?;
                Some((name.trim().to_ascii_lowercase(), unquote(raw.trim())))
            })
            .collect();
        ContentType { mime_type, params }
    }
}

/// Splits at semicolons that are not inside a quoted string.
fn split_params(value: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                current.push(c);
                in_quotes = !in_quotes;
            }
            ';' if !in_quotes => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    pieces
}

fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The Content-Type of a header block; RFC 2045's default when absent.
pub(crate) fn content_type(head: &[u8]) -> ContentType {
    header_value(head, "Content-Type")
        .map(|v| ContentType::parse(&v))
        .unwrap_or_else(|| ContentType::parse("text/plain; charset=us-ascii"))
}

/// Why a multipart body could not be cut into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The Content-Type has no usable boundary parameter.
    #[error("multipart entity without a boundary parameter")]
    NoBoundary,
    /// The body ends before the closing delimiter.
    #[error("multipart body has no closing delimiter")]
    Unterminated,
}

/// Cuts a CRLF-canonical multipart body into the exact bytes of its parts.
///
/// Each part runs from after its delimiter line to before the CRLF that
/// precedes the next delimiter, which RFC 2046 §5.1.1 says belongs to the
/// delimiter: this is the range a multipart/signed signature covers.
pub(crate) fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, MultipartError> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(MultipartError::NoBoundary);
    }
    let dash_boundary = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut line_start = 0;
    while line_start < body.len() {
        let line_end = find(&body[line_start..], b"\r\n").map_or(body.len(), |p| line_start + p + 2);
        let line = &body[line_start..line_end];
        if let Some(rest) = line.strip_prefix(dash_boundary.as_bytes()) {
            let rest_trimmed = trim_ascii_end_ws(rest);
            let is_close = rest_trimmed == b"--";
            if rest_trimmed.is_empty() || is_close {
                if let Some(start) = part_start {
                    // The CRLF before the delimiter is part of the delimiter.
                    let end = line_start.saturating_sub(2).max(start);
                    parts.push(&body[start..end]);
                }
                if is_close {
                    return Ok(parts);
                }
                part_start = Some(line_end);
            }
        }
        line_start = line_end;
    }
    Err(MultipartError::Unterminated)
}

fn trim_ascii_end_ws(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
    &bytes[..end]
}

/// Position of the first occurrence of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A message cut into what stays outside the protection and what goes inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionSplit {
    /// Header fields that stay on the outer message (From, To, Subject, Date,
    /// Message-ID, trace fields, ...), CRLF-terminated, without MIME-Version
    /// and without any `Content-*` field.
    pub outer_headers: Vec<u8>,
    /// The MIME entity to sign and/or encrypt: the message's `Content-*`
    /// fields, a blank line and the body, in CRLF form.
    pub inner_entity: Vec<u8>,
}

/// Cuts a complete RFC 5322 message into outer headers and the inner entity
/// that S/MIME or PGP/MIME protects (RFC 8551 §3.1: the `Content-*` fields
/// describe the entity; the rest belongs to the message).
///
/// A message without a Content-Type gets RFC 2045's default spelled out, so
/// the protected entity says what it is.
pub fn split_for_protection(message: &[u8]) -> ProtectionSplit {
    let message = to_crlf(message);
    let (head, body) = split_head_body(&message);
    let mut outer_headers = Vec::new();
    let mut inner_head = Vec::new();
    let mut has_content_type = false;
    for field in header_fields(head) {
        let name = field.name;
        if name.eq_ignore_ascii_case("MIME-Version") {
            continue;
        }
        if name.len() >= 8 && name.as_bytes()[..8].eq_ignore_ascii_case(b"Content-") {
            has_content_type |= name.eq_ignore_ascii_case("Content-Type");
            inner_head.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\r\n") {
                inner_head.extend_from_slice(b"\r\n");
            }
        } else {
            outer_headers.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\r\n") {
                outer_headers.extend_from_slice(b"\r\n");
            }
        }
    }
    let mut inner_entity = Vec::with_capacity(inner_head.len() + body.len() + 64);
    if !has_content_type {
        inner_entity.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
    }
    inner_entity.extend_from_slice(&inner_head);
    inner_entity.extend_from_slice(b"\r\n");
    inner_entity.extend_from_slice(body);
    ProtectionSplit { outer_headers, inner_entity }
}

/// The outer Subject of a message whose real Subject travels protected.
pub const PROTECTED_SUBJECT_PLACEHOLDER: &str = "Encrypted message";

/// Like [`split_for_protection`], but the Subject travels inside the protection too: the
/// inner entity carries the original Subject field and declares `protected-headers="v1"` on
/// its Content-Type, and the outer Subject becomes [`PROTECTED_SUBJECT_PLACEHOLDER`].
/// A subject often names the patient or the condition; encrypting only the body would leave
/// it readable on every hop.
pub fn split_protecting_subject(message: &[u8]) -> ProtectionSplit {
    let mut split = split_for_protection(message);
    let outer = std::mem::take(&mut split.outer_headers);
    let mut subjects = Vec::new();
    for field in header_fields(&outer) {
        if field.name.eq_ignore_ascii_case("Subject") {
            subjects.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\r\n") {
                subjects.extend_from_slice(b"\r\n");
            }
        } else {
            split.outer_headers.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\r\n") {
                split.outer_headers.extend_from_slice(b"\r\n");
            }
        }
    }
    split.outer_headers.extend_from_slice(format!("Subject: {PROTECTED_SUBJECT_PLACEHOLDER}\r\n").as_bytes());

    let (head, body) = split_head_body(&split.inner_entity);
    let mut inner = Vec::with_capacity(split.inner_entity.len() + subjects.len() + 32);
    for field in header_fields(head) {
        if field.name.eq_ignore_ascii_case("Content-Type") {
            let raw = field.raw.strip_suffix(b"\r\n").unwrap_or(field.raw);
            inner.extend_from_slice(raw);
            inner.extend_from_slice(b";\r\n protected-headers=\"v1\"\r\n");
        } else {
            inner.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\r\n") {
                inner.extend_from_slice(b"\r\n");
            }
        }
    }
    inner.extend_from_slice(&subjects);
    inner.extend_from_slice(b"\r\n");
    inner.extend_from_slice(body);
    split.inner_entity = inner;
    split
}

/// Puts the outer headers from [`split_for_protection`] on top of a protected
/// entity (the output of S/MIME or PGP/MIME packaging), adding MIME-Version.
pub fn join_protected(outer_headers: &[u8], protected_entity: &[u8]) -> Vec<u8> {
    let outer = to_crlf(outer_headers);
    let mut message = Vec::with_capacity(outer.len() + protected_entity.len() + 24);
    message.extend_from_slice(&outer);
    if !outer.is_empty() && !outer.ends_with(b"\r\n") {
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(b"MIME-Version: 1.0\r\n");
    message.extend_from_slice(protected_entity);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_travels_inside_the_protection() {
        let message = b"From: a@x.org\r\nSubject: Biopsy results for\r\n Jane Roe\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n";
        let split = split_protecting_subject(message);
        let outer = String::from_utf8(split.outer_headers).unwrap();
        assert_eq!(outer, "From: a@x.org\r\nSubject: Encrypted message\r\n");
        let inner = String::from_utf8(split.inner_entity).unwrap();
        assert_eq!(
            inner,
            "Content-Type: text/plain; charset=utf-8;\r\n protected-headers=\"v1\"\r\nSubject: Biopsy results for\r\n Jane Roe\r\n\r\nbody\r\n"
        );
        let ct = ContentType::parse("text/plain; charset=utf-8;\r\n protected-headers=\"v1\"");
        assert_eq!(ct.param("protected-headers"), Some("v1"));
    }

    #[test]
    fn crlf_canonicalization_handles_mixed_endings() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd");
    }

    #[test]
    fn base64_lines_are_short_and_crlf_terminated() {
        let text = base64_lines(&[7u8; 200]);
        for line in text.split_terminator("\r\n") {
            assert!(line.len() <= 76);
        }
        assert!(text.ends_with("\r\n"));
        assert_eq!(decode_base64_body(text.as_bytes()).unwrap(), vec![7u8; 200]);
    }

    #[test]
    fn content_type_parameters_are_unquoted() {
        let ct = ContentType::parse(
            r#"Multipart/Signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="a;b\"c""#,
        );
        assert_eq!(ct.mime_type, "multipart/signed");
        assert_eq!(ct.param("PROTOCOL"), Some("application/pkcs7-signature"));
        assert_eq!(ct.param("boundary"), Some("a;b\"c"));
    }

    #[test]
    fn folded_header_fields_stay_whole() {
        let head = b"Subject: one\r\n two\r\nTo: x@example.org\r\n";
        let fields = header_fields(head);
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].name, "Subject");
        assert_eq!(fields[0].unfolded_value(), "one two");
        assert_eq!(fields[1].raw, b"To: x@example.org\r\n");
    }

    #[test]
    fn multipart_parts_exclude_the_crlf_before_delimiters() {
        let body = b"preamble\r\n--b\r\nfirst\r\n--b\r\nsecond\r\n\r\n--b--\r\nepilogue";
        let parts = multipart_parts(body, "b").unwrap();
        assert_eq!(parts, vec![&b"first"[..], &b"second\r\n"[..]]);
        assert_eq!(multipart_parts(b"--b\r\nx", "b"), Err(MultipartError::Unterminated));
    }

    #[test]
    fn split_and_join_keep_outer_headers_outside() {
        let message = b"From: a@example.org\nTo: b@example.org\nSubject: hi\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\nhello\n";
        let split = split_for_protection(message);
        assert_eq!(split.outer_headers, b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n");
        assert_eq!(
            split.inner_entity,
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nhello\r\n"
        );
        let joined = join_protected(&split.outer_headers, b"Content-Type: application/pkcs7-mime\r\n\r\nxyz");
        assert!(joined.starts_with(b"From: a@example.org\r\n"));
        assert!(find(&joined, b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime").is_some());
    }

    #[test]
    fn non_ascii_header_names_do_not_break_splitting() {
        let split = split_for_protection("Cont\u{e9}nt-X: y\r\n\r\nbody".as_bytes());
        assert!(split.outer_headers.starts_with("Cont\u{e9}nt-X".as_bytes()));
    }

    #[test]
    fn message_without_content_type_gets_the_default() {
        let split = split_for_protection(b"Subject: x\r\n\r\nbody");
        assert_eq!(split.inner_entity, b"Content-Type: text/plain; charset=us-ascii\r\n\r\nbody");
    }
}
