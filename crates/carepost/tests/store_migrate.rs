//! `carepost store migrate`: a SQLite installation with mail in its queue, a portal message,
//! staff accounts and an audit log is copied to a throwaway PostgreSQL cluster and its blobs
//! to an S3 server (both from the testkit); the SQLite file is not changed by a byte; switched
//! to the copies, `serve` delivers the queued mail to smtp-sink, the queue, accounts and
//! portal message read the same, and the audit chain verifies with the migration on it. A
//! second migration into the now full database is refused.

mod support;

use std::path::Path;

use carepost_testkit::cli::{add_user, carepost};
use carepost_testkit::{Server, Sink, s3, swaks_ok};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const PASSWORD: &str = "correct horse battery staple 42";

fn config(delivery: &str, store: &str) -> String {
    format!(
        "[smtp]\nmx_listen = \"\"\nsubmission_listen = \"127.0.0.1:0\"\nsubmissions_listen = \"\"\n\
         local_domains = [\"clinic.example.org\"]\nrelay_networks = [\"127.0.0.0/8\"]\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\norganization = \"Example Clinic\"\n\n\
         [secure]\nwkd = false\n\n\
         [delivery]\n{delivery}\n\n\
         [[policy.rules]]\nname = \"patients read in the portal\"\nwhen = {{ recipient = [\"@patient.example\"] }}\nthen = {{ method = \"portal\" }}\n\n\
         {store}"
    )
}

fn write_config(dir: &Path, delivery: &str, store: &str) {
    std::fs::write(
        dir.join("carepost.toml"),
        carepost_testkit::test_config(&dir.join("data"), &config(delivery, store)),
    )
    .unwrap();
}

fn send(server: &Server, to: &str, body: &str) {
    swaks_ok(
        server.addr("submission"),
        &["--from", "nurse@clinic.example.org", "--to", to, "--header", "Subject: results", "--body", body],
    );
}

#[test]
fn a_sqlite_install_moves_to_postgres_and_s3_and_carries_on_there() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let to_sink =
        format!("smart_host = \"{}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"", sink.addr);
    let server_s3 = s3::server();
    let bucket = server_s3.new_bucket("migrate");
    let bucket_settings = server_s3.blobs_config(&bucket);
    // The bucket's settings without its url: the install keeps its local blob directory.
    let unused: String = bucket_settings.lines().filter(|l| !l.starts_with("url")).map(|l| format!("{l}\n")).collect();

    // A portal message, handed over and announced while delivery runs.
    let marker = format!("MIGRATE-MARKER-{}", std::process::id());
    let server = Server::start(Path::new(BIN), dir, &config(&to_sink, ""));
    send(&server, "pat@patient.example", &format!("Biopsy: {marker}-portal"));
    sink.wait_for(&["pat@patient.example", "https://"], &[]);
    assert!(server.stop().success());
    // Mail that stays queued: delivery is off.
    let server = Server::start(Path::new(BIN), dir, &config("enabled = false", ""));
    let markers: Vec<String> = (0..3).map(|i| format!("{marker}-queued-{i}")).collect();
    for (i, m) in markers.iter().enumerate() {
        // The first body is too large to be kept with the queue rows: it is a blob.
        let body = format!("Your appointment is confirmed: {m}");
        let body = if i == 0 { support::large_body(&body) } else { body };
        send(&server, "dr.smith@clinic.example.org", &body);
    }
    assert!(server.stop().success());
    add_user(BIN, dir, "admin@clinic.example.org", &["--role", "admin"], PASSWORD);
    add_user(BIN, dir, "auditor@clinic.example.org", &["--role", "compliance"], PASSWORD);

    write_config(dir, "enabled = false", &unused);
    let (code, queue_before, err) = carepost(BIN, dir, &["queue", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(queue_before.lines().filter(|l| l.contains("queued=1")).count(), 3, "{queue_before}");
    let (code, users_before, err) = carepost(BIN, dir, &["user", "list"]);
    assert_eq!(code, 0, "{err}");
    let (code, audit_before, _) = carepost(BIN, dir, &["audit", "export"]);
    assert_eq!(code, 0);
    let portal_id = audit_before
        .lines()
        .find(|l| l.contains("\"action\":\"portal.store\""))
        .and_then(|l| l.split("\"target\":\"").nth(1))
        .and_then(|t| t.split('"').next())
        .expect("a portal.store record")
        .to_owned();
    let database = dir.join("data/carepost.db");
    let source_bytes = std::fs::read(&database).unwrap();

    let url = carepost_testkit::postgres::cluster().create_database();
    let blobs_to = format!("s3://{bucket}/carepost");
    let (code, out, err) = carepost(BIN, dir, &["store", "migrate", "--to", &url, "--blobs-to", &blobs_to]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("each table verified by row count and SHA-256"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("recipients ") && l.contains(" 6 rows")), "{out}");
    assert!(err.contains("copying: ") && err.contains("verifying: "), "{err}");
    assert!(err.contains(" blobs, "), "{err}");
    assert!(!format!("{out}{err}").contains(&marker), "plaintext in the output");
    assert_eq!(std::fs::read(&database).unwrap(), source_bytes, "the SQLite file changed");
    assert!(server_s3.objects(&bucket).len() >= 2, "the large body and the portal copy in the bucket");

    // Into a database that now holds the installation: refused, naming a table.
    let (code, out, err) = carepost(BIN, dir, &["store", "migrate", "--to", &url]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the target database is not empty: table"), "{err}");
    assert_eq!(std::fs::read(&database).unwrap(), source_bytes, "the SQLite file changed");

    // Switched over, with the local copies moved away: everything is read from the copies.
    std::fs::rename(&database, dir.join("carepost.db.migrated")).unwrap();
    std::fs::rename(dir.join("data/blobs"), dir.join("blobs.migrated")).unwrap();
    let on_postgres = format!("[store]\nurl = \"{url}\"\n\n{bucket_settings}");
    write_config(dir, "enabled = false", &on_postgres);
    let (code, queue_after, err) = carepost(BIN, dir, &["queue", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(queue_after, queue_before);
    let (code, users_after, err) = carepost(BIN, dir, &["user", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(users_after, users_before);
    let (code, status, err) = carepost(BIN, dir, &["portal", "status", &portal_id]);
    assert_eq!(code, 0, "{err}");
    assert!(status.contains(&portal_id) && status.contains("active"), "{status}");

    let server = Server::start(Path::new(BIN), dir, &config(&to_sink, &on_postgres));
    assert!(!database.exists(), "no SQLite file beside the PostgreSQL store");
    for m in &markers {
        sink.wait_for(&[m.as_str(), "Subject: results"], &[]);
    }
    assert!(server.stop().success());
    support::assert_drained_and_verified(dir);
    let (_, audit_after, _) = carepost(BIN, dir, &["audit", "export"]);
    assert_eq!(audit_after.matches("\"action\":\"store.migrate\"").count(), 1, "{audit_after}");
    assert!(audit_after.starts_with(audit_before.trim_end()), "the chain carries on from the SQLite one");
}
