//! Throughput measurement for `carepost dlp bench`: MB/s of decoded text scanned.

use std::time::{Duration, Instant};

use crate::{Extraction, Limits, extract_eml, scan_extraction};

/// What [`benchmark`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub messages: usize,
    /// Decoded text of all messages, in bytes (one round).
    pub text_bytes: usize,
    pub rounds: usize,
    /// Time spent detecting (extraction excluded), all rounds.
    pub detect_seconds: f64,
    /// Time spent parsing MIME and extracting text, one round.
    pub extract_seconds: f64,
    /// Decoded-text megabytes (10^6 bytes) per second of detection, on one core, from
    /// the median round.
    pub detect_mb_per_s: f64,
    /// The same from the fastest round: on a busy machine, the closest to what one
    /// core does when it is not shared.
    pub detect_mb_per_s_best: f64,
    /// Raw message megabytes per second, parsing and extraction included.
    pub end_to_end_mb_per_s: f64,
}

/// Parse and extract every message once, then scan the extracted text repeatedly for at
/// least `min_time` (and at least one round).
pub fn benchmark(messages: &[Vec<u8>], limits: &Limits, min_time: Duration) -> BenchResult {
    benchmark_rounds(messages, limits, min_time, 1)
}

/// [`benchmark`] with a minimum number of rounds as well.
pub fn benchmark_rounds(messages: &[Vec<u8>], limits: &Limits, min_time: Duration, min_rounds: usize) -> BenchResult {
    let raw_bytes: usize = messages.iter().map(Vec::len).sum();
    let t0 = Instant::now();
    let extractions: Vec<Extraction> = messages.iter().map(|m| extract_eml(m, limits)).collect();
    let extract_seconds = t0.elapsed().as_secs_f64();
    let text_bytes: usize = extractions.iter().map(Extraction::text_bytes).sum();
    let mut round_times: Vec<f64> = Vec::new();
    let t1 = Instant::now();
    let mut findings = 0usize;
    while round_times.len() < min_rounds.max(1) || t1.elapsed() < min_time {
        let round = Instant::now();
        for e in &extractions {
            findings += std::hint::black_box(scan_extraction(e)).findings.len();
        }
        round_times.push(round.elapsed().as_secs_f64());
    }
    std::hint::black_box(findings);
    let detect_seconds = t1.elapsed().as_secs_f64();
    round_times.sort_by(f64::total_cmp);
    let median = round_times[round_times.len() / 2];
    let best = round_times[0];
    let mb = text_bytes as f64 / 1e6;
    BenchResult {
        messages: messages.len(),
        text_bytes,
        rounds: round_times.len(),
        detect_seconds,
        extract_seconds,
        detect_mb_per_s: mb / median.max(1e-12),
        detect_mb_per_s_best: mb / best.max(1e-12),
        end_to_end_mb_per_s: raw_bytes as f64 / 1e6 / (extract_seconds + median).max(1e-12),
    }
}
