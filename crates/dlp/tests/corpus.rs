//! Accuracy on the shared corpus, scored by its own score.py: the dev set, another seed
//! of the same templates, and the extra templates of tests/corpus (other phrasings,
//! encodings, formats and look-alikes than the dev set has). Fails, never skips, when
//! the corpus or python3 is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use carepost_dlp::{Limits, scan_eml};

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus"));
    assert!(
        dir.join("score.py").is_file(),
        "corpus not found at {} (expected ../shared/corpus beside the workspace)",
        dir.display()
    );
    dir
}

/// Scan every .eml of `dir` into a predictions file, score it against `labels`.
fn score(dir: &Path, labels: &Path, out: &Path) -> serde_json::Value {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .eml in {}", dir.display());
    let limits = Limits::default();
    let mut lines = String::new();
    for f in &files {
        let report = scan_eml(&std::fs::read(f).unwrap(), &limits);
        lines.push_str(&report.to_corpus_jsonl(&f.file_name().unwrap().to_string_lossy()));
        lines.push('\n');
    }
    std::fs::write(out, lines).unwrap();
    let corpus = corpus_dir();
    let output = Command::new("python3")
        .arg(corpus.join("score.py"))
        .arg(labels)
        .arg(out)
        .arg("--json")
        .output()
        .expect("python3 is needed to run score.py");
    assert!(output.status.success(), "score.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("")).expect("score.py summary");
    eprintln!("{}: {summary}", dir.display());
    summary
}

#[track_caller]
fn assert_goals(summary: &serde_json::Value, f1: f64, recall: f64, precision: f64) {
    let get = |k: &str| summary[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {summary}"));
    assert_eq!(summary["missing_predictions"], 0, "{summary}");
    assert!(get("entity_f1") >= f1, "entity_f1 {} < {f1}: {summary}", get("entity_f1"));
    assert!(get("sensitive_recall") >= recall, "sensitive_recall {} < {recall}: {summary}", get("sensitive_recall"));
    assert!(
        get("sensitive_precision") >= precision,
        "sensitive_precision {} < {precision}: {summary}",
        get("sensitive_precision")
    );
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn dev_corpus_meets_the_goals() {
    let dev = corpus_dir().join("dev");
    let out = scratch_dir("dev-predictions").join("dev.jsonl");
    let summary = score(&dev, &dev.join("labels.jsonl"), &out);
    assert_goals(&summary, 0.97, 0.99, 0.97);
}

/// Generate a corpus with phigen.py, optionally with only the templates of one of this
/// crate's modules under tests/corpus.
fn generate(name: &str, seed: u32, count: u32, module: Option<&str>) -> PathBuf {
    let dir = scratch_dir(name);
    let mut cmd = Command::new("python3");
    cmd.arg(corpus_dir().join("phigen.py"))
        .args(["--seed", &seed.to_string(), "--count", &count.to_string(), "--out"])
        .arg(&dir);
    if let Some(module) = module {
        cmd.arg("--templates").arg(format!("{}/tests/corpus/{module}", env!("CARGO_MANIFEST_DIR"))).arg("--only-extra");
    }
    let status = cmd.status().expect("python3 is needed to run phigen.py");
    assert!(status.success(), "phigen.py failed");
    dir
}

#[test]
fn another_seed_of_the_built_in_templates() {
    let dir = generate("seed-1234", 1234, 300, None);
    let summary = score(&dir, &dir.join("labels.jsonl"), &dir.join("predictions.jsonl"));
    assert_goals(&summary, 0.97, 0.99, 0.97);
}

#[test]
fn extra_templates_beyond_the_dev_corpus() {
    let dir = generate("extra-templates", 4321, 300, Some("extra_templates.py"));
    let summary = score(&dir, &dir.join("labels.jsonl"), &dir.join("predictions.jsonl"));
    assert_goals(&summary, 0.95, 0.98, 0.97);
}

#[test]
fn built_in_templates_as_mangled_html_only_bodies() {
    let dir = generate("wrap-html", 41, 200, Some("wrap_html.py"));
    let summary = score(&dir, &dir.join("labels.jsonl"), &dir.join("predictions.jsonl"));
    assert_goals(&summary, 0.97, 0.99, 0.97);
}

#[test]
fn built_in_templates_forwarded_and_quoted_printable() {
    let dir = generate("wrap-forward", 43, 200, Some("wrap_forward.py"));
    let summary = score(&dir, &dir.join("labels.jsonl"), &dir.join("predictions.jsonl"));
    assert_goals(&summary, 0.97, 0.99, 0.97);
}
