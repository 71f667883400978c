//! Webhooks end to end with the real binary: an endpoint registered with the CLI, messages
//! sent through the API and delivered to (or refused by) Postfix's smtp-sink, and a small
//! HTTP receiver in the test that checks each POST's signature with the secret shown at
//! creation, fails the first attempts to see the retries, and looks for PHI in every payload.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use carepost_testkit::cli::{carepost, create_api_key};
use carepost_testkit::{Server, Sink, WAIT, eventually};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

/// One POST the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
    answered: u16,
}

/// A loopback HTTP receiver. Answers 500 to the first `fail_first` POSTs of each event type
/// listed, 204 to everything else.
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(fail_first: &[(&str, usize)]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::<Received>::new()));
        let failures: HashMap<String, usize> = fail_first.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
        let log = received.clone();
        std::thread::spawn(move || {
            let mut failed: HashMap<String, usize> = HashMap::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = HashMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let kind = headers.get("carepost-event-type").cloned().unwrap_or_default();
                let seen = failed.entry(kind.clone()).or_default();
                let status = if *seen < failures.get(&kind).copied().unwrap_or(0) {
                    *seen += 1;
                    500
                } else {
                    204
                };
                let reason = if status == 500 { "Internal Server Error" } else { "No Content" };
                let _ = write!(stream, "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                log.lock().unwrap().push(Received {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    answered: status,
                });
            }
        });
        Receiver { addr, received }
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// POSTs of one event type.
    fn of(&self, kind: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.headers.get("carepost-event-type").map(String::as_str) == Some(kind))
            .collect()
    }
}

/// The check the docs describe for receivers: HMAC-SHA256 of "<t>.<body>" under the secret,
/// hex, with a recent `t`.
fn signature_ok(secret: &str, header: &str, body: &str) -> bool {
    let parts: HashMap<&str, &str> = header.split(',').filter_map(|p| p.split_once('=')).collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else { return false };
    let Ok(t) = t.parse::<i64>() else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - t).abs() > 300 {
        return false;
    }
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), format!("{t}.{body}").as_bytes());
    let expected: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    expected == *v1
}

