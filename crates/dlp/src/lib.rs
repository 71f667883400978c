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
pub use limits::{Limits, LimitsError};
pub use report::{
    AttachmentSummary, EntityType, Finding, HealthKind, IncompleteReason, PartInfo, PartSource, PartStatus, Report,
    SensitiveText, Summary, TextFormat, Verdict,
};

use detect::{Scratch, TextScan, scan_text_into};
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
///
/// A panic inside the MIME parser (mail-parser 0.11 has a `debug_assert!` that some
/// malformed multipart nesting reaches in debug builds) is caught and reported as an
/// unparseable message: input never takes the scanner down, and the report fails
/// closed (`incomplete`).
pub fn extract_eml(bytes: &[u8], limits: &Limits) -> Extraction {
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(bytes));
    match parsed {
        Ok(Some(message)) => extract_message(&message, limits),
        Ok(None) | Err(_) => {
            let mut e = Extraction::default();
            e.incomplete.insert(IncompleteReason::Unparseable);
            e
        }
    }
}

/// Scan text that was already extracted (see [`extract_message`]).
pub fn scan_extraction(extraction: &Extraction) -> Report {
    thread_local! {
        // buffers reused across messages scanned on the same thread
        static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
    }
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => scan_with(extraction, &mut buffers),
        Err(_) => scan_with(extraction, &mut Buffers::default()),
    })
}

/// Working memory of one scan, kept between scans to spare allocations.
#[derive(Default)]
struct Buffers {
    scratch: Scratch,
    scan: TextScan,
    /// (part index, index of its first detection)
    part_starts: Vec<(usize, usize)>,
    /// distinct health terms per kind, by a hash of the lower-cased term
    health_terms: Vec<(HealthKind, u64)>,
}

fn scan_with(extraction: &Extraction, buffers: &mut Buffers) -> Report {
    let Buffers { scratch, scan, part_starts, health_terms } = buffers;
    scan.detections.clear();
    scan.health.clear();
    part_starts.clear();
    health_terms.clear();
    let mut subject_sensitive = false;
    for (index, part) in extraction.parts.iter().enumerate() {
        if part.text.is_empty() {
            continue;
        }
        part_starts.push((index, scan.detections.len()));
        let (detections_before, health_before) = (scan.detections.len(), scan.health.len());
        scan_text_into(&part.text, scratch, scan);
        if part.info.source == PartSource::Subject {
            subject_sensitive |=
                scan.health.len() > health_before || scan.detections[detections_before..].iter().any(|d| !d.business);
        }
        for h in &scan.health[health_before..] {
            let term = part.text.as_bytes().get(h.start..h.end).unwrap_or(&[]);
            health_terms.push((h.kind, term_hash(term)));
        }
    }
    health_terms.sort_unstable();
    health_terms.dedup();
    let mut health_signals = BTreeMap::new();
    for (kind, _) in health_terms.iter() {
        *health_signals.entry(*kind).or_insert(0) += 1;
    }
    let part_of = |k: usize| part_starts.iter().rev().find(|(_, first)| *first <= k).map_or(0, |(p, _)| *p);
    let incomplete = !extraction.incomplete.is_empty();
    let (verdict, confidence) = verdict::decide(&scan.detections, &scan.health, incomplete);
    let findings = scan
        .detections
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let part = part_of(k);
            Finding {
                entity: d.entity,
                text: SensitiveText::new(extraction.parts[part].text.get(d.start..d.end).unwrap_or("").to_string()),
                part,
                start: d.start,
                end: d.end,
                detector: d.detector,
                business: d.business,
            }
        })
        .collect();
    Report {
        verdict,
        confidence,
        incomplete,
        incomplete_reasons: extraction.incomplete.iter().copied().collect(),
        findings,
        health_signals,
        subject_sensitive,
        parts: extraction.parts.iter().map(|p| p.info.clone()).collect(),
        text_bytes: extraction.text_bytes(),
    }
}

/// FNV-1a over the lower-cased bytes.
fn term_hash(term: &[u8]) -> u64 {
    term.iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x100_0000_01b3))
}

/// Bytes of decoded text a message yields (what the scanner reads): the measure for
/// throughput figures.
pub fn decoded_text_bytes(message: &Message<'_>, limits: &Limits) -> usize {
    extract_message(message, limits).text_bytes()
}
