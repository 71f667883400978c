//! `carepost serve` on PostgreSQL (`[store] url`): it takes the queue from a throwaway
//! cluster, delivers it to smtp-sink, the CLI reads the same store, the audit chain
//! verifies, and no PostgreSQL column holds the messages' plaintext.

mod support;

use std::path::Path;

use carepost_testkit::{Server, Sink, WAIT, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

/// Queues messages the way ingress does, from another process on the same store.
async fn queue_messages(dir: &Path, markers: &[String], to: &str) {
    let (install, spool) = support::open(dir).await;
    assert!(install.store.backend().is_shared(), "the configured store is PostgreSQL");
    for marker in markers {
        let body = format!("From: <clinic@clinic.example>\r\nTo: <{to}>\r\nSubject: results\r\n\r\n{marker}\r\n");
        support::queue(&spool, "clinic@clinic.example", to, body).await;
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
    wait_until("every message at the sink", WAIT, || {
        let all = sink.all();
        markers.iter().all(|m| all.contains(m.as_str()))
    });
    assert!(server.stop().success());

    support::assert_drained_and_verified(dir);

    // What PostgreSQL keeps, row by row: sealed, never the body or the address.
    let dump = pg.dump(&url);
    assert!(dump.contains("delivery.attempt"), "the dump holds the store's rows");
    for m in &markers {
        assert!(!dump.contains(m.as_str()), "{m} readable in PostgreSQL");
    }
    assert!(!dump.contains("patient@example.net"));
    let hex: String = b"patient@example.net".iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&hex));
}
