//! What `carepost dlp scan [--format jsonl|table] PATH...` does: scan .eml files (or
//! directories of them) and print one corpus-format JSON object per message, or a
//! table. Exits 0 whatever is found, 2 on unreadable input (naming the file).
//!
//!     cargo run --release -p carepost-dlp --example scan -- ../shared/corpus/dev > out.jsonl

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut table = false;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--format" => match args.next().as_deref() {
                Some("jsonl") => table = false,
                Some("table") => table = true,
                other => {
                    eprintln!("--format: expected jsonl or table, got {other:?}");
                    return ExitCode::from(2);
                }
            },
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let limits = carepost_dlp::Limits::default();
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(entries) => {
                    let mut emls: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("eml")))
                        .collect();
                    emls.sort();
                    files.extend(emls);
                }
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        } else {
            files.push(path);
        }
    }
    for path in files {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let report = carepost_dlp::scan_eml(&bytes, &limits);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if table {
            print!("{}", report.to_table(&name));
        } else {
            println!("{}", report.to_corpus_jsonl(&name));
        }
    }
    ExitCode::SUCCESS
}
