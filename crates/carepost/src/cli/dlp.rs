//! `carepost dlp`: run the DLP scanner on files, outside the mail flow. This is the only
//! place findings are shown with their values: it is an operator's tool on the operator's
//! own files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};

#[derive(Subcommand, Debug)]
pub enum DlpCommand {
    /// Scan .eml files (or directories of them) and print what was found. Exit 0 whatever is
    /// found; exit 2 naming a file that cannot be read.
    Scan {
        #[arg(long, value_enum, default_value_t = ScanFormat::Jsonl)]
        format: ScanFormat,
        /// .eml files, or directories whose .eml files are scanned in name order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Measure detection throughput (MB/s of decoded text, one core) on .eml files.
    Bench {
        /// Measure for at least this many seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ScanFormat {
    /// One JSON object per message: file, verdict, confidence, findings with type and text.
    Jsonl,
    /// A readable table per message.
    Table,
}

/// The .eml files named by `paths`, directories expanded in name order.
fn eml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut emls: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| (path.clone(), e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("eml")))
                .collect();
            emls.sort();
            files.extend(emls);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn read(path: &Path) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path).map_err(|e| {
        eprintln!("carepost: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

pub fn run(command: DlpCommand) -> anyhow::Result<ExitCode> {
    let limits = carepost_dlp::Limits::default();
    let (paths, bench) = match &command {
        DlpCommand::Scan { paths, .. } => (paths, None),
        DlpCommand::Bench { paths, seconds } => (paths, Some(*seconds)),
    };
    let files = match eml_files(paths) {
        Ok(f) => f,
        Err((path, e)) => {
            eprintln!("carepost: {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(seconds) = bench {
        let mut messages = Vec::with_capacity(files.len());
        for f in &files {
            match read(f) {
                Ok(b) => messages.push(b),
                Err(code) => return Ok(code),
            }
        }
        let r = carepost_dlp::bench::benchmark_rounds(&messages, &limits, Duration::from_secs_f64(seconds.max(0.0)), 3);
        println!(
            "{} messages, {:.3} MB of decoded text, {} rounds\ndetect: {:.1} MB/s (median round), {:.1} MB/s (fastest round), one core\nparse + extract + detect: {:.1} MB/s of raw .eml",
            r.messages,
            r.text_bytes as f64 / 1e6,
            r.rounds,
            r.detect_mb_per_s,
            r.detect_mb_per_s_best,
            r.end_to_end_mb_per_s
        );
        return Ok(ExitCode::SUCCESS);
    }
    let table = matches!(command, DlpCommand::Scan { format: ScanFormat::Table, .. });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for path in &files {
        let bytes = match read(path) {
            Ok(b) => b,
            Err(code) => return Ok(code),
        };
        let report = carepost_dlp::scan_eml(&bytes, &limits);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let line = if table { report.to_table(&name) } else { report.to_corpus_jsonl(&name) + "\n" };
        std::io::Write::write_all(&mut out, line.as_bytes())?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(ExitCode::SUCCESS)
}
