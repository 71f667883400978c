//! Fuzz the DLP scanner with raw messages: parsing, extraction of every part and
//! attachment format, and detection must never panic.
//!
//!     cargo +nightly fuzz run dlp_scan

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = carepost_dlp::Limits {
        max_message_text_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        ..carepost_dlp::Limits::default()
    };
    let report = carepost_dlp::scan_eml(data, &limits);
    for f in &report.findings {
        assert!(f.start <= f.end);
    }
    // the same bytes as the text of one part, and as documents of each format
    if let Ok(text) = std::str::from_utf8(data) {
        let mut scratch = carepost_dlp::detect::Scratch::default();
        let _ = carepost_dlp::detect::scan_text(text, &mut scratch);
    }
    let mut sink =
        carepost_dlp::extract::Sink { limits: &limits, incomplete: Default::default(), embedded: Vec::new() };
    let _ = carepost_dlp::extract::pdf::pdf_to_text(data, &mut sink);
    let _ = carepost_dlp::extract::ooxml::office_to_text(data, "xlsx", &mut sink);
});
