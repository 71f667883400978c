//! What carepost passes on must be what its sender was allowed to send, and nothing more:
//! DKIM signatures only for mail the authenticated sender may send as (submission with
//! swaks, the API, mail from the MX passed on), no bare CR or LF reaching the next hop
//! (Postfix's smtp-sink), and a clear answer at once for data ended by a bare LF and for an
//! oversize HTTP/2 upload (curl).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use carepost_testkit::cli::{add_user, carepost, create_api_key};
use carepost_testkit::dns::TestDns;
use carepost_testkit::run_peer as peer;
use carepost_testkit::{Server, Sink, swaks};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const PASSWORD: &str = "correct horse battery staple";

/// Mail for clinic.example is local and goes to the sink as it is, so what arrives there is
/// the message itself.
fn config(sink: SocketAddr, dns: &TestDns) -> String {
    format!(
        "[smtp]\nmx_listen = \"127.0.0.1:0\"\nsubmission_listen = \"127.0.0.1:0\"\nsubmissions_listen = \"\"\n\
         local_domains = [\"clinic.example\"]\ndns_servers = [\"{}\"]\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\n\n\
         [delivery]\nsmart_host = \"{sink}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\nconnection_idle = \"1s\"\n",
        dns.addr()
    )
}

async fn post_json(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &serde_json::Value,
) -> (u16, String, serde_json::Value) {
    let response = client
        .post(format!("{base}/api/v1/messages"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(serde_json::Value::Null);
    (status, content_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_signs_only_what_the_sender_may_send_as() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let dns = TestDns::start(&[]);
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &config(sink.addr, &dns));
    let (code, out, err) = carepost(BIN, dir, &["dkim", "generate", "clinic.example"]);
    assert_eq!(code, 0, "{out}{err}");
    add_user(BIN, dir, "jane@clinic.example", &[], PASSWORD);

    // Submission: the From header must be one of the account's addresses, like MAIL FROM.
    let auth = [
        "-tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "jane@clinic.example",
        "--auth-password",
        PASSWORD,
        "--to",
        "pat@clinic.example",
    ];
    let mut args = vec!["--from", "jane@clinic.example", "--body", "SUBMISSIONOWN"];
    args.extend_from_slice(&auth);
    let (code, out) = swaks(server.addr("submission"), &args);
    assert_eq!(code, 0, "{out}");
    let mut args = vec![
        "--from",
        "jane@clinic.example",
        "--header",
        "From: Chief <boss@clinic.example>",
        "--body",
        "SUBMISSIONFORGED",
    ];
    args.extend_from_slice(&auth);
    let (code, out) = swaks(server.addr("submission"), &args);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("550 5.7.1 <boss@clinic.example>: From header rejected: not owned by user jane@clinic.example"),
        "{out}"
    );
    // A From that names no address (only a display name) or a second From field cannot
    // slip past the check either.
    for header in
        [&["--header", "From: \"boss@clinic.example\""][..], &["--add-header", "From: <boss@clinic.example>"][..]]
    {
        let mut args = vec!["--from", "jane@clinic.example", "--body", "SUBMISSIONODDFROM"];
        args.extend_from_slice(header);
        args.extend_from_slice(&auth);
        let (code, out) = swaks(server.addr("submission"), &args);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("550 5.7.1 From header rejected"), "{out}");
    }

    // The API: a key without a --from list sends only from its tenant's domains.
    let (client, base) = server.https_client();
    let key = create_api_key(BIN, dir, &["--name", "lab", "--scope", "send"]);
    let own = json!({"from": "lab@clinic.example", "to": ["pat@clinic.example"], "subject": "s", "text": "APIOWN"});
    let (status, _, body) = post_json(&client, &base, &key, &own).await;
    assert_eq!(status, 202, "{body}");
    let foreign =
        json!({"from": "ceo@bank.example", "to": ["pat@clinic.example"], "subject": "s", "text": "APIFOREIGN"});
    let (status, content_type, body) = post_json(&client, &base, &key, &foreign).await;
    assert_eq!((status, content_type.as_str()), (403, "application/problem+json"), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("may send only from the domains of its tenant"), "{body}");

    // The MX: an outsider writing our domain in From gets the message delivered, unsigned.
    let (code, out) = swaks(
        server.addr("mx"),
        &[
            "--from",
            "someone@example.net",
            "--header",
            "From: Chief <boss@clinic.example>",
            "--to",
            "pat@clinic.example",
            "--body",
            "MXFORGED",
        ],
    );
    assert_eq!(code, 0, "{out}");

    for marker in ["SUBMISSIONOWN", "APIOWN"] {
        let m = sink.wait_for(&[marker], &[]);
        assert!(m.contains("DKIM-Signature:") && m.contains("d=clinic.example"), "{marker} is signed: {m}");
    }
    let m = sink.wait_for(&["MXFORGED"], &[]);
    assert!(!m.contains("DKIM-Signature:"), "mail from the MX is never signed with our keys: {m}");
    assert_eq!(sink.count("SUBMISSIONFORGED") + sink.count("APIFOREIGN"), 0);
    let (_, log, _) = carepost(BIN, dir, &["audit", "export"]);
    assert!(
        log.lines().any(|l| l.contains("\"smtp.sender\"") && l.contains("denied")),
        "the forged From is audited: {log}"
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_line_endings_and_oversize_bodies_get_clear_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let dns = TestDns::start(&[]);
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &config(sink.addr, &dns));
    let (client, base) = server.https_client();
    let key = create_api_key(BIN, dir, &["--name", "lab", "--scope", "send"]);
    let smuggled = "\r.\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@clinic.example>\r\nDATA\r\n\r\nSMUGGLED\r\n";

    // The API refuses a bare CR in the text, naming the field.
    let bad = json!({"from": "lab@clinic.example", "to": ["pat@clinic.example"], "subject": "s", "text": format!("APITEXT{smuggled}")});
    let (status, content_type, body) = post_json(&client, &base, &key, &bad).await;
    assert_eq!((status, content_type.as_str()), (400, "application/problem+json"), "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("text:") && detail.contains("carriage return"), "{detail}");

    // File content may hold anything: it arrives as one message, with CRLF line endings only.
    let file = base64::engine::general_purpose::STANDARD.encode(format!("APIFILE{smuggled}"));
    let with_file = json!({"from": "lab@clinic.example", "to": ["pat@clinic.example"], "subject": "s", "text": "APIWITHFILE",
        "attachments": [{"content": file, "filename": "note.txt", "type": "text/plain"}]});
    let (status, _, body) = post_json(&client, &base, &key, &with_file).await;
    assert_eq!(status, 202, "{body}");

    // A stored message with bare CRs (as a relay host may hand over through BDAT-less
    // software) goes to the next hop with each made CRLF.
    {
        let (install, spool) = support::open(dir).await;
        let body = format!(
            "From: <lab@clinic.example>\r\nTo: <pat@clinic.example>\r\nSubject: raw\r\n\r\nSTOREDRAW{smuggled}"
        );
        support::queue(&spool, "lab@clinic.example", "pat@clinic.example", body).await;
        install.store.close().await;
    }
    // smtp-sink writes each line it receives and drops a CR inside a line: a bare CR that was
    // passed on shows as "MARKER." on one line, one made CRLF as a line break.
    let m = sink.wait_for(&["STOREDRAW"], &[]);
    assert!(m.contains("STOREDRAW\n") && !m.contains("STOREDRAW."), "the bare CR reached the sink: {m:?}");
    let m = sink.wait_for(&["APIWITHFILE", "note.txt"], &[]);
    assert!(!m.contains("APIFILE."), "the bare CR reached the sink: {m:?}");
    assert_eq!(sink.count("X-Rcpt-Args: <victim@clinic.example>"), 0, "no second message was smuggled");

    // SMTP data ended by a bare LF is refused at once, not after the data timeout.
    let mut stream = TcpStream::connect(server.addr("mx")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    let mut reply = |stream: &mut TcpStream, send: &str| -> String {
        stream.write_all(send.as_bytes()).unwrap();
        let mut all = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    assert!(reply(&mut stream, "").starts_with("220"));
    reply(&mut stream, "EHLO client.example\r\n");
    assert!(reply(&mut stream, "MAIL FROM:<a@example.net>\r\n").starts_with("250"));
    assert!(reply(&mut stream, "RCPT TO:<pat@clinic.example>\r\n").starts_with("250"));
    assert!(reply(&mut stream, "DATA\r\n").starts_with("354"));
    let answer = reply(&mut stream, "Subject: x\r\n\r\nbody\n.\n");
    assert!(answer.starts_with("550 5.5.2 Error: bare <LF> received"), "{answer:?}");

    // An oversize upload over HTTP/2 gets the same 413 problem details as over HTTP/1.1.
    let big = dir.join("big.json");
    let mut f = std::fs::File::create(&big).unwrap();
    f.write_all(b"{\"from\": \"lab@clinic.example\", \"to\": [\"pat@clinic.example\"], \"text\": \"").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..36 {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(b"\"}").unwrap();
    drop(f);
    let out_file = dir.join("answer.json");
    let started = Instant::now();
    let (code, out, err) = peer(
        "curl",
        &[
            "-sS",
            "--http2",
            "--max-time",
            "120",
            "--cacert",
            server.data_dir.join("tls/cert.pem").to_str().unwrap(),
            "-H",
            &format!("authorization: Bearer {key}"),
            "-H",
            "content-type: application/json",
            "--data-binary",
            &format!("@{}", big.display()),
            "-o",
            out_file.to_str().unwrap(),
            "-w",
            "%{http_code} %{content_type} %{http_version}",
            &format!("{base}/api/v1/messages"),
        ],
        "",
    );
    assert_eq!(code, 0, "curl: {out}{err} after {:?}", started.elapsed());
    assert_eq!(out, "413 application/problem+json 2", "{err}");
    let problem: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(problem["status"], 413, "{problem}");
    let (_, log, _) = carepost(BIN, dir, &["audit", "export"]);
    assert!(
        log.lines().any(|l| l.contains("\"api.message\"") && l.contains("bare CR") && l.contains("denied")),
        "the bare CR is audited: {log}"
    );
    assert!(
        log.lines().any(|l| l.contains("\"smtp.smuggling\"") && l.contains("bare <LF>") && l.contains("denied")),
        "the bare LF is audited: {log}"
    );
    assert!(server.stop().success());
}
