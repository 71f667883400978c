//! The foundation end to end: first start on embedded defaults, reuse on restart, nothing
//! readable at rest, audit verification, key rotation, configuration errors.

use std::path::Path;

use carepost::install::{Access, Installation};
use carepost_model::TenantId;
use carepost_testkit::{Server, files_containing, run};
use carepost_vault::BlobKey;

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn open(dir: &Path) -> Installation {
    let config = carepost::Config::load(&dir.join("carepost.toml")).unwrap();
    Installation::open(config, Access::Exclusive).await.unwrap()
}

/// Seals `marker` through the vault into a blob, as message bodies will be.
async fn write_marker(dir: &Path, marker: &str) {
    let install = open(dir).await;
    let tenant = TenantId::default();
    let (dk, wrapped) = install.ring.new_data_key(&tenant, "marker").unwrap();
    let t = tenant.clone();
    install
        .store
        .write(move |tx| Box::pin(async move { carepost_store::keys::put_data_key(tx, &t, "marker", &wrapped).await }))
        .await
        .unwrap();
    let sealed = dk.seal(marker.as_bytes()).unwrap();
    install.blobs.put(&BlobKey::new("test", "marker").unwrap(), sealed.into()).await.unwrap();
    install.close().await.unwrap();
}

async fn read_marker(dir: &Path) -> String {
    let install = open(dir).await;
    let tenant = TenantId::default();
    let sealed = install.blobs.get(&BlobKey::new("test", "marker").unwrap()).await.unwrap();
    let dk = install.store.data_key(&install.ring, &tenant, "marker").await.unwrap();
    let text = String::from_utf8(dk.open(&sealed).unwrap()).unwrap();
    install.close().await.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_restart_and_nothing_readable_at_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let server = Server::start(Path::new(BIN), dir, "");
    let data = server.data_dir.clone();
    assert!(server.banner.iter().any(|l| l.contains("data") && l.contains("data")), "{:?}", server.banner);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("tls/key.pem")), 0o600);
    assert!(data.join("carepost.db").is_file());
    assert!(data.join("tls/cert.pem").is_file());
    assert!(data.join("blobs").is_dir());

    // A second server on the same data directory is refused while the first runs.
    let (code, _, err) = run(Path::new(BIN), dir, &["serve", "--config", "carepost.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another carepost process"), "{err}");
    assert!(server.stop().success());

    let master_before = std::fs::read(data.join("master.key")).unwrap();
    let cert_before = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let marker = format!("CAREPOST-MARKER-{}", std::process::id());
    write_marker(dir, &marker).await;

    let server = Server::start(Path::new(BIN), dir, "");
    assert_eq!(std::fs::read(data.join("master.key")).unwrap(), master_before, "master key reused");
    assert_eq!(std::fs::read(data.join("tls/cert.pem")).unwrap(), cert_before, "certificate reused");
    assert!(server.stop().success());

    assert_eq!(read_marker(dir).await, marker);
    assert_eq!(files_containing(&data, marker.as_bytes()), Vec::<std::path::PathBuf>::new());

    let (code, out, err) = run(Path::new(BIN), dir, &["audit", "verify", "--config", "carepost.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 4 records, last checkpoint at seq 4"), "{out}");

    // kek rotation, then master key rotation: the sealed marker stays readable.
    let (code, out, err) = run(Path::new(BIN), dir, &["key", "rotate", "--config", "carepost.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tenant default: kek v1 -> v2, 1 data keys rewrapped"), "{out}");
    let (code, out, err) = run(Path::new(BIN), dir, &["key", "rotate", "--master", "--config", "carepost.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("master key rotated"), "{out}");
    assert_ne!(std::fs::read(data.join("master.key")).unwrap(), master_before);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(read_marker(dir).await, marker);

    let (code, out, _) = run(Path::new(BIN), dir, &["audit", "verify", "--config", "carepost.toml"]);
    assert_eq!(code, 0, "{out}");
    let (_, export, _) = run(Path::new(BIN), dir, &["audit", "export", "--config", "carepost.toml"]);
    assert!(
        export.contains("\"action\":\"key.rotate.kek\"") && export.contains("\"action\":\"key.rotate.master\""),
        "{export}"
    );
    assert_eq!(files_containing(&data, marker.as_bytes()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn audit_verify_names_a_tampered_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Server::start(Path::new(BIN), dir, "");
    assert!(server.stop().success());
    let server = Server::start(Path::new(BIN), dir, "");
    assert!(server.stop().success());
    let db = dir.join("data/carepost.db");
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE audit_records SET actor='someone' WHERE seq=3\"); c.commit()")
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out, _) = run(Path::new(BIN), dir, &["audit", "verify", "--config", "carepost.toml"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("FAILED: record 3 was altered"), "{out}");
}

#[test]
fn init_writes_a_valid_commented_config_and_check_names_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (code, out, err) = run(Path::new(BIN), dir, &["init", "--dir", "etc"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("carepost.toml"));
    let written = std::fs::read_to_string(dir.join("etc/carepost.toml")).unwrap();
    assert!(written.contains("# ") && written.contains("mx_listen = \"127.0.0.1:2525\""));
    let (code, out, _) = run(Path::new(BIN), dir, &["config", "check", "etc/carepost.toml"]);
    assert_eq!(code, 0);
    assert!(out.contains("ok"));
    // never overwritten
    let (code, _, err) = run(Path::new(BIN), dir, &["init", "--dir", "etc"]);
    assert_eq!(code, 1);
    assert!(err.contains("never overwritten"), "{err}");

    std::fs::write(dir.join("bad.toml"), "hostname = \"mx\"\n[vault]\nmaster_key_sorce = \"env\"\n").unwrap();
    let (code, _, err) = run(Path::new(BIN), dir, &["config", "check", "bad.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.toml:3:1: unknown field `master_key_sorce`") && err.contains("vault.master_key_sorce"),
        "{err}"
    );

    let (code, out, _) = run(Path::new(BIN), dir, &["--help"]);
    assert_eq!(code, 0);
    for command in ["serve", "init", "config", "audit", "key"] {
        assert!(out.contains(command), "{out}");
    }
    for args in [
        &["audit", "export", "--help"][..],
        &["key", "rotate", "--help"],
        &["config", "check", "--help"],
        &["serve", "--help"],
    ] {
        let (code, out, _) = run(Path::new(BIN), dir, args);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage:"), "{out}");
    }
}

#[test]
fn master_key_from_environment_and_a_wrong_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let extra = "[vault]\nmaster_key_source = \"env\"\nmaster_key_env = \"CP_TEST_KEY\"\n";
    std::fs::write(dir.join("carepost.toml"), carepost_testkit::test_config(&dir.join("data"), extra)).unwrap();
    let run_with = |value: &str| {
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify", "--config", "carepost.toml"])
            .current_dir(dir)
            .env("CP_TEST_KEY", value)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run_with(key);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!dir.join("data/master.key").exists());
    let (code, _, err) = run_with("ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=");
    assert_eq!(code, Some(1));
    assert!(err.contains("is not the one this data was sealed under"), "{err}");
}

/// Runs sqlite3 on the database, waiting for the server's write lock if need be.
fn sqlite(db: &Path, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3").args(["-cmd", ".timeout 10000"]).arg(db).arg(sql).output().unwrap();
    assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn last_seq(db: &Path) -> i64 {
    sqlite(db, "SELECT MAX(seq) FROM audit_records").trim().parse().unwrap()
}

/// Rewrites the last audit record the way anyone with write access to the database can: a
/// field changed and its (unkeyed) hash recomputed, written back with sqlite3. Returns its
/// sequence number.
fn rewrite_last(db: &Path) -> i64 {
    let seq = last_seq(db);
    let out = std::process::Command::new("sqlite3")
        .arg("-json")
        .arg(db)
        .arg(format!("SELECT seq, at, actor, action, target, source_ip, outcome, details, hex(prev_hash) AS prev FROM audit_records WHERE seq = {seq}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &rows[0];
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    let mut row = carepost_store::audit_log::AuditRow {
        seq,
        at: r["at"].as_i64().unwrap(),
        actor: text("actor"),
        action: text("action"),
        target: "someone-else".into(),
        source_ip: r["source_ip"].as_str().map(str::to_owned),
        outcome: text("outcome"),
        details: text("details"),
        prev_hash: (0..32).map(|i| u8::from_str_radix(&text("prev")[2 * i..2 * i + 2], 16).unwrap()).collect(),
        hash: Vec::new(),
    };
    row.hash = carepost_audit::record_hash(&row).to_vec();
    let hex: String = row.hash.iter().map(|b| format!("{b:02X}")).collect();
    sqlite(db, &format!("UPDATE audit_records SET target = 'someone-else', hash = X'{hex}' WHERE seq = {seq}"));
    seq
}

/// Requests with an unknown API key: each one is refused and audited by the server.
fn refused_api_requests(server: &Server, n: usize) {
    let url = format!("https://127.0.0.1:{}/v3/mail/send", server.addr("https").port());
    for _ in 0..n {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", "POST"])
            .args(["-H", "Authorization: Bearer not-a-key", "-H", "Content-Type: application/json", "-d", "{}"])
            .arg(&url)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    }
}

fn verify(dir: &Path) -> (i32, String) {
    let (code, out, err) = run(Path::new(BIN), dir, &["audit", "verify", "--config", "carepost.toml"]);
    (code, format!("{out}{err}"))
}

/// `audit verify` on a copy of `dir`'s data directory after `tamper` ran on the copy.
fn verify_tampered_copy(dir: &Path, name: &str, tamper: impl FnOnce(&Path)) -> (i32, String) {
    let copy = dir.join(name);
    std::fs::create_dir(&copy).unwrap();
    assert!(std::process::Command::new("cp").arg("-a").arg(dir.join("data")).arg(&copy).status().unwrap().success());
    std::fs::write(copy.join("carepost.toml"), carepost_testkit::test_config(&copy.join("data"), "")).unwrap();
    tamper(&copy.join("data/carepost.db"));
    verify(&copy)
}

/// Polls `audit verify` while the server runs until it fails: the server signs its head at
/// most ten seconds after the damage.
fn verify_until_failed(dir: &Path) -> String {
    for _ in 0..60 {
        let (code, out) = verify(dir);
        if code == 1 {
            return out;
        }
        assert_eq!(code, 0, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("tampering with the tail went unnoticed for 30 s");
}

#[test]
fn audit_verify_names_a_deleted_or_rewritten_tail() {
    let tmp = tempfile::tempdir().unwrap();

    // Right after a checkpoint: a clean stop signed the head.
    let dir = tmp.path().join("stopped");
    std::fs::create_dir(&dir).unwrap();
    let server = Server::start(Path::new(BIN), &dir, "");
    refused_api_requests(&server, 3);
    assert!(server.stop().success());
    let db = dir.join("data/carepost.db");
    let last = last_seq(&db);
    assert_eq!(verify(&dir).0, 0);
    let (code, out) = verify_tampered_copy(&dir, "deleted", |db| {
        sqlite(db, &format!("DELETE FROM audit_records WHERE seq >= {}", last - 1));
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("FAILED: record {} is missing", last - 1)), "{out}");
    let (code, out) = verify_tampered_copy(&dir, "rewritten", |db| assert_eq!(rewrite_last(db), last));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("FAILED: record {last} does not match the checkpoint signed for it")), "{out}");

    // Between two signatures, after a restart: the running server names what it wrote.
    for attack in ["delete", "rewrite"] {
        let dir = tmp.path().join(attack);
        std::fs::create_dir(&dir).unwrap();
        assert!(Server::start(Path::new(BIN), &dir, "").stop().success());
        let server = Server::start(Path::new(BIN), &dir, "");
        refused_api_requests(&server, 3);
        let db = dir.join("data/carepost.db");
        let last = last_seq(&db);
        let expected = if attack == "delete" {
            sqlite(&db, &format!("DELETE FROM audit_records WHERE seq >= {}", last - 1));
            format!("FAILED: record {} is missing", last - 1)
        } else {
            assert_eq!(rewrite_last(&db), last);
            format!("FAILED: record {last} does not match the checkpoint signed for it")
        };
        let out = verify_until_failed(&dir);
        assert!(out.starts_with(&expected), "{attack}: {out}");
        assert!(server.stop().success());
        let (code, out) = verify(&dir);
        assert_eq!(code, 1);
        assert!(out.starts_with(&expected), "{attack} after the stop: {out}");
        if out.contains("is missing: deleted") {
            // The damage came before the server's next signature, which found it.
            let (_, export, _) = run(Path::new(BIN), &dir, &["audit", "export", "--config", "carepost.toml"]);
            assert!(export.contains("\"action\":\"audit.tamper\""), "the server audited what it found: {export}");
        }
    }
}

#[test]
fn records_a_crash_left_unsigned_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Server::start(Path::new(BIN), dir, "");
    let first = last_seq(&dir.join("data/carepost.db")) + 1;
    refused_api_requests(&server, 2);
    let last = last_seq(&dir.join("data/carepost.db"));
    // Killed before its next tick (ten seconds away) could sign the two records.
    server.kill9();
    let (code, out) = verify(dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("note: records {first} to {last} are not covered by a signed head yet")), "{out}");
    let server = Server::start(Path::new(BIN), dir, "");
    assert!(
        server.banner.iter().any(|l| l.contains(&format!("records {first} to {last} were never signed"))),
        "{:?}",
        server.banner
    );
    assert!(server.stop().success());
    let (code, out) = verify(dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "note: records {first} to {last} were never signed: carepost stopped without shutting down"
        )),
        "{out}"
    );
    assert!(!out.contains("not covered"), "{out}");
}
