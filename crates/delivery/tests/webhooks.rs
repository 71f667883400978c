//! The webhook dispatcher against real HTTP peers on loopback: an endpoint that never
//! answers holds up only itself and not a shutdown, and endpoints on addresses the
//! configuration does not permit are refused at registration and at connection time.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carepost_delivery::Interval;
use carepost_delivery::webhooks::endpoints::{self, EndpointError};
use carepost_delivery::webhooks::{Dispatcher, UrlError, WebhooksConfig};
use carepost_model::TenantId;
use carepost_spool::Spool;
use carepost_testkit::eventually;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(60);

/// An HTTP endpoint on loopback. `answer` false: it takes connections and never says a word.
struct Endpoint {
    port: u16,
    connections: Arc<AtomicUsize>,
    event_ids: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    async fn start(answer: bool) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (connections, event_ids) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
        let (count, ids) = (connections.clone(), event_ids.clone());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                if !answer {
                    held.push(stream);
                    continue;
                }
                let ids = ids.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let (mut line, mut length, mut id) = (String::new(), 0usize, String::new());
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if let Some(v) = lower.strip_prefix("carepost-event-id:") {
                            id = v.trim().to_owned();
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    ids.lock().unwrap().push(id);
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        Endpoint { port, connections, event_ids, _task: task }
    }

    fn received(&self) -> usize {
        self.event_ids.lock().unwrap().len()
    }
}

async fn queue_one(spool: &Spool, n: usize) {
    let text = format!("From: <lab@clinic.test>\r\nTo: <patient@example.net>\r\nSubject: n\r\n\r\nbody {n}\r\n");
    support::queue_to(spool, "lab@clinic.test", "patient@example.net", false, text).await;
}

fn local_config() -> WebhooksConfig {
    WebhooksConfig {
        allow_http_loopback: true,
        // Long enough that only the per-endpoint workers keep the silent endpoint from
        // holding everything up.
        timeout: Interval::secs(3600),
        retry_first: Interval::secs(1),
        concurrency: 4,
        ..WebhooksConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_never_answers_holds_up_neither_others_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let spool = support::spool(dir.path()).await;
    let (silent, quick) = (Endpoint::start(false).await, Endpoint::start(true).await);
    let config = local_config();
    let events = ["queued".to_owned()];
    for e in [&silent, &quick] {
        endpoints::add(
            &spool,
            "test",
            &TenantId::default(),
            &format!("http://127.0.0.1:{}/hook", e.port),
            &events,
            &config,
        )
        .await
        .unwrap();
    }
    for n in 0..12 {
        queue_one(&spool, n).await;
    }
    let dispatcher = Dispatcher::new(spool.clone(), config).unwrap();
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(async move { dispatcher.run(stopped).await });
    eventually("every event at the answering endpoint", WAIT, async || quick.received() == 12).await;
    assert_eq!(silent.connections.load(Ordering::SeqCst), 1, "one attempt at a time per endpoint");
    assert_eq!(silent.received(), 0);
    let _ = stop.send(true);
    tokio::time::timeout(WAIT, running).await.expect("the dispatcher stops with an attempt still hanging").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_metadata_targets_are_refused_at_registration_and_connection() {
    let dir = tempfile::tempdir().unwrap();
    let spool = support::spool(dir.path()).await;
    let strict = WebhooksConfig { retry_first: Interval::secs(1), ..WebhooksConfig::default() };
    let tenant = TenantId::default();
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://10.1.2.3/hook",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost:8443/hook",
    ] {
        match endpoints::add(&spool, "cli", &tenant, url, &[], &strict).await {
            Err(EndpointError::Url(UrlError::Private { reason, .. })) => {
                assert!(reason.contains("allowed_networks"), "{reason}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    let allowing = WebhooksConfig { allowed_networks: vec!["10.1.0.0/16".into()], ..strict.clone() };
    endpoints::add(&spool, "cli", &tenant, "https://10.1.2.3/hook", &[], &allowing).await.expect("an allowed network");
    let refusals = spool.store().audit_records_after(0, 1000).await.unwrap();
    let refusals: Vec<_> = refusals.iter().filter(|r| r.action == "webhook.add" && r.outcome == "denied").collect();
    assert_eq!(refusals.len(), 5);
    assert!(refusals[0].details.contains("cloud metadata"), "{}", refusals[0].details);

    // A name that passed registration (here while loopback was allowed) but now resolves to an
    // address the configuration refuses is not connected to: the resolver the HTTP client
    // uses checks every address it hands over, so a changed DNS answer gains nothing.
    let receiver = Endpoint::start(true).await;
    let url = format!("https://localhost:{}/hook", receiver.port);
    let loopback_ok =
        WebhooksConfig { allowed_networks: vec!["127.0.0.0/8".into(), "::1/128".into()], ..strict.clone() };
    let (endpoint, _) =
        endpoints::add(&spool, "cli", &tenant, &url, &["queued".to_owned()], &loopback_ok).await.unwrap();
    queue_one(&spool, 1).await;
    let dispatcher = Dispatcher::new(spool.clone(), strict).unwrap();
    assert!(dispatcher.run_once().await.unwrap() >= 1);
    let rows = spool.store().webhook_deliveries(&endpoint.id, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    let error = rows[0].last_error.clone().unwrap_or_default();
    assert!(error.starts_with("refused:") && error.contains("loopback"), "{error}");
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 0, "nothing connected to the refused address");
    let audit = spool.store().audit_records_after(0, 1000).await.unwrap();
    let denied =
        audit.iter().find(|r| r.action == "webhook.deliver" && r.outcome == "denied").expect("the refusal is audited");
    assert_eq!(denied.target, format!("webhook:{}", endpoint.id));
    assert_eq!(dispatcher.send_test(&endpoint).await.map(|_| ()).unwrap_err().split(':').next(), Some("refused"));
}
