//! What `carepost dlp scan --format jsonl` prints: one corpus-format JSON object per
//! message, for .eml files and directories of them.
//!
//!     cargo run --release -p carepost-dlp --example scan -- DIR_OR_FILES... > out.jsonl

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let limits = carepost_dlp::Limits::default();
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in std::env::args().skip(1) {
        let path = PathBuf::from(&arg);
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
                    eprintln!("{arg}: {e}");
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
        println!("{}", report.to_corpus_jsonl(&name));
    }
    let _ = Path::new("");
    ExitCode::SUCCESS
}
