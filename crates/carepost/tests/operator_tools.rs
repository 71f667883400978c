//! Operator commands that work on files: dlp scan and bench, policy test, the key directory,
//! and config check's reading of the policy.

use std::path::{Path, PathBuf};

use carepost_testkit::pki::self_signed_smime;
use carepost_testkit::run;

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

const PHI: &str = "From: nurse@clinic.example.org\r\nTo: pat@example.net\r\nSubject: Your results\r\n\r\nPatient: Jane Roe, DOB 04/12/1961, MRN 00482913.\r\nYour HbA1c was 8.1%, consistent with type 2 diabetes mellitus (E11.9).\r\n";

#[test]
fn dlp_scan_prints_the_corpus_format_and_names_unreadable_files() {
    let dev = corpus().join("dev");
    assert!(dev.is_dir(), "the labeled corpus is expected at {}", dev.display());
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(Path::new(BIN), tmp.path(), &["dlp", "scan", "--format", "jsonl", dev.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 400);
    assert_eq!(lines[0]["file"], "0001.eml");
    assert!(lines.iter().all(|l| ["phi", "pii", "clean"].contains(&l["verdict"].as_str().unwrap())));

    // Scored by the corpus's own scorer: the goals of the DLP issue.
    let predictions = tmp.path().join("out.jsonl");
    std::fs::write(&predictions, &out).unwrap();
    let scored = std::process::Command::new("python3")
        .arg(corpus().join("score.py"))
        .arg(dev.join("labels.jsonl"))
        .arg(&predictions)
        .output()
        .unwrap();
    assert!(scored.status.success(), "{}", String::from_utf8_lossy(&scored.stderr));

    std::fs::write(tmp.path().join("one.eml"), PHI).unwrap();
    let (code, out, _) = run(Path::new(BIN), tmp.path(), &["dlp", "scan", "--format", "table", "one.eml"]);
    assert_eq!(code, 0);
    assert!(out.contains("one.eml") && out.contains("MRN"), "{out}");

    let (code, _, err) = run(Path::new(BIN), tmp.path(), &["dlp", "scan", "one.eml", "missing.eml"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.eml"), "{err}");

    let (code, out, err) =
        run(Path::new(BIN), tmp.path(), &["dlp", "bench", "--seconds", "0.2", dev.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("400 messages") && out.contains("MB/s"), "{out}");
}

#[test]
fn policy_test_shows_the_decision_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("msg.eml"), PHI).unwrap();
    std::fs::write(
        dir.join("carepost.toml"),
        "data_dir = \"data\"\n[smtp]\nlocal_domains = [\"clinic.example.org\"]\n\n[policy]\n[[policy.rules]]\nname = \"phi to the portal\"\nwhen.verdict = [\"phi\"]\nwhen.direction = \"outbound\"\nthen.method = \"portal\"\nthen.tag_subject = \"[SECURE]\"\n",
    )
    .unwrap();
    let (code, out, err) = run(
        Path::new(BIN),
        dir,
        &[
            "policy",
            "test",
            "msg.eml",
            "--from",
            "nurse@clinic.example.org",
            "--to",
            "pat@example.net",
            "--to",
            "dr@clinic.example.org",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verdict:  phi"), "{out}");
    assert!(out.contains("to pat@example.net\n  method:     portal (rule: phi to the portal)"), "{out}");
    assert!(out.contains("tag:        [SECURE]") && out.contains("plan:       portal"), "{out}");
    assert!(out.contains("to dr@clinic.example.org\n  method:     local delivery"), "{out}");
    assert!(!dir.join("data").exists(), "policy test must not create an installation");

    std::fs::write(dir.join("bad.toml"), "[[policy.rules]]\nname = \"x\"\nwhen.sender_group = [\"nobody\"]\n").unwrap();
    let (code, _, err) = run(Path::new(BIN), dir, &["config", "check", "bad.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml: policy.rules[0] \"x\": when.sender_group: group 'nobody' is not defined"), "{err}");
}

#[test]
fn keys_import_list_lookup_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A certificate for S/MIME, made by openssl as a correspondent's CA would.
    self_signed_smime(dir, "pat", "pat@example.net");
    std::fs::write(dir.join("carepost.toml"), format!("data_dir = \"{}\"\n", dir.join("data").display())).unwrap();

    let (code, out, err) = run(Path::new(BIN), dir, &["keys", "import", "pat.pem"]);
    assert_eq!(code, 0, "{err}");
    let id = out.trim().rsplit(' ').next().unwrap().to_owned();
    let (code, out, _) = run(Path::new(BIN), dir, &["keys", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("smime") && out.contains("pat@example.net") && out.contains("import"),
        "{out}"
    );

    std::fs::write(dir.join("msg.eml"), PHI).unwrap();
    let (_, out, _) = run(
        Path::new(BIN),
        dir,
        &["policy", "test", "msg.eml", "--from", "n@clinic.example.org", "--to", "pat@example.net"],
    );
    assert!(out.contains("plan:       S/MIME -> portal"), "a known certificate makes best choose S/MIME: {out}");

    let (code, _, err) = run(Path::new(BIN), dir, &["keys", "import", "carepost.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("not an X.509 certificate or OpenPGP public key"), "{err}");

    let (code, out, _) = run(Path::new(BIN), dir, &["keys", "remove", &id]);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = run(
        Path::new(BIN),
        dir,
        &["policy", "test", "msg.eml", "--from", "n@clinic.example.org", "--to", "pat@example.net"],
    );
    assert!(out.contains("plan:       verified TLS -> portal"), "{out}");
    let (_, export, _) = run(Path::new(BIN), dir, &["audit", "export"]);
    assert!(export.contains("keys.import") && export.contains("keys.remove"), "{export}");
}