async fn send(client: &reqwest::Client, base: &str, key: &str, to: &str, marker: &str) -> String {
    let body = json!({
        "from": "lab@clinic.example",
        "to": [to],
        "subject": format!("Results {marker}"),
        "text": format!("Your results are ready. {marker}"),
    });
    let r = client
        .post(format!("{base}/api/v1/messages"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_delivery_events_reach_the_endpoint_with_retries_and_no_phi() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let receiver = Receiver::start(&[("delivered", 2)]);
    let sink = Sink::start(dir, &[]);
    let refusing_dir = dir.join("refusing");
    std::fs::create_dir_all(&refusing_dir).unwrap();
    let refusing = Sink::start(&refusing_dir, &["-f", "RCPT"]);
    let config = format!(
        "[smtp]\nmx_listen = \"\"\nsubmission_listen = \"\"\nsubmissions_listen = \"\"\nlocal_domains = [\"clinic.example\", \"gone.clinic.example\"]\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\n\n\
         [delivery]\nsmart_host = \"{}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\nconnection_idle = \"1s\"\n\n\
         [delivery.transport]\n\"gone.clinic.example\" = \"[127.0.0.1]:{}\"\n\n\
         [webhooks]\nallow_http_loopback = true\nretry_first = \"1s\"\nretry_max = \"2s\"\n",
        sink.addr,
        refusing.addr.port()
    );
    let server = Server::start(Path::new(BIN), dir, &config);

    // Registration: https only (loopback http allowed by the test config), known events.
    let (code, _, err) = carepost(BIN, dir, &["webhook", "add", "http://192.0.2.1/hook"]);
    assert_eq!(code, 1, "plain http elsewhere than loopback is refused");
    assert!(err.contains("https"), "{err}");
    // Nor may an endpoint reach the cloud metadata service or the internal network.
    for (url, kind) in [
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://[fd00:ec2::254]/", "cloud metadata"),
        ("https://192.168.1.20/hook", "private"),
    ] {
        let (code, _, err) = carepost(BIN, dir, &["webhook", "add", url]);
        assert_eq!(code, 1, "{url}");
        assert!(err.contains(kind) && err.contains("webhooks.allowed_networks"), "{err}");
    }
    let (code, _, err) =
        carepost(BIN, dir, &["webhook", "add", "https://hooks.example/x", "--events", "delivered,exploded"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown event type 'exploded'"), "{err}");
    let url = format!("http://{}/carepost", receiver.addr);
    let (code, out, err) = carepost(BIN, dir, &["webhook", "add", &url, "--events", "delivered,bounced,deferred"]);
    assert_eq!(code, 0, "{out}{err}");
    let secret = out.trim().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() == 49, "{out}");
    assert!(
        carepost_testkit::files_containing(&server.data_dir, secret.as_bytes()).is_empty(),
        "the secret is kept sealed"
    );
    let (_, list, _) = carepost(BIN, dir, &["webhook", "list"]);
    let endpoint_id = list.split_whitespace().next().unwrap().to_owned();
    assert!(list.contains(&url) && list.contains("events=delivered,bounced,deferred"), "{list}");

    // `webhook test` sends a signed test event at once.
    let (code, out, err) = carepost(BIN, dir, &["webhook", "test", &endpoint_id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("HTTP 204"), "{out}");
    let test = receiver.of("test");
    assert_eq!(test.len(), 1);
    assert!(signature_ok(&secret, &test[0].headers["carepost-signature"], &test[0].body), "{:?}", test[0]);

    let key = create_api_key(BIN, dir, &["--name", "lab", "--scope", "send,status"]);
    let (client, base) = server.https_client();

    // Delivered: the receiver fails twice, then takes it; every try is the same signed event.
    let marker = format!("HOOK-MARKER-{}", std::process::id());
    let id = send(&client, &base, &key, "pat@clinic.example", &marker).await;
    eventually("the delivered webhook to be taken", WAIT, async || {
        receiver.of("delivered").iter().any(|r| r.answered == 204)
    })
    .await;
    let delivered = receiver.of("delivered");
    assert_eq!(delivered.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 204], "retried after failures");
    let event_ids: Vec<&str> = delivered.iter().map(|r| r.headers["carepost-event-id"].as_str()).collect();
    assert!(event_ids.iter().all(|e| *e == event_ids[0]), "one event, delivered at least once: {event_ids:?}");
    for r in &delivered {
        assert!(signature_ok(&secret, &r.headers["carepost-signature"], &r.body), "bad signature: {r:?}");
        assert!(!signature_ok("whsec_wrong", &r.headers["carepost-signature"], &r.body));
    }
    let payload: Value = serde_json::from_str(&delivered[2].body).unwrap();
    assert_eq!(payload["type"], "delivered");
    assert_eq!(payload["id"], event_ids[0]);
    assert_eq!(payload["message_id"], id.as_str());
    assert_eq!(payload["recipient"]["index"], 0);
    assert_eq!(payload["recipient"]["hash"].as_str().unwrap().len(), 64);
    assert!(payload["method"].is_string() && payload["status"].as_str().unwrap().starts_with('2'), "{payload}");

    // The status endpoint shows the same event.
    let status = client
        .get(format!("{base}/api/v1/messages/{id}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&status).unwrap();
    let history = status["recipients"][0]["history"].as_array().unwrap();
    assert!(history.iter().any(|e| e["status"] == "delivered" && e["event_id"] == payload["id"]), "{status}");

    // Bounced: the refusing sink answers 5xx to RCPT.
    let gone = send(&client, &base, &key, "someone@gone.clinic.example", &marker).await;
    eventually("the bounced webhook", WAIT, async || !receiver.of("bounced").is_empty()).await;
    let bounced: Value = serde_json::from_str(&receiver.of("bounced")[0].body).unwrap();
    assert_eq!(bounced["message_id"], gone.as_str());
    assert!(bounced["status"].as_str().unwrap().starts_with('5'), "{bounced}");
    assert_ne!(bounced["recipient"]["hash"], payload["recipient"]["hash"], "recipients are told apart");

    // No PHI in any payload or header: no address, subject or body text.
    for r in receiver.all() {
        let everything = format!("{:?}{}", r.headers, r.body);
        for needle in ["pat@", "someone@", "clinic.example", "lab@", &marker, "Results", "results are ready"] {
            assert!(!everything.contains(needle), "{needle} in a webhook: {everything}");
        }
    }
    // Queued events are not sent to an endpoint that did not ask for them.
    assert!(receiver.of("queued").is_empty());

    let (_, list, _) = carepost(BIN, dir, &["webhook", "list"]);
    assert!(list.contains("delivered=") && !list.contains("delivered=0"), "{list}");
    let (code, out, err) = carepost(BIN, dir, &["webhook", "remove", &endpoint_id]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = carepost(BIN, dir, &["webhook", "remove", &endpoint_id]);
    assert_eq!(code, 1, "{err}");

    assert!(server.stop().success());
    let (_, audit, _) = carepost(BIN, dir, &["audit", "export"]);
    for action in ["webhook.add", "webhook.test", "webhook.remove"] {
        assert!(audit.contains(&format!("\"action\":\"{action}\"")), "{action} audited");
    }
    let refused = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"webhook.add\"") && l.contains("\"outcome\":\"denied\""))
        .count();
    assert_eq!(refused, 3, "each refused target is audited");
    assert!(!audit.contains(&secret));
}
