//! Throughput of detection on the decoded text of the dev corpus, all detectors on.
//!
//!     CARGO_TARGET_DIR=/work/target-dlp cargo bench -p carepost-dlp --bench scan

use std::path::PathBuf;

use carepost_dlp::{Extraction, Limits, extract_eml, scan_extraction};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/dev"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).collect()
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let messages = corpus();
    let raw: usize = messages.iter().map(Vec::len).sum();
    let extractions: Vec<Extraction> = messages.iter().map(|m| extract_eml(m, &limits)).collect();
    let text: usize = extractions.iter().map(Extraction::text_bytes).sum();

    let mut g = c.benchmark_group("dev_corpus");
    g.throughput(Throughput::Bytes(text as u64));
    g.bench_function("detect_decoded_text", |b| {
        b.iter(|| extractions.iter().map(|e| scan_extraction(e).findings.len()).sum::<usize>())
    });
    g.throughput(Throughput::Bytes(raw as u64));
    g.bench_function("parse_extract_detect_raw_eml", |b| {
        b.iter(|| messages.iter().map(|m| carepost_dlp::scan_eml(m, &limits).findings.len()).sum::<usize>())
    });
    g.finish();

    // a long prose-like text: the prefilter's speed when candidates are rare
    let prose = "The clinic will be closed on Monday for maintenance. Please call the front desk \
                 with questions about appointments, billing or records requests. "
        .repeat(20_000);
    let mut g = c.benchmark_group("prose");
    g.throughput(Throughput::Bytes(prose.len() as u64));
    g.bench_function("detect", |b| {
        b.iter(|| {
            let mut scratch = carepost_dlp::detect::Scratch::default();
            carepost_dlp::detect::scan_text(&prose, &mut scratch).detections.len()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
