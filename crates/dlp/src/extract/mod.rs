//! Text extraction: the Subject, every body part, nested messages and attachments of a
//! parsed message, each turned into plain text the detectors can read.
//!
//! mail-parser has already undone transfer encodings (quoted-printable soft breaks
//! included, so a number split across lines is whole again) and converted every
//! charset it knows to UTF-8. This module turns formats into text (HTML, CSV, JSON,
//! XML, DOCX, XLSX, PDF), normalizes look-alike characters, and enforces [`Limits`].

pub mod delimited;
pub mod edi;
pub mod html;
pub mod json;
pub mod markup;
pub mod ooxml;
pub mod pdf;
pub mod table;
pub mod xml;
pub mod zip;

use std::collections::BTreeSet;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use crate::limits::Limits;
use crate::report::{IncompleteReason, PartInfo, PartSource, PartStatus, TextFormat};
use crate::text::{normalize, truncate_at_char_boundary};

/// One piece of text to scan, with where it came from.
#[derive(Debug, Clone)]
pub struct ExtractedPart {
    pub info: PartInfo,
    pub text: String,
}

/// The text of a whole message.
#[derive(Debug, Clone, Default)]
pub struct Extraction {
    /// Every part looked at, in message order; skipped parts have empty text.
    pub parts: Vec<ExtractedPart>,
    pub incomplete: BTreeSet<IncompleteReason>,
}

impl Extraction {
    /// Bytes of text extracted, all parts together.
    pub fn text_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.text.len()).sum()
    }
}

/// Extract the text of every part of `message`.
pub fn extract_message(message: &Message<'_>, limits: &Limits) -> Extraction {
    let mut w = Walker { limits, out: Extraction::default(), text_total: 0, parts_seen: 0 };
    w.message(message, 0);
    w.out
}

/// Where a document's text goes, and what went wrong on the way.
pub struct Sink<'a> {
    pub limits: &'a Limits,
    /// Reasons to mark the message incomplete.
    pub incomplete: BTreeSet<IncompleteReason>,
    /// Files inside an archive that should be scanned as parts of their own.
    pub embedded: Vec<(String, String, TextFormat)>,
}

struct Walker<'a> {
    limits: &'a Limits,
    out: Extraction,
    text_total: usize,
    parts_seen: usize,
}

