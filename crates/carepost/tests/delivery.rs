//! Outbound delivery end to end with the real binary: `carepost serve` delivers the queue to
//! Postfix's smtp-sink, survives kill -9 in the middle of deliveries without losing a
//! message, and the queue, suppress, dkim and dns commands work on a live installation.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use carepost_testkit::cli::carepost;
use carepost_testkit::{Server, Sink, WAIT, files_containing, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

fn delivery_config(sink: SocketAddr) -> String {
    format!(
        "[delivery]\nsmart_host = \"{sink}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\nconnection_idle = \"1s\"\n"
    )
}

/// Queues messages the way ingress does, from another process on the same data directory.
async fn queue_messages(dir: &Path, markers: &[String], to: &str) -> Vec<String> {
    let (install, spool) = support::open(dir).await;
    let mut ids = Vec::new();
    for marker in markers {
        let body = format!("From: <clinic@clinic.example>\r\nTo: <{to}>\r\nSubject: results\r\n\r\n{marker}\r\n");
        ids.push(support::queue(&spool, "clinic@clinic.example", to, body).await);
    }
    install.store.close().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_the_queue_to_smtp_sink_and_nothing_is_readable_at_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &delivery_config(sink.addr));
    assert!(server.banner.iter().any(|l| l.contains("delivery") && l.contains("smart host")), "{:?}", server.banner);
    let markers: Vec<String> = (0..10).map(|i| format!("PHI-MARKER-{i}-{}", std::process::id())).collect();
    queue_messages(dir, &markers, "patient@example.net").await;
    wait_until("every message at the sink", WAIT, || markers.iter().all(|m| sink.all().contains(m.as_str())));
    assert!(server.stop().success());
    let (code, out, err) = carepost(BIN, dir, &["queue", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the queue is empty"), "{out}");
    let (code, out, _) = carepost(BIN, dir, &["audit", "export"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("\"action\":\"delivery.attempt\"").count(), 10, "{out}");
    for m in &markers {
        assert!(files_containing(&dir.join("data"), m.as_bytes()).is_empty(), "{m} readable at rest");
    }
    assert!(files_containing(&dir.join("data"), b"patient@example.net").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_deliveries_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The sink waits before answering DATA, so that deliveries are in flight when the
    // server dies.
    let sink = Sink::start(dir, &["-w", "2"]);
    let server = Server::start(Path::new(BIN), dir, &delivery_config(sink.addr));
    let markers: Vec<String> = (0..30).map(|i| format!("KILL9-{i:02}-END")).collect();
    queue_messages(dir, &markers, "patient@example.net").await;
    // Wait for the first deliveries to reach DATA (the sink counts connections in its log
    // only; the queue tells us they are in flight).
    let db = dir.join("data/carepost.db");
    wait_until("deliveries in flight", WAIT, || inflight(&db) > 0);
    server.kill9();
    let server = Server::start(Path::new(BIN), dir, &delivery_config(sink.addr));
    wait_until("every message at the sink after the restart", WAIT, || {
        let all = sink.all();
        markers.iter().all(|m| all.contains(m.as_str()))
    });
    assert!(server.stop().success());
    let (code, out, _) = carepost(BIN, dir, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
}

/// Recipients in flight, read with sqlite3 (another process, as an operator would).
fn inflight(db: &Path) -> i64 {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg("SELECT COUNT(*) FROM recipients WHERE state = 'inflight'")
        .output()
        .expect("sqlite3 (scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_suppress_dkim_and_dns_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Nothing listens on the smart host's port: mail waits in the queue.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = Server::start(Path::new(BIN), dir, &delivery_config(closed));
    let ids = queue_messages(dir, &["WAITING".to_owned()], "patient@example.net").await;
    let id = ids[0].clone();
    let db = dir.join("data/carepost.db");
    wait_until("a failed attempt", WAIT, || attempts(&db, &id) >= 1);

    let (code, out, err) = carepost(BIN, dir, &["queue", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("queued=1"), "{out}");
    let (code, out, _) = carepost(BIN, dir, &["queue", "show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("<patient@example.net>") && out.contains("last: 4.4.1"), "{out}");
    let (code, out, _) = carepost(BIN, dir, &["queue", "hold", &id]);
    assert_eq!(code, 0);
    assert!(out.starts_with("1 recipients held"), "{out}");
    let (code, out, _) = carepost(BIN, dir, &["queue", "release", &id]);
    assert_eq!((code, out.trim()), (0, "1 recipients released"));
    let (code, out, _) = carepost(BIN, dir, &["queue", "retry", &id]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = carepost(BIN, dir, &["queue", "delete", &id, "--reason", ""]);
    assert_eq!(code, 1, "an empty reason is refused: {err}");
    let (code, out, _) = carepost(BIN, dir, &["queue", "delete", &id, "--reason", "sent to the wrong patient"]);
    assert_eq!(code, 0);
    assert!(out.contains("1 recipients returned to the sender"), "{out}");
    let (code, out, _) = carepost(BIN, dir, &["queue", "show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("bounced") && out.contains("sent to the wrong patient"), "{out}");
    let (code, out, _) = carepost(BIN, dir, &["queue", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("system"), "the returned-mail notice is queued: {out}");

    let (code, out, err) = carepost(BIN, dir, &["suppress", "add", "Gone@Example.net", "--note", "left the practice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "suppressed");
    let (_, out, _) = carepost(BIN, dir, &["suppress", "add", "gone@example.NET"]);
    assert_eq!(out.trim(), "already suppressed");
    let (code, out, _) = carepost(BIN, dir, &["suppress", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("manual") && out.contains("Gone@example.net") && out.contains("left the practice"), "{out}");
    let (code, _, _) = carepost(BIN, dir, &["suppress", "remove", "gone@example.net"]);
    assert_eq!(code, 0);
    let (code, _, _) = carepost(BIN, dir, &["suppress", "remove", "gone@example.net"]);
    assert_eq!(code, 1);
    let (code, _, err) = carepost(BIN, dir, &["suppress", "add", "not an address"]);
    assert_ne!(code, 0, "{err}");

    let (code, out, err) = carepost(BIN, dir, &["dkim", "generate", "Clinic.Example", "--selector", "s2026"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("s2026-ed._domainkey.clinic.example. IN TXT \"v=DKIM1; k=ed25519; p="), "{out}");
    assert!(out.contains("s2026-rsa._domainkey.clinic.example. IN TXT \"v=DKIM1; k=rsa; p="), "{out}");
    let (code, _, err) = carepost(BIN, dir, &["dkim", "generate", "clinic.example"]);
    assert_eq!(code, 1);
    assert!(err.contains("dkim rotate"), "{err}");
    let (code, out, _) = carepost(BIN, dir, &["dkim", "rotate", "clinic.example", "--selector", "s2027"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = carepost(BIN, dir, &["dkim", "list"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("signing").count(), 2, "{out}");
    assert_eq!(out.matches("upcoming").count(), 2, "{out}");
    let (code, out, _) = carepost(BIN, dir, &["dns", "records", "clinic.example"]);
    assert_eq!(code, 0);
    for needle in [
        "clinic.example. IN MX 10 localhost.",
        "v=spf1",
        "s2026-ed._domainkey.clinic.example.",
        "s2027-rsa._domainkey.clinic.example.",
        "_dmarc.clinic.example. IN TXT \"v=DMARC1; p=reject",
        "rua=mailto:postmaster@clinic.example",
        "_mta-sts.clinic.example. IN TXT \"v=STSv1; id=",
        ";   mode: enforce",
        "_smtp._tls.clinic.example. IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@clinic.example\"",
    ] {
        assert!(out.contains(needle), "dns records lacks {needle}:\n{out}");
    }
    assert!(server.stop().success());
    let (code, out, _) = carepost(BIN, dir, &["audit", "export"]);
    assert_eq!(code, 0);
    for action in [
        "queue.show",
        "queue.hold",
        "queue.release",
        "queue.delete",
        "suppression.add",
        "suppression.remove",
        "dkim.generate",
        "dkim.rotate",
    ] {
        assert!(out.contains(&format!("\"action\":\"{action}\"")), "no {action} in the audit log");
    }
    assert!(!out.contains("Gone@") && !out.contains("gone@") && !out.contains("wrong patient"), "PHI in the audit log");
}

fn attempts(db: &Path, id: &str) -> i64 {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(format!("SELECT attempts FROM recipients WHERE message_id = '{id}'"))
        .output()
        .expect("sqlite3 (scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}
