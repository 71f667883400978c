//! carepost DLP: finds PHI and PII in every part of an e-mail message.
//!
//! Pure and synchronous: no I/O, no clock, no global state beyond word lists built on
//! first use. The entry points take a message that has already been parsed
//! ([`scan_message`], so the SMTP ingress parses MIME once) or raw RFC 5322 bytes
//! ([`scan_eml`]).
//!
//! ```
//! let eml = b"Subject: results\r\n\r\nPatient: Ann Lee\r\nDOB: 01/02/1980\r\nDiagnosis: E11.9\r\n";
//! let report = carepost_dlp::scan_eml(eml, &carepost_dlp::Limits::default());
//! assert_eq!(report.verdict, carepost_dlp::Verdict::Phi);
//! // what policy, audit and logs get: types and counts, never values
//! let summary = report.summary();
//! assert_eq!(summary.entities[&carepost_dlp::EntityType::DateOfBirth], 1);
//! ```
//!
//! Layout: [`extract`] turns each part into text; [`detect`] finds identifiers and
//! health terms in a text; [`verdict`] decides; [`report`] holds what comes out.

pub mod bench;
pub mod detect;
pub mod extract;
pub mod limits;
pub mod report;
pub mod text;
pub mod verdict;

use mail_parser::{Message, MessageParser};

pub use bench::{BenchResult, benchmark};
pub use extract::{ExtractedPart, Extraction, extract_message};
pub use limits::Limits;
pub use report::{
    AttachmentSummary, EntityType, Finding, HealthKind, IncompleteReason, PartInfo, PartSource, PartStatus, Report,
    SensitiveText, Summary, TextFormat, Verdict,
};

use detect::{Detection, HealthHit, Scratch, scan_text};
use std::collections::BTreeMap;

/// Scan a message that has already been parsed.
pub fn scan_message(message: &Message<'_>, limits: &Limits) -> Report {
    scan_extraction(&extract_message(message, limits))
}

/// Parse raw RFC 5322 bytes once, then scan. Bytes that do not parse as a message give
/// an `incomplete` report (policy treats it as sensitive).
pub fn scan_eml(bytes: &[u8], limits: &Limits) -> Report {
    scan_extraction(&extract_eml(bytes, limits))
}

/// Parse raw RFC 5322 bytes and extract the text of every part, without scanning.
pub fn extract_eml(bytes: &[u8], limits: &Limits) -> Extraction {
    match MessageParser::default().parse(bytes) {
        Some(message) => extract_message(&message, limits),
        None => {
            let mut e = Extraction::default();
            e.incomplete.insert(IncompleteReason::Unparseable);
            e
        }
    }
}

/// Scan text that was already extracted (see [`extract_message`]).
pub fn scan_extraction(extraction: &Extraction) -> Report {
    let mut scratch = Scratch::default();
    let mut detections: Vec<(usize, Detection)> = Vec::new();
    let mut health: Vec<HealthHit> = Vec::new();
    let mut health_terms: BTreeMap<HealthKind, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (index, part) in extraction.parts.iter().enumerate() {
        if part.text.is_empty() {
            continue;
        }
        let scan = scan_text(&part.text, &mut scratch);
        for h in &scan.health {
            let term = part.text.get(h.start..h.end).unwrap_or("").to_ascii_lowercase();
            health_terms.entry(h.kind).or_default().insert(term);
        }
        health.extend(scan.health);
        detections.extend(scan.detections.into_iter().map(|d| (index, d)));
    }
    let incomplete = !extraction.incomplete.is_empty();
    let all: Vec<Detection> = detections.iter().map(|(_, d)| d.clone()).collect();
    let (verdict, confidence) = verdict::decide(&all, &health, incomplete);
    let findings = detections
        .into_iter()
        .map(|(part, d)| Finding {
            entity: d.entity,
            text: SensitiveText::new(extraction.parts[part].text.get(d.start..d.end).unwrap_or("").to_string()),
            part,
            start: d.start,
            end: d.end,
            detector: d.detector,
            business: d.business,
        })
        .collect();
    Report {
        verdict,
        confidence,
        incomplete,
        incomplete_reasons: extraction.incomplete.iter().copied().collect(),
        findings,
        health_signals: health_terms.into_iter().map(|(k, v)| (k, v.len())).collect(),
        parts: extraction.parts.iter().map(|p| p.info.clone()).collect(),
        text_bytes: extraction.text_bytes(),
    }
}

/// Bytes of decoded text a message yields (what the scanner reads): the measure for
/// throughput figures.
pub fn decoded_text_bytes(message: &Message<'_>, limits: &Limits) -> usize {
    extract_message(message, limits).text_bytes()
}