impl Walker<'_> {
    fn message(&mut self, msg: &Message<'_>, depth: usize) {
        if let Some(subject) = msg.subject() {
            self.add(
                PartSource::Subject,
                depth,
                "text/plain".into(),
                None,
                TextFormat::Plain,
                subject.to_string(),
                false,
            );
        }
        for part in &msg.parts {
            self.parts_seen += 1;
            if self.parts_seen > self.limits.max_parts {
                self.out.incomplete.insert(IncompleteReason::StructureLimit);
                return;
            }
            match &part.body {
                PartType::Multipart(_) => {}
                PartType::Text(text) => self.text_part(part, text, depth),
                PartType::Html(html) => {
                    let (ctype, name, source) = describe(part);
                    let text = html::html_to_text(html);
                    self.add(source, depth, ctype, name, TextFormat::Html, text, false);
                }
                PartType::Binary(bytes) | PartType::InlineBinary(bytes) => self.binary_part(part, bytes, depth),
                PartType::Message(nested) => {
                    if depth + 1 > self.limits.max_nesting_depth {
                        self.out.incomplete.insert(IncompleteReason::StructureLimit);
                    } else {
                        self.message(nested, depth + 1);
                    }
                }
            }
        }
    }

    fn text_part(&mut self, part: &MessagePart<'_>, text: &str, depth: usize) {
        let (ctype, name, source) = describe(part);
        let format = text_format(&ctype, name.as_deref(), text);
        self.document(source, depth, ctype, name, format, text);
    }

    fn binary_part(&mut self, part: &MessagePart<'_>, bytes: &[u8], depth: usize) {
        let (ctype, name, source) = describe(part);
        if bytes.len() > self.limits.max_attachment_bytes {
            self.out.incomplete.insert(IncompleteReason::AttachmentLimit);
            self.skip(source, depth, ctype, name, TextFormat::Binary, PartStatus::Skipped);
            return;
        }
        // signatures and keys carry no message content: nothing to scan, nothing missed
        if is_signature_or_key(&ctype) {
            self.skip(source, depth, ctype, name, TextFormat::Binary, PartStatus::Skipped);
            return;
        }
        let ext = extension(name.as_deref());
        if bytes.starts_with(b"%PDF") || ctype == "application/pdf" || ext == "pdf" {
            let mut sink = Sink { limits: self.limits, incomplete: BTreeSet::new(), embedded: Vec::new() };
            let text = pdf::pdf_to_text(bytes, &mut sink);
            self.finish_document(source, depth, ctype, name, TextFormat::Pdf, text, sink);
            return;
        }
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            let mut sink = Sink { limits: self.limits, incomplete: BTreeSet::new(), embedded: Vec::new() };
            let (format, text) = ooxml::office_to_text(bytes, &ext, &mut sink);
            self.finish_document(source, depth, ctype, name, format, text, sink);
            return;
        }
        match decode_text(bytes, part) {
            Some(text) => {
                let format = text_format(&ctype, name.as_deref(), &text);
                self.document(source, depth, ctype, name, format, &text);
            }
            None => {
                self.out.incomplete.insert(IncompleteReason::UnsupportedFormat);
                self.skip(source, depth, ctype, name, TextFormat::Binary, PartStatus::Skipped);
            }
        }
    }

    /// Text of a given format to scan.
    fn document(
        &mut self,
        source: PartSource,
        depth: usize,
        ctype: String,
        name: Option<String>,
        format: TextFormat,
        text: &str,
    ) {
        let (out, format) = render_text(format, text);
        self.add(source, depth, ctype, name, format, out, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_document(
        &mut self,
        source: PartSource,
        depth: usize,
        ctype: String,
        name: Option<String>,
        format: TextFormat,
        text: Option<String>,
        sink: Sink<'_>,
    ) {
        let failed = text.is_none();
        self.out.incomplete.extend(sink.incomplete.iter().copied());
        match text {
            Some(t) => self.add(source, depth, ctype, name, format, t, !sink.incomplete.is_empty()),
            None => {
                self.out.incomplete.insert(if format == TextFormat::Binary {
                    IncompleteReason::UnsupportedFormat
                } else {
                    IncompleteReason::Undecodable
                });
                let status =
                    if failed && format != TextFormat::Binary { PartStatus::Failed } else { PartStatus::Skipped };
                self.skip(source, depth, ctype, name, format, status);
            }
        }
        for (entry_name, text, format) in sink.embedded {
            self.add(PartSource::Embedded, depth, String::new(), Some(entry_name), format, text, false);
        }
    }

    fn skip(
        &mut self,
        source: PartSource,
        depth: usize,
        ctype: String,
        name: Option<String>,
        format: TextFormat,
        status: PartStatus,
    ) {
        let index = self.out.parts.len();
        let info = PartInfo {
            index,
            source,
            depth,
            content_type: ctype.into(),
            file_name: name.map(Into::into),
            format,
            status,
            text_bytes: 0,
        };
        self.out.parts.push(ExtractedPart { info, text: String::new() });
    }

    /// Record a part's text, normalized and within the limits.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        source: PartSource,
        depth: usize,
        ctype: String,
        name: Option<String>,
        format: TextFormat,
        text: String,
        partial: bool,
    ) {
        let mut text = match normalize(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(n) => n,
        };
        let mut status = if partial { PartStatus::Truncated } else { PartStatus::Scanned };
        if text.len() > self.limits.max_part_text_bytes {
            let keep = truncate_at_char_boundary(&text, self.limits.max_part_text_bytes).len();
            text.truncate(keep);
            status = PartStatus::Truncated;
            self.out.incomplete.insert(IncompleteReason::PartLimit);
        }
        let room = self.limits.max_message_text_bytes.saturating_sub(self.text_total);
        if text.len() > room {
            let keep = truncate_at_char_boundary(&text, room).len();
            text.truncate(keep);
            status = if keep == 0 { PartStatus::Skipped } else { PartStatus::Truncated };
            self.out.incomplete.insert(IncompleteReason::MessageLimit);
        }
        self.text_total += text.len();
        let index = self.out.parts.len();
        let info = PartInfo {
            index,
            source,
            depth,
            content_type: ctype.into(),
            file_name: name.map(Into::into),
            format,
            status,
            text_bytes: text.len(),
        };
        self.out.parts.push(ExtractedPart { info, text });
    }
}

