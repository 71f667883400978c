//! The REST API end to end with the real binary: API keys made with the CLI, messages sent
//! over HTTPS and delivered to Postfix's smtp-sink, their status, idempotency, problem
//! details for bad input, per-key rate limits, the OpenAPI document, and the official
//! `sendgrid` Python library pointed at carepost.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carepost_testkit::cli::{carepost, create_api_key};
use carepost_testkit::{Server, Sink, WAIT, eventually, files_containing};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

/// Mail for clinic.example is local (inbound) and goes to the sink as is; other domains are
/// outbound and protected by the default policy.
fn config(sink: SocketAddr) -> String {
    format!(
        "[smtp]\nmx_listen = \"\"\nsubmission_listen = \"\"\nsubmissions_listen = \"\"\nlocal_domains = [\"clinic.example\"]\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\n\n\
         [delivery]\nsmart_host = \"{sink}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\nconnection_idle = \"1s\"\n"
    )
}

fn create_key(dir: &Path, args: &[&str]) -> String {
    let key = create_api_key(BIN, dir, args);
    assert!(key.starts_with("cpk_") && key.len() == 47, "{key}");
    key
}

struct Api {
    base: String,
    client: reqwest::Client,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl Api {
    fn new(server: &Server) -> Api {
        let (client, base) = server.https_client();
        Api { base, client }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            request = request.header("authorization", format!("Bearer {k}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(b) = body {
            request = request.header("content-type", "application/json").body(b);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    async fn post(&self, path: &str, key: Option<&str>, headers: &[(&str, &str)], body: &Value) -> Reply {
        self.call(reqwest::Method::POST, path, key, headers, Some(body.to_string())).await
    }

    async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.call(reqwest::Method::GET, path, key, &[], None).await
    }
}

fn message(to: &str, marker: &str) -> Value {
    json!({
        "from": {"email": "lab@clinic.example", "name": "The Lab"},
        "to": [to],
        "subject": "Your results",
        "text": format!("Results are ready. {marker}"),
        "html": format!("<p>Results are ready. {marker}</p>"),
        "attachments": [{"content": "aGVsbG8gd29ybGQ=", "filename": "results.txt", "type": "text/plain"}],
        "headers": {"X-Lab-Order": "A-1"}
    })
}

fn assert_problem(reply: &Reply, status: u16, detail_contains: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.content_type(), "application/problem+json", "{:?}", reply.body);
    assert_eq!(reply.body["status"], status);
    assert!(reply.body["type"].is_string() && reply.body["title"].is_string(), "{:?}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(detail.contains(detail_contains), "{detail:?} should mention {detail_contains:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_sending_status_idempotency_and_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &config(sink.addr));
    let api = Api::new(&server);

    // Keys: made with the CLI, shown once, listed without their secret.
    let key = create_key(dir, &["--name", "lab system", "--scope", "send,status"]);
    let status_only = create_key(dir, &["--name", "dashboard", "--scope", "status", "--rate", "3"]);
    let elsewhere = create_key(dir, &["--name", "elsewhere", "--scope", "send", "--ip", "192.0.2.0/24"]);
    let (code, _, err) = carepost(BIN, dir, &["apikey", "create", "--name", "x", "--scope", "root"]);
    assert_eq!(code, 1, "an unknown scope is refused");
    assert!(err.contains("unknown scope"), "{err}");
    let (code, _, err) =
        carepost(BIN, dir, &["apikey", "create", "--name", "x", "--scope", "send", "--expires", "2001-01-01"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = carepost(BIN, dir, &["apikey", "create", "--name", "lab system", "--scope", "send"]);
    assert_eq!(code, 1, "names are unique: {err}");
    let (code, list, _) = carepost(BIN, dir, &["apikey", "list"]);
    assert_eq!(code, 0);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(
        list.contains(&key[..12]) && list.contains("scopes=send,status") && list.contains("ip=192.0.2.0/24"),
        "{list}"
    );
    assert!(!list.contains(&key) && !list.contains(&status_only), "secrets are never listed");
    for k in [&key, &status_only] {
        assert!(files_containing(&server.data_dir, k.as_bytes()).is_empty(), "a key is stored hashed only");
    }

    // Authentication and scopes.
    let marker = format!("API-MARKER-{}", std::process::id());
    let msg = message("pat@clinic.example", &marker);
    let r = api.post("/api/v1/messages", None, &[], &msg).await;
    assert_problem(&r, 401, "API key");
    assert!(r.headers.get("www-authenticate").is_some());
    let r = api.post("/api/v1/messages", Some("cpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), &[], &msg).await;
    assert_problem(&r, 401, "not valid");
    let r = api.post("/api/v1/messages", Some(&status_only), &[], &msg).await;
    assert_problem(&r, 403, "send");
    let r = api.post("/api/v1/messages", Some(&elsewhere), &[], &msg).await;
    assert_problem(&r, 403, "address");
    assert!(r.headers.get("set-cookie").is_none(), "the API sets no cookies");

    // Bad input gets a clear problem and sends nothing.
    let mut bad = msg.clone();
    bad["to"] = json!(["not an address"]);
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &bad).await, 400, "to[0]");
    let mut bad = msg.clone();
    bad["attachments"][0]["content"] = json!("%%%");
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &bad).await, 400, "attachments[0].content");
    let mut bad = msg.clone();
    bad["headers"] = json!({"Bcc": "hidden@example.org"});
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &bad).await, 400, "Bcc");
    let mut bad = msg.clone();
    bad["unknown_field"] = json!(1);
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &bad).await, 400, "unknown_field");
    let r =
        api.call(reqwest::Method::POST, "/api/v1/messages", Some(&key), &[("content-type", "text/plain")], None).await;
    assert_problem(&r, 415, "JSON");
    let r = api.call(reqwest::Method::POST, "/api/v1/messages", Some(&key), &[], Some("{\"from\":".into())).await;
    assert_problem(&r, 400, "JSON");
    let (_, queue, _) = carepost(BIN, dir, &["queue", "list"]);
    assert!(queue.contains("the queue is empty"), "nothing was queued: {queue}");

    // A message, sent twice with one idempotency key: one message.
    let r = api.post("/api/v1/messages", Some(&key), &[("idempotency-key", "order-1")], &msg).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["replayed"], false);
    assert_eq!(r.headers["location"].to_str().unwrap(), format!("/api/v1/messages/{id}"));
    let again = api.post("/api/v1/messages", Some(&key), &[("idempotency-key", "order-1")], &msg).await;
    assert_eq!(
        (again.status, again.body["id"].as_str(), again.body["replayed"].as_bool()),
        (202, Some(id.as_str()), Some(true))
    );

    // It arrives at the sink once, as built from the request; its status says so.
    eventually("the message at the sink", WAIT, async || sink.all().contains(&marker)).await;
    let delivered = sink.all();
    assert_eq!(sink.count(&marker), 1, "sent once");
    assert!(delivered.contains("X-Lab-Order: A-1") && delivered.contains("results.txt"), "{delivered}");
    let path = format!("/api/v1/messages/{id}");
    eventually("delivered status", WAIT, async || {
        api.get(&path, Some(&key)).await.body["recipients"][0]["status"] == "delivered"
    })
    .await;
    let status = api.get(&path, Some(&status_only)).await;
    assert_eq!(status.status, 200, "{:?}", status.body);
    let rcpt = &status.body["recipients"][0];
    assert_eq!(rcpt["address"], "pat@clinic.example");
    assert!(rcpt["method"].is_string(), "{rcpt}");
    let history: Vec<&str> =
        rcpt["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "delivered"]);
    assert!(!status.body.to_string().contains(&marker), "status carries no content");
    assert_problem(&api.get("/api/v1/messages/00000000000000000000000000", Some(&key)).await, 404, "no such message");
    assert_problem(&api.get("/api/v1/messages/nonsense", Some(&key)).await, 404, "");

    // Per-key rate limit: the status-only key may make 3 requests a minute (one used above).
    api.get(&path, Some(&status_only)).await;
    api.get(&path, Some(&status_only)).await;
    let limited = api.get(&path, Some(&status_only)).await;
    assert_problem(&limited, 429, "too many");
    assert!(limited.headers.get("retry-after").is_some());

    // A batch is checked whole before anything is sent.
    let batch_markers: Vec<String> = (0..3).map(|i| format!("BATCH-{i}-{}", std::process::id())).collect();
    let mut messages: Vec<Value> = batch_markers.iter().map(|m| message("pat@clinic.example", m)).collect();
    messages.push(json!({"from": "lab@clinic.example", "to": ["x"], "text": "x"}));
    let r = api.post("/api/v1/messages/batch", Some(&key), &[], &json!({ "messages": messages })).await;
    assert_problem(&r, 400, "messages[3].to[0]");
    messages.pop();
    let r = api.post("/api/v1/messages/batch", Some(&key), &[], &json!({ "messages": messages })).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["accepted"], 3);
    eventually("the batch at the sink", WAIT, async || batch_markers.iter().all(|m| sink.all().contains(m.as_str())))
        .await;

    // force_portal: the outbound recipient's copy must go through the portal. This build
    // has no portal configured, so carepost holds it with that reason (fail closed) and the
    // content never goes out by mail.
    let portal_marker = format!("PORTAL-{}", std::process::id());
    let mut portal = message("patient@example.net", &portal_marker);
    portal["force_portal"] = json!(true);
    portal["portal_passphrase"] = json!("short");
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &portal).await, 400, "portal_passphrase");
    portal["portal_passphrase"] = json!("told you on the phone");
    let r = api.post("/api/v1/messages", Some(&key), &[], &portal).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let portal_path = format!("/api/v1/messages/{}", r.body["id"].as_str().unwrap());
    let deadline = Instant::now() + WAIT;
    loop {
        let body = api.get(&portal_path, Some(&key)).await.body;
        let rcpt = &body["recipients"][0];
        if rcpt["status"] == "held" || rcpt["status"] == "delivered" {
            let reply = rcpt["last_reply"].as_str().unwrap_or("");
            assert!(rcpt["method"] == "portal" || reply.contains("secure portal"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the portal hint was not followed: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!sink.all().contains(&portal_marker), "portal content never goes out by mail");

    // Revoked keys stop working at once.
    let (_, list, _) = carepost(BIN, dir, &["apikey", "list"]);
    let id_of_key =
        list.lines().find(|l| l.contains("lab system")).unwrap().split_whitespace().next().unwrap().to_owned();
    let (code, out, err) = carepost(BIN, dir, &["apikey", "revoke", &id_of_key]);
    assert_eq!(code, 0, "{out}{err}");
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &msg).await, 401, "revoked");
    let (_, list, _) = carepost(BIN, dir, &["apikey", "list"]);
    assert!(list.lines().any(|l| l.contains("lab system") && l.ends_with("revoked")), "{list}");

    assert!(server.stop().success());
    let (code, out, _) = carepost(BIN, dir, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    let (_, audit, _) = carepost(BIN, dir, &["audit", "export"]);
    for action in ["apikey.create", "apikey.revoke", "api.auth", "api.message.status"] {
        assert!(audit.contains(&format!("\"action\":\"{action}\"")), "{action} audited");
    }
    assert!(
        audit.contains("\"portal_passphrase\":\"set\"") && !audit.contains("told you on the phone"),
        "the passphrase is noted, never written"
    );
    for m in [marker.as_str(), portal_marker.as_str(), "told you on the phone"] {
        assert!(files_containing(&dir.join("data"), m.as_bytes()).is_empty(), "{m} readable at rest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let limited = config(closed)
        .replace("[web]\nlisten = \"127.0.0.1:0\"\n", "[web]\nlisten = \"127.0.0.1:0\"\nmax_upload_bytes = 4096\n");
    let server = Server::start(Path::new(BIN), dir, &limited);
    let api = Api::new(&server);
    // Request bodies above web.max_upload_bytes are refused before anything is parsed.
    let key = create_key(dir, &["--name", "big", "--scope", "send"]);
    let mut big = message("pat@clinic.example", "BIG");
    big["text"] = json!("x".repeat(10_000));
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &big).await, 413, "larger");
    let r = api.post("/v3/mail/send", Some(&key), &[], &big).await;
    assert_eq!(r.status, 413);
    assert!(r.body["errors"][0]["message"].is_string(), "SendGrid-shaped: {:?}", r.body);
    let r = api.post("/v3/mail/send", Some("cpk_nope"), &[], &json!({})).await;
    assert_eq!(r.status, 401);
    assert!(r.body["errors"][0]["message"].is_string(), "SendGrid-shaped: {:?}", r.body);
    let r = api.get("/api/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    for path in ["/api/v1/messages", "/api/v1/messages/batch", "/api/v1/messages/{id}"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["SendRequest"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Unknown API paths are problems too.
    let r = api.get("/api/v1/nothing", None).await;
    assert_problem(&r, 404, "");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_limited_to_senders_refuse_other_from_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Nothing listens on the smart host's port: accepted messages wait in the queue.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = Server::start(Path::new(BIN), dir, &config(closed));
    let api = Api::new(&server);
    let (code, _, err) =
        carepost(BIN, dir, &["apikey", "create", "--name", "x", "--scope", "send", "--from", "not an address"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--from 'not an address'"), "{err}");
    let key =
        create_key(dir, &["--name", "lab", "--scope", "send", "--from", "Lab@clinic.example,@results.clinic.example"]);
    let (_, list, _) = carepost(BIN, dir, &["apikey", "list"]);
    assert!(list.contains("from=lab@clinic.example,@results.clinic.example"), "{list}");

    let mut msg = message("pat@clinic.example", "FROM-CHECK");
    msg["from"] = json!("billing@clinic.example");
    let r = api.post("/api/v1/messages", Some(&key), &[], &msg).await;
    assert_problem(&r, 403, "from: this API key may not send from billing@clinic.example");
    msg["from"] = json!({"email": "someone@clinic.example.evil", "name": "x"});
    assert_problem(&api.post("/api/v1/messages", Some(&key), &[], &msg).await, 403, "may not send from");

    let mut ok_domain = message("pat@clinic.example", "FROM-OK-1");
    ok_domain["from"] = json!("anyone@results.clinic.example");
    let batch = json!({"messages": [message("pat@clinic.example", "FROM-OK-0"), ok_domain.clone(), msg]});
    let r = api.post("/api/v1/messages/batch", Some(&key), &[], &batch).await;
    assert_problem(&r, 403, "messages[2].from");
    let sendgrid = json!({"personalizations": [{"to": [{"email": "pat@clinic.example"}]}], "from": {"email": "billing@clinic.example"},
                          "subject": "x", "content": [{"type": "text/plain", "value": "x"}]});
    let r = api.post("/v3/mail/send", Some(&key), &[], &sendgrid).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("may not send from"), "{:?}", r.body);
    let (_, queue, _) = carepost(BIN, dir, &["queue", "list"]);
    assert!(queue.contains("the queue is empty"), "refused requests queue nothing: {queue}");

    // Allowed senders: the address (in any case) and any address of the domain.
    assert_eq!(
        api.post("/api/v1/messages", Some(&key), &[], &message("pat@clinic.example", "FROM-OK-A")).await.status,
        202
    );
    assert_eq!(api.post("/api/v1/messages", Some(&key), &[], &ok_domain).await.status, 202);
    let mut sendgrid_ok = sendgrid.clone();
    sendgrid_ok["from"]["email"] = json!("LAB@clinic.example");
    assert_eq!(api.post("/v3/mail/send", Some(&key), &[], &sendgrid_ok).await.status, 202);

    assert!(server.stop().success());
    let (_, audit, _) = carepost(BIN, dir, &["audit", "export"]);
    assert!(audit.contains("\"action\":\"api.sender\""), "refused senders are audited");
    assert!(!audit.contains("billing@clinic.example"), "the refused address is hashed in the audit log");
}

/// The Python interpreter of the virtual environment scripts/test.sh prepares with the
/// `sendgrid` library. Fails (never skips) without it.
fn python_with_sendgrid() -> PathBuf {
    let python = std::env::var_os("CAREPOST_TEST_PYTHON")
        .map(PathBuf::from)
        .expect("CAREPOST_TEST_PYTHON must name a python with the sendgrid library (scripts/test.sh sets it up)");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import sendgrid"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{} cannot import sendgrid (pip install sendgrid; scripts/test.sh does)", python.display());
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sendgrid_python_library_sends_through_carepost() {
    let python = python_with_sendgrid();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &config(sink.addr));
    let key = create_key(dir, &["--name", "sendgrid app", "--scope", "send"]);
    let marker = format!("SENDGRID-MARKER-{}", std::process::id());
    let script = r#"
import os, sys, base64
import sendgrid
from sendgrid.helpers.mail import Mail, Attachment, FileContent, FileName, FileType, Disposition
from python_http_client.exceptions import HTTPError

client = sendgrid.SendGridAPIClient(api_key=os.environ["KEY"], host=os.environ["BASE"])
mail = Mail(from_email=("lab@clinic.example", "The Lab"), to_emails=["pat@clinic.example"],
            subject="Results from SendGrid code", plain_text_content="Hello " + os.environ["MARKER"],
            html_content="<p>Hello " + os.environ["MARKER"] + "</p>")
mail.attachment = Attachment(FileContent(base64.b64encode(b"report").decode()), FileName("report.txt"),
                             FileType("text/plain"), Disposition("attachment"))
response = client.send(mail)
print("status", response.status_code, "body", repr(response.body))
bad = {"personalizations": [{"to": [{"email": "not-an-address"}]}], "from": {"email": "lab@clinic.example"},
       "subject": "x", "content": [{"type": "text/plain", "value": "x"}]}
try:
    client.client.mail.send.post(request_body=bad)
    print("bad accepted")
except HTTPError as e:
    print("bad", e.status_code, e.body.decode())
"#;
    let cert = server.data_dir.join("tls/cert.pem");
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .env("KEY", &key)
        .env("MARKER", &marker)
        .env("BASE", format!("https://127.0.0.1:{}", server.addr("https").port()))
        .env("SSL_CERT_FILE", &cert)
        .env("REQUESTS_CA_BUNDLE", &cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("status 202 body b''"), "{stdout}");
    assert!(stdout.contains("bad 400") && stdout.contains("\"errors\"") && stdout.contains("\"field\""), "{stdout}");
    eventually("the SendGrid-sent message", WAIT, async || sink.all().contains(&marker)).await;
    let all = sink.all();
    assert!(all.contains("Results from SendGrid code") && all.contains("report.txt"), "{all}");
    assert!(server.stop().success());
}

/// schemathesis (from PyPI, in the same virtual environment) generates requests from the
/// OpenAPI document for a bounded number of examples: no answer may be a 5xx or disagree with
/// the documented schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors() {
    let python = python_with_sendgrid();
    let st = python.with_file_name("schemathesis");
    assert!(st.exists(), "schemathesis is not installed beside {} (scripts/test.sh installs it)", python.display());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Nothing listens on the smart host's port: generated messages wait in the queue.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let extra = config(closed).replace(
        "[web]\nlisten = \"127.0.0.1:0\"\n",
        "[web]\nlisten = \"127.0.0.1:0\"\nrequests_per_minute = 100000\n",
    );
    let server = Server::start(Path::new(BIN), dir, &extra);
    let key = create_key(dir, &["--name", "fuzz", "--scope", "send,status", "--rate", "100000"]);
    let base = format!("https://127.0.0.1:{}", server.addr("https").port());
    let child = std::process::Command::new(&st)
        .arg("run")
        .arg(format!("{base}/api/openapi.json"))
        .args(["--url", &base, "--max-examples", "25", "--workers", "1", "--generation-deterministic"])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .arg("--tls-verify")
        .arg(server.data_dir.join("tls/cert.pem"))
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = carepost_testkit::wait_output(child, Duration::from_secs(600));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed"), "schemathesis ran no test cases: {text}");
    eprintln!("{text}");
    assert!(server.stop().success());
}

