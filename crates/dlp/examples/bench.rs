//! What `carepost dlp bench PATH` prints: detection throughput in MB/s of decoded text.
//!
//!     cargo run --release -p carepost-dlp --example bench -- ../shared/corpus/dev

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut messages = Vec::new();
    for arg in std::env::args().skip(1) {
        let path = PathBuf::from(&arg);
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{arg}: {e}"))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            v.sort();
            v
        } else {
            vec![path]
        };
        for f in files {
            messages.push(std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
        }
    }
    // BENCH_SECONDS: minimum measuring time (default 3; 0 runs one round, for profilers)
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let r = carepost_dlp::bench::benchmark_rounds(
        &messages,
        &carepost_dlp::Limits::default(),
        Duration::from_secs_f64(seconds),
        rounds,
    );
    println!(
        "{} messages, {:.3} MB decoded text, {} rounds: detect {:.1} MB/s median round, {:.1} MB/s fastest round (one core); parse+extract+detect {:.1} MB/s of raw .eml",
        r.messages,
        r.text_bytes as f64 / 1e6,
        r.rounds,
        r.detect_mb_per_s,
        r.detect_mb_per_s_best,
        r.end_to_end_mb_per_s
    );
}