/// The scannable text of a text document in `format`, and the format it was read as
/// (JSON that does not parse is read as plain text).
pub(crate) fn render_text(format: TextFormat, text: &str) -> (String, TextFormat) {
    let mut out = String::new();
    let format = match format {
        TextFormat::Html => {
            out = html::html_to_text(text);
            format
        }
        TextFormat::Delimited => {
            delimited::delimited_to_text(text, &mut out);
            format
        }
        TextFormat::Json => match json::json_to_text(text, &mut out) {
            Some(()) => format,
            None => {
                out.clear();
                out.push_str(text);
                TextFormat::Plain
            }
        },
        TextFormat::Xml => {
            xml::xml_to_text(text, &mut out);
            format
        }
        TextFormat::X12 => {
            edi::x12_to_text(text, &mut out);
            format
        }
        TextFormat::Hl7 => {
            edi::hl7_to_text(text, &mut out);
            format
        }
        _ => {
            // an interchange pasted into a message body after some prose
            match edi::embedded_start(text) {
                Some((at, embedded)) => {
                    out.push_str(&text[..at]);
                    out.push('\n');
                    out.push_str(&render_text(embedded, &text[at..]).0);
                }
                None => out.push_str(text),
            }
            format
        }
    };
    (out, format)
}

/// Content type (lower case), file name, and whether the part is an attachment.
fn describe(part: &MessagePart<'_>) -> (String, Option<String>, PartSource) {
    let ctype = part
        .content_type()
        .map(|ct| match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub),
            None => ct.c_type.to_string(),
        })
        .unwrap_or_else(|| "text/plain".to_string())
        .to_ascii_lowercase();
    let name = part.attachment_name().map(str::to_string);
    let attachment = name.is_some() || part.content_disposition().is_some_and(|d| d.is_attachment());
    (ctype, name, if attachment { PartSource::Attachment } else { PartSource::Body })
}

fn is_signature_or_key(ctype: &str) -> bool {
    matches!(
        ctype,
        "application/pkcs7-signature"
            | "application/x-pkcs7-signature"
            | "application/pgp-signature"
            | "application/pgp-keys"
            | "application/pkix-cert"
            | "application/x-x509-ca-cert"
    )
}

fn extension(name: Option<&str>) -> String {
    name.and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default()
}

/// Which reader a text needs, from its declared type, its file name and its start.
pub(crate) fn text_format(ctype: &str, name: Option<&str>, text: &str) -> TextFormat {
    let ext = extension(name);
    let head = text.trim_start_matches('\u{FEFF}').trim_start();
    match (ctype, ext.as_str()) {
        ("text/html" | "application/xhtml+xml", _) | (_, "html" | "htm" | "xhtml") => TextFormat::Html,
        (
            "text/csv" | "text/tab-separated-values" | "application/csv" | "text/x-csv" | "text/comma-separated-values",
            _,
        )
        | (_, "csv" | "tsv" | "tab") => TextFormat::Delimited,
        ("application/json" | "text/json" | "application/fhir+json", _) | (_, "json") => TextFormat::Json,
        ("text/xml" | "application/xml", _) | (_, "xml" | "cda" | "ccd") => TextFormat::Xml,
        (c, _) if c.ends_with("+xml") => TextFormat::Xml,
        (c, _) if c.ends_with("+json") => TextFormat::Json,
        _ if head.starts_with('{') || head.starts_with('[') && head[1..].trim_start().starts_with('{') => {
            TextFormat::Json
        }
        _ if edi::is_x12(head) => TextFormat::X12,
        _ if edi::is_hl7(head) => TextFormat::Hl7,
        _ if head.starts_with("<?xml") => TextFormat::Xml,
        _ if head.len() >= 5 && head.as_bytes()[..5].eq_ignore_ascii_case(b"<html")
            || head.starts_with("<!DOCTYPE html") =>
        {
            TextFormat::Html
        }
        _ if delimited::looks_delimited(head) && (ctype != "text/plain" || name.is_some()) => TextFormat::Delimited,
        _ => TextFormat::Plain,
    }
}

/// Bytes of an attachment as text, if they are text: UTF-8 or UTF-16 with a byte
/// order mark, the declared charset, or single-byte text (windows-1252).
fn decode_text(bytes: &[u8], part: &MessagePart<'_>) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .ok()
            .map(str::to_string)
            .or_else(|| Some(String::from_utf8_lossy(rest).into_owned()));
    }
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        let le = bytes[0] == 0xFF;
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
            .collect();
        return Some(String::from_utf16_lossy(&units));
    }
    let sample = &bytes[..bytes.len().min(16 << 10)];
    let controls = sample.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B)).count();
    if sample.contains(&0) || controls * 100 > sample.len() {
        return None;
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Some(s.to_string());
    }
    let charset = part.content_type().and_then(|ct| ct.attribute("charset"));
    if let Some(decoder) = charset.and_then(|c| mail_parser::decoders::charsets::map::charset_decoder(c.as_bytes())) {
        return Some(decoder(bytes));
    }
    Some(bytes.iter().map(|&b| windows_1252(b)).collect())
}

fn windows_1252(b: u8) -> char {
    const C1: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => C1[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}
