//! Measures the queue runner alone: N messages of SIZE bytes are put in the queue, then
//! delivered through the smart host to Postfix's smtp-sink over loopback.
//!
//!     cargo run --release -p carepost-delivery --example relay_throughput -- 20000 10240 20
//!
//! Prints acceptance and delivery rates in messages per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carepost_audit::{Audit, CheckpointKey};
use carepost_delivery::dns::StaticDns;
use carepost_delivery::{DeliveryConfig, QueueRunner, RunnerEnv, SmartHostTls};
use carepost_model::{Address, Arrival, Envelope, Recipient, TenantId};
use carepost_spool::{Spool, Submission};
use carepost_store::Store;
use carepost_vault::{KeyRing, LocalDirBlobStore, MasterKey};

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers: COUNT SIZE SESSIONS")).collect();
    let count = args.first().copied().unwrap_or(2000);
    let size = args.get(1).copied().unwrap_or(10 * 1024);
    let sessions = args.get(2).copied().unwrap_or(20);

    let dir = tempfile::tempdir().expect("a scratch directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut sink = std::process::Command::new("/usr/sbin/smtp-sink")
        .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "512"])
        .spawn()
        .expect("smtp-sink (apt-get install postfix)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "smtp-sink did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let store = Store::open(&dir.path().join("q.db")).await.unwrap();
    let ring = Arc::new(KeyRing::new(MasterKey::generate().unwrap()));
    store.load_system_keys(&ring).await.unwrap();
    store.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
    let audit = Audit::new(store.clone(), CheckpointKey::from_ring(&ring).unwrap(), 100_000, None);
    let blobs = Arc::new(LocalDirBlobStore::open(dir.path().join("blobs")).unwrap());
    let spool = Spool::new(store.clone(), ring, blobs, audit);

    let body: String = {
        let mut b = String::from("From: <app@clinic.example>\r\nTo: <patient@example.net>\r\nSubject: results\r\n\r\n");
        while b.len() < size {
            b.push_str("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n");
        }
        b
    };
    let arrival: Arrival =
        serde_json::from_value(serde_json::json!({"source": "relay", "client_ip": "127.0.0.1"})).unwrap();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let (spool, body, arrival) = (spool.clone(), body.clone(), arrival.clone());
        tasks.spawn(async move {
            let envelope = Envelope {
                mail_from: Some(Address::parse("app@clinic.example").unwrap()),
                recipients: vec![Recipient::new(Address::parse(&format!("p{i}@example.net")).unwrap())],
                dsn_ret: None,
                dsn_envid: None,
                require_tls: false,
                smtputf8: false,
                body: Default::default(),
            };
            spool.accept(Submission::new(TenantId::default(), envelope, arrival, Bytes::from(body))).await.unwrap();
        });
        if tasks.len() >= 200 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    let accepted = started.elapsed();

    let config = DeliveryConfig {
        smart_host: format!("127.0.0.1:{port}"),
        smart_host_tls: SmartHostTls::None,
        max_connections_per_destination: sessions,
        claim_batch: 512,
        ..DeliveryConfig::default()
    };
    let runner =
        QueueRunner::new(spool.clone(), config, RunnerEnv::production(Arc::new(StaticDns::new()), "bench.example"))
            .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run(stopped).await }
    });
    let started = Instant::now();
    loop {
        let counts = store.queue_counts().await.unwrap();
        let delivered = counts.iter().find(|(s, _)| s == "delivered").map(|(_, n)| *n).unwrap_or(0);
        if delivered as usize >= count {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "delivery did not finish: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = started.elapsed();
    let _ = stop.send(true);
    let _ = task.await;
    let _ = sink.kill();
    let _ = sink.wait();
    println!(
        "{count} messages of {size} bytes: accepted in {:.2}s ({:.0} msg/s), delivered over {sessions} sessions in {:.2}s ({:.0} msg/s)",
        accepted.as_secs_f64(),
        count as f64 / accepted.as_secs_f64(),
        delivered.as_secs_f64(),
        count as f64 / delivered.as_secs_f64()
    );
}