/// The peak resident memory of process `pid` (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_sendgrid_request_with_1000_personalizations_keeps_memory_bounded() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Delivery is off: what is measured is taking the request, not sending the messages on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = Server::start(Path::new(BIN), dir, &format!("{}enabled = false\n", config(closed)));
    let api = Api::new(&server);
    let key = create_key(dir, &["--name", "bulk", "--scope", "send"]);

    // One 15 MB file (20 MB in base64) that does not compress, for 1,000 patients.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let file: Vec<u8> = (0..15 * 1024 * 1024 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let personalizations: Vec<Value> =
        (0..1000).map(|i| json!({"to": [{"email": format!("patient{i}@clinic.example")}]})).collect();
    let request = json!({
        "personalizations": personalizations,
        "from": {"email": "lab@clinic.example"},
        "subject": "Your imaging",
        "content": [{"type": "text/plain", "value": "Your images are attached."}],
        "attachments": [{"content": base64::engine::general_purpose::STANDARD.encode(&file), "filename": "scan.dcm", "type": "application/dicom"}]
    })
    .to_string();
    drop(file);
    assert!(request.len() > 20_000_000, "{} bytes", request.len());

    let before = peak_rss(server.pid());
    let response = api
        .client
        .post(format!("{}/v3/mail/send", api.base))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(1800))
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202, "{:?}", response.text().await);
    let peak = peak_rss(server.pid());
    eprintln!("peak RSS {} MiB (before the request: {} MiB)", peak >> 20, before >> 20);
    assert!(peak < 300 << 20, "peak RSS {} MiB (before the request: {} MiB)", peak >> 20, before >> 20);

    // Every personalization became its own message.
    let (code, queue, err) = carepost(BIN, dir, &["queue", "list", "--limit", "2000"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        queue.lines().filter(|l| l.contains(" api ")).count(),
        1000,
        "{}",
        queue.lines().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(server.stop().success());
}
