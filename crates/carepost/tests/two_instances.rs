//! Delivery from one carepost to a second one over loopback: the first's queue runner sends
//! through its transport map to the second's MX listener, which accepts the message into
//! its own sealed queue.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use carepost_testkit::{Server, files_containing};
use support::open;

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

/// Starts `carepost serve` in `dir` with its own host name (testkit's config has none).
fn start(dir: &Path, hostname: &str, tables: &str) -> Server {
    let data_dir = dir.join("data");
    let config = dir.join("carepost.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nhostname = \"{hostname}\"\n\n[log]\nlevel = \"warn\"\n\n{tables}",
            data_dir.display()
        ),
    )
    .unwrap();
    Server::start_with(Path::new(BIN), dir, &config, &data_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_carepost_delivers_to_another_over_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();

    // B: the receiving side. Its MX accepts mail for b.test; it sends nothing itself.
    let b = start(
        &b_dir,
        "mx.b.test",
        "[smtp]\nmx_listen = \"127.0.0.1:0\"\nsubmission_listen = \"\"\nsubmissions_listen = \"\"\nlocal_domains = [\"b.test\"]\nverify_senders = false\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n[delivery]\nenabled = false\n",
    );
    let b_mx = b.addr("mx");

    // A: the sending side, routing b.test to B's MX. (Distinct host names: a next hop that
    // greets with carepost's own name is a loop, and is refused.)
    let a = start(
        &a_dir,
        "mx.a.test",
        &format!(
            "[smtp]\nmx_listen = \"\"\nsubmission_listen = \"\"\nsubmissions_listen = \"\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n[delivery]\nretry_first = \"1s\"\nretry_max = \"2s\"\n\n[delivery.transport]\n\"b.test\" = \"[127.0.0.1]:{}\"\n",
            b_mx.port()
        ),
    );
    let marker = format!("TWO-INSTANCES-{}", std::process::id());
    let id = {
        let (install, spool) = open(&a_dir).await;
        let body = format!(
            "From: <clinic@a.test>\r\nTo: <patient@b.test>\r\nSubject: results\r\nMessage-ID: <{marker}@a.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{marker}\r\n"
        );
        let id = support::queue(&spool, "clinic@a.test", "patient@b.test", body).await;
        install.store.close().await;
        id
    };

    // A reports the recipient delivered, over TLS (B offers STARTTLS).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (install, spool) = open(&a_dir).await;
        let opened = spool.open(&id).await.unwrap();
        let state = opened.recipients[0].row.state.clone();
        let method = opened.recipients[0].row.method.clone();
        install.store.close().await;
        if state == "delivered" {
            assert_eq!(method.as_deref(), Some("tls"));
            break;
        }
        assert!(Instant::now() < deadline, "A did not deliver: {state} {:?}", opened.recipients[0].last_reply);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(a.stop().success());
    assert!(b.stop().success());

    // B holds exactly one copy, sealed at rest, with A's message inside.
    let (install, spool) = open(&b_dir).await;
    let mut found = 0;
    for row in install.store.messages_in_state("active", 100).await.unwrap() {
        let opened = spool.open(&row.id).await.unwrap();
        let body = spool.body(&opened).await.unwrap();
        if String::from_utf8_lossy(&body).contains(&marker) {
            found += 1;
            assert_eq!(opened.envelope.mail_from.as_ref().map(|a| a.as_str()), Some("clinic@a.test"));
            assert_eq!(opened.recipients[0].recipient.address.as_str(), "patient@b.test");
            assert!(opened.arrival.tls.is_some(), "B received it over TLS");
        }
    }
    install.store.close().await;
    assert_eq!(found, 1, "B has the message exactly once");
    assert!(files_containing(&b_dir.join("data"), marker.as_bytes()).is_empty(), "readable at rest on B");
}
