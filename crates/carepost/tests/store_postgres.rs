//! `carepost serve` on PostgreSQL (`[store] url`): it takes the queue from a throwaway
//! cluster, delivers it to smtp-sink, the CLI reads the same store, the audit chain
//! verifies, and no PostgreSQL column holds the messages' plaintext.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carepost::install::{Access, Installation};
use carepost_model::{Address, Arrival, Envelope, Recipient, TenantId};
use carepost_spool::{Spool, Submission};
use carepost_testkit::{Server, Sink, run};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const WAIT: Duration = Duration::from_secs(90);

fn carepost(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--config", "carepost.toml"]);
    run(Path::new(BIN), dir, &full)
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Queues messages the way ingress does, from another process on the same store.
async fn queue_messages(dir: &Path, markers: &[String], to: &str) {
    let config = carepost::Config::load(&dir.join("carepost.toml")).unwrap();
    let install = Installation::open(config, Access::Shared).await.unwrap();
    assert!(install.store.backend().is_shared(), "the configured store is PostgreSQL");
    let spool = Spool::new(install.store.clone(), install.ring.clone(), install.blobs.clone(), install.audit.clone());
    let arrival: Arrival =
        serde_json::from_value(serde_json::json!({ "source": "relay", "client_ip": "127.0.0.1" })).unwrap();
    for marker in markers {
        let envelope = Envelope {
            mail_from: Some(Address::parse("clinic@clinic.example").unwrap()),
            recipients: vec![Recipient::new(Address::parse(to).unwrap())],
            dsn_ret: None,
            dsn_envid: None,
            require_tls: false,
            smtputf8: false,
            body: Default::default(),
        };
        let body = format!("From: <clinic@clinic.example>\r\nTo: <{to}>\r\nSubject: results\r\n\r\n{marker}\r\n");
        spool.accept(Submission::new(TenantId::default(), envelope, arrival.clone(), Bytes::from(body))).await.unwrap();
    }
    install.audit.checkpoint().await.unwrap();
    install.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_delivers_the_queue_and_keeps_no_plaintext_in_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pg = carepost_testkit::postgres::cluster();
    let url = pg.create_database();
    let sink = Sink::start(dir, &[]);
    let tables = format!(
        "[store]\nurl = \"{url}\"\npool_size = 4\n\n[delivery]\nsmart_host = \"{}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\nconnection_idle = \"1s\"\n",
        sink.addr
    );
    let server = Server::start(Path::new(BIN), dir, &tables);
    assert!(!dir.join("data/carepost.db").exists(), "no SQLite file beside a PostgreSQL store");
    let markers: Vec<String> = (0..10).map(|i| format!("PG-PHI-MARKER-{i}-{}", std::process::id())).collect();
    queue_messages(dir, &markers, "patient@example.net").await;
    wait_until("every message at the sink", || {
        let all = sink.all();
        markers.iter().all(|m| all.contains(m.as_str()))
    });
    assert!(server.stop().success());

    let (code, out, err) = carepost(dir, &["queue", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the queue is empty"), "{out}");
    let (code, out, err) = carepost(dir, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");

    // What PostgreSQL keeps, row by row: sealed, never the body or the address.
    let name = url.rsplit('/').next().unwrap();
    let port = pg.port().to_string();
    let pg_dump = pg.bin().join("pg_dump").display().to_string();
    let (code, dump, err) = carepost_testkit::run_peer(
        &pg_dump,
        &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "--data-only", name],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(dump.contains("delivery.attempt"), "the dump holds the store's rows");
    for m in &markers {
        assert!(!dump.contains(m.as_str()), "{m} readable in PostgreSQL");
    }
    assert!(!dump.contains("patient@example.net"));
    let hex: String = b"patient@example.net".iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&hex));
}
