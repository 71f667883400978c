//! The SMTP server as a library, on 127.0.0.1:0, with a real spool in a scratch directory and
//! a raw TCP client: protocol, limits, smuggling, durability and sender verification.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use carepost_guard::Guard;
use carepost_intake::{Intake, IntakeSettings};
use carepost_model::{Address, Listen};
use carepost_policy::{Policy, PolicyConfig};
use carepost_smtp::{
    IntakeIngress, RunningServer, SenderVerifier, Services, SmtpConfig, SmtpServer, StoreAuthenticator,
};
use carepost_spool::Spool;
use carepost_testkit::dns::TestDns;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::Dmarc;
use mail_auth::spf::Spf;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const STEP: Duration = Duration::from_secs(20);

struct Harness {
    _dir: tempfile::TempDir,
    _dns: TestDns,
    spool: Spool,
    server: RunningServer,
    verifier: Arc<SenderVerifier>,
}

impl Harness {
    async fn start(adjust: impl FnOnce(&mut SmtpConfig)) -> Harness {
        Harness::with_dns(&[], adjust).await
    }

    /// A server whose sender verification asks a loopback DNS server holding `records`.
    async fn with_dns(records: &[(&str, &str)], adjust: impl FnOnce(&mut SmtpConfig)) -> Harness {
        let dns = TestDns::start(records);
        let dir = tempfile::tempdir().unwrap();
        let spool = carepost_spool::testing::spool(dir.path()).await;
        let (store, ring, audit) = (spool.store().clone(), spool.ring().clone(), spool.audit().clone());
        let mut config = SmtpConfig {
            mx_listen: Listen::at("127.0.0.1:0"),
            submission_listen: Listen::at("127.0.0.1:0"),
            submissions_listen: Listen(None),
            local_domains: vec!["clinic.example".into()],
            dns_servers: vec![dns.addr().to_string()],
            ..SmtpConfig::default()
        };
        adjust(&mut config);
        let verifier =
            Arc::new(SenderVerifier::new(&config.dns_servers, "mx.carepost.test", config.dmarc_enforcement).unwrap());
        let guard = Guard::load(config.guard_settings(), store.clone(), audit).await.unwrap();
        let services = Services {
            ingress: Arc::new(IntakeIngress::new(Intake::new(
                spool.clone(),
                Arc::new(Policy::new(PolicyConfig::default()).unwrap()),
                IntakeSettings {
                    local_domains: config.local_domains.clone(),
                    limits: Default::default(),
                    notices_from: Address::parse("postmaster@mx.carepost.test").unwrap(),
                    learning: None,
                },
            ))),
            authenticator: Arc::new(StoreAuthenticator::new(carepost_identity::Identity::new(
                store,
                ring,
                Default::default(),
            ))),
            guard: Arc::new(guard),
            verifier: Some(verifier.clone()),
            tls: None,
        };
        let server = SmtpServer::bind(config, "mx.carepost.test", services).await.unwrap().start();
        Harness { _dir: dir, _dns: dns, spool, server, verifier }
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.server.local_addrs().iter().find(|(k, _)| k.name() == name).map(|(_, a)| *a).unwrap()
    }

    async fn queued(&self) -> i64 {
        self.spool.store().queue_counts().await.unwrap().iter().map(|(_, n)| n).sum()
    }
}

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (r, w) = stream.into_split();
        let mut c = Client { reader: BufReader::new(r), writer: w };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// One whole reply (all its lines), or "" when the server closed the connection.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n =
                tokio::time::timeout(STEP, self.reader.read_line(&mut line)).await.expect("reply in time").unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    async fn closed(&mut self) -> bool {
        self.reply().await.is_empty()
    }
}

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <pat@clinic.example>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\nHello.\r\n"
    )
}

#[tokio::test]
async fn mx_accepts_local_mail_durably_and_refuses_relaying() {
    let h = Harness::start(|_| {}).await;
    let (mut c, greeting) = Client::connect(h.addr("mx")).await;
    assert!(greeting.starts_with("220 mx.carepost.test ESMTP"), "{greeting}");
    let ehlo = c.cmd("EHLO client.example").await;
    for cap in ["PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING"] {
        assert!(ehlo.contains(cap), "{cap} in {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"), "no AUTH on the MX: {ehlo}");
    assert!(c.cmd("AUTH PLAIN AGEAYg==").await.starts_with("503 5.5.1"));
    assert!(c.cmd("MAIL FROM:<sender@example.net> REQUIRETLS").await.starts_with("530 5.7.10"), "REQUIRETLS needs TLS");
    assert!(c.cmd("MAIL FROM:<sender@example.net> RET=HDRS ENVID=e1").await.starts_with("250 2.1.0"));
    assert!(
        c.cmd("RCPT TO:<someone@elsewhere.example>")
            .await
            .starts_with("554 5.7.1 <someone@elsewhere.example>: Relay access denied")
    );
    assert!(c.cmd("RCPT TO:<pat@clinic.example> NOTIFY=FAILURE").await.starts_with("250 2.1.5"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(format!("{}.\r\n", message("sender@example.net", "m1")).as_bytes()).await;
    let done = c.reply().await;
    assert!(done.starts_with("250 2.0.0 Ok: queued as "), "{done}");
    let id = done.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(c.cmd("QUIT").await.starts_with("221 2.0.0"));

    let opened = h.spool.open(&id).await.unwrap();
    assert_eq!(opened.envelope.mail_from.as_ref().unwrap().as_str(), "sender@example.net");
    assert_eq!(opened.envelope.dsn_envid.as_deref(), Some("e1"));
    assert_eq!(opened.recipients.len(), 1);
    assert_eq!(opened.arrival.source.as_str(), "mx");
    assert_eq!(opened.arrival.helo.as_deref(), Some("client.example"));
    let auth = opened.arrival.sender_auth.clone().expect("sender verification ran");
    assert_eq!(auth.dmarc, "none");
    let body = String::from_utf8(h.spool.body(&opened).await.unwrap().to_vec()).unwrap();
    assert!(
        body.starts_with("Received: from client.example ([127.0.0.1])\r\n\tby mx.carepost.test (carepost) with ESMTP;"),
        "{body}"
    );
    assert!(body.contains("Authentication-Results: mx.carepost.test;"), "{body}");
    assert!(body.ends_with(&message("sender@example.net", "m1")), "{body}");
}

#[tokio::test]
async fn pipelined_transactions_and_bdat() {
    let h = Harness::start(|_| {}).await;
    let (mut c, _) = Client::connect(h.addr("mx")).await;
    c.cmd("EHLO client.example").await;
    // Everything in one write: the replies come back in order.
    let body = message("a@example.net", "m2");
    c.send(
        format!("MAIL FROM:<a@example.net>\r\nRCPT TO:<pat@clinic.example>\r\nBDAT {}\r\n{body}", body.len())
            .as_bytes(),
    )
    .await;
    assert!(c.reply().await.starts_with("250 2.1.0"));
    assert!(c.reply().await.starts_with("250 2.1.5"));
    assert!(c.reply().await.starts_with(&format!("250 2.0.0 {} octets received", body.len())));
    let done = c.cmd("BDAT 0 LAST").await;
    assert!(done.starts_with("250 2.0.0 Ok: queued as "), "{done}");
    // BDAT without a transaction: the chunk is read and dropped, the session goes on.
    c.send(b"BDAT 5\r\nhello").await;
    assert!(c.reply().await.starts_with("503 5.5.1"));
    assert!(c.cmd("RSET").await.starts_with("250 2.0.0"));
    assert!(c.cmd("VRFY pat").await.starts_with("252 2.0.0"));
    assert!(c.cmd("NOOP").await.starts_with("250 2.0.0"));
    assert!(c.cmd("DATA").await.starts_with("503 5.5.1"));
    assert!(c.cmd("ETRN clinic.example").await.starts_with("502 5.5.1"));
    assert!(c.cmd("HELLO").await.starts_with("500 5.5.2"));
    assert_eq!(h.queued().await, 1);
}

#[tokio::test]
async fn every_smuggling_payload_is_refused_and_nothing_hidden_is_queued() {
    let h = Harness::start(|_| {}).await;
    let smuggled = "MAIL FROM:<admin@clinic.example>\r\nRCPT TO:<victim@clinic.example>\r\nDATA\r\n\r\nsmuggled\r\n";
    for payload in ["\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r"] {
        let (mut c, _) = Client::connect(h.addr("mx")).await;
        c.cmd("EHLO client.example").await;
        c.cmd("MAIL FROM:<a@example.net>").await;
        c.cmd("RCPT TO:<pat@clinic.example>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.send(format!("Subject: x\r\n\r\nbody{payload}{smuggled}.\r\n").as_bytes()).await;
        let reply = c.reply().await;
        assert!(reply.starts_with("550 5.5.2 Error: bare"), "{payload:?}: {reply}");
        assert!(c.closed().await, "{payload:?}: the session ends");
    }
    for payload in ["\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r"] {
        let (mut c, _) = Client::connect(h.addr("mx")).await;
        c.cmd("EHLO client.example").await;
        c.cmd("MAIL FROM:<a@example.net>").await;
        c.cmd("RCPT TO:<pat@clinic.example>").await;
        let chunk = format!("Subject: x\r\n\r\nbody{payload}{smuggled}");
        c.send(format!("BDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes()).await;
        let reply = c.reply().await;
        assert!(reply.starts_with("550 5.5.2 Error: bare"), "BDAT {payload:?}: {reply}");
        assert!(c.closed().await);
    }
    // In a command line too.
    let (mut c, _) = Client::connect(h.addr("mx")).await;
    c.send(b"EHLO client.example\nMAIL FROM:<a@example.net>\r\n").await;
    assert!(c.reply().await.starts_with("500 5.5.2 Error: bare <LF>"));
    assert!(c.closed().await);
    assert_eq!(h.queued().await, 0, "nothing was queued");
}

/// A client that ends its data with a bare `\n.\n` and then waits gets its 550 at once, not
/// after the ten-minute data timeout (the read below is bounded by STEP).
#[tokio::test]
async fn data_ended_by_a_bare_lf_is_answered_at_once() {
    let h = Harness::start(|_| {}).await;
    for ending in ["\n.\n", "\r.\r\n"] {
        let (mut c, _) = Client::connect(h.addr("mx")).await;
        c.cmd("EHLO client.example").await;
        c.cmd("MAIL FROM:<a@example.net>").await;
        c.cmd("RCPT TO:<pat@clinic.example>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.send(format!("Subject: x\r\n\r\nbody{ending}").as_bytes()).await;
        let reply = c.reply().await;
        assert!(reply.starts_with("550 5.5.2 Error: bare"), "{ending:?}: {reply}");
        assert!(c.closed().await, "{ending:?}: the session ends");
    }
    assert_eq!(h.queued().await, 0);
}

#[tokio::test]
async fn size_limits_are_enforced_early_and_while_streaming() {
    let h = Harness::start(|c| c.max_message_size = 1000).await;
    let (mut c, _) = Client::connect(h.addr("mx")).await;
    assert!(c.cmd("EHLO client.example").await.contains("SIZE 1000"));
    assert!(
        c.cmd("MAIL FROM:<a@example.net> SIZE=5000").await.starts_with("552 5.3.4"),
        "declared size refused at once"
    );
    c.cmd("MAIL FROM:<a@example.net>").await;
    c.cmd("RCPT TO:<pat@clinic.example>").await;
    c.cmd("DATA").await;
    c.send(
        format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(900).repeat(3).replace("xxxxxxxxx", "xxxxxxxx\r\n"))
            .as_bytes(),
    )
    .await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    // The session goes on after a refused message.
    c.cmd("MAIL FROM:<a@example.net>").await;
    c.cmd("RCPT TO:<pat@clinic.example>").await;
    let chunk = "y\r\n".repeat(400);
    c.send(format!("BDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes()).await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert_eq!(h.queued().await, 0);
}

#[tokio::test]
async fn recipients_errors_connections_and_idle_clients_are_limited() {
    let h = Harness::start(|c| {
        c.max_recipients = 2;
        c.max_errors = 3;
        c.max_connections_per_ip = 2;
        c.command_timeout_secs = 1;
    })
    .await;
    let (mut a, _) = Client::connect(h.addr("mx")).await;
    a.cmd("EHLO client.example").await;
    a.cmd("MAIL FROM:<a@example.net>").await;
    a.cmd("RCPT TO:<one@clinic.example>").await;
    a.cmd("RCPT TO:<two@clinic.example>").await;
    assert!(a.cmd("RCPT TO:<three@clinic.example>").await.starts_with("452 4.5.3"));
    let (_b, greeting) = Client::connect(h.addr("mx")).await;
    assert!(greeting.starts_with("220"));
    let (_c, greeting) = Client::connect(h.addr("mx")).await;
    assert!(greeting.starts_with("421 4.7.0"), "third connection from one address: {greeting}");
    // Errors: two more make three.
    a.cmd("FOO").await;
    assert!(a.cmd("BAR").await.starts_with("500 5.5.2"));
    let last = a.reply().await;
    assert!(last.starts_with("421 4.7.0 mx.carepost.test Error: too many errors"), "{last}");
    // An idle client is dropped after the command timeout.
    let (mut idle, _) = Client::connect(h.addr("mx")).await;
    let reply = idle.reply().await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
}

#[tokio::test]
async fn submission_needs_tls_before_auth_and_auth_before_mail() {
    let h = Harness::start(|_| {}).await;
    let (mut c, _) = Client::connect(h.addr("submission")).await;
    let ehlo = c.cmd("EHLO laptop").await;
    assert!(!ehlo.contains("AUTH"), "no AUTH offered in clear: {ehlo}");
    assert!(c.cmd("AUTH PLAIN AGphbmUAc2VjcmV0").await.starts_with("538 5.7.11"));
    assert!(c.cmd("AUTH LOGIN").await.starts_with("538 5.7.11"));
    assert!(c.cmd("MAIL FROM:<jane@clinic.example>").await.starts_with("530 5.7.0"));
}

#[tokio::test]
async fn relay_networks_relay_without_auth() {
    let h = Harness::start(|c| c.relay_networks = vec!["127.0.0.0/8".parse().unwrap()]).await;
    for listener in ["mx", "submission"] {
        let (mut c, _) = Client::connect(h.addr(listener)).await;
        c.cmd("EHLO exchange.clinic.example").await;
        c.cmd("MAIL FROM:<lab@clinic.example>").await;
        assert!(c.cmd("RCPT TO:<patient@example.org>").await.starts_with("250 2.1.5"), "{listener}");
        c.cmd("DATA").await;
        c.send(format!("{}.\r\n", message("lab@clinic.example", listener)).as_bytes()).await;
        let done = c.reply().await;
        assert!(done.starts_with("250 2.0.0 Ok: queued as"), "{done}");
        let id = done.trim().rsplit(' ').next().unwrap().to_owned();
        let opened = h.spool.open(&id).await.unwrap();
        assert_eq!(opened.arrival.source.as_str(), "relay");
        assert!(opened.arrival.sender_auth.is_none(), "relay mail is not checked as Internet mail");
    }
}

#[tokio::test]
async fn dmarc_reject_is_honoured_and_passing_mail_says_so() {
    let h = Harness::with_dns(
        &[
            ("client.example", "v=spf1 ip4:127.0.0.1 -all"),
            ("good.example", "v=spf1 ip4:127.0.0.0/8 -all"),
            ("_dmarc.good.example", "v=DMARC1; p=reject"),
            ("forged.example", "v=spf1 ip4:192.0.2.1 -all"),
            ("_dmarc.forged.example", "v=DMARC1; p=reject"),
        ],
        |_| {},
    )
    .await;

    let (mut c, _) = Client::connect(h.addr("mx")).await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<bank@forged.example>").await;
    c.cmd("RCPT TO:<pat@clinic.example>").await;
    c.cmd("DATA").await;
    c.send(format!("{}.\r\n", message("bank@forged.example", "phish")).as_bytes()).await;
    let reply = c.reply().await;
    assert!(reply.starts_with("550 5.7.1") && reply.contains("DMARC"), "{reply}");

    c.cmd("MAIL FROM:<lab@good.example>").await;
    c.cmd("RCPT TO:<pat@clinic.example>").await;
    c.cmd("DATA").await;
    c.send(format!("{}.\r\n", message("lab@good.example", "result")).as_bytes()).await;
    let done = c.reply().await;
    assert!(done.starts_with("250 2.0.0 Ok: queued as"), "{done}");
    let id = done.trim().rsplit(' ').next().unwrap().to_owned();
    let opened = h.spool.open(&id).await.unwrap();
    let auth = opened.arrival.sender_auth.clone().unwrap();
    assert_eq!((auth.spf.as_str(), auth.dmarc.as_str(), auth.dmarc_policy.as_str()), ("pass", "pass", "reject"));
    // DMARC passed on SPF: the author domain is known, but no DKIM signature vouches for it.
    assert_eq!((auth.from_domain.as_str(), auth.dkim_aligned), ("good.example", false));
    assert!(!auth.authenticates_author_domain("good.example"));
    let body = String::from_utf8(h.spool.body(&opened).await.unwrap().to_vec()).unwrap();
    assert!(body.contains("spf=pass") && body.contains("dmarc=pass"), "{body}");
    assert_eq!(h.queued().await, 1);
}

#[tokio::test]
async fn dmarc_quarantine_holds_the_message() {
    let h = Harness::start(|c| c.dmarc_enforcement = carepost_smtp::DmarcEnforcement::Quarantine).await;
    // Records can also be put straight into the verifier's caches.
    let caches = h.verifier.caches();
    let day = Duration::from_secs(86400);
    caches.add_txt("client.example", Spf::parse(b"v=spf1 ip4:127.0.0.1 -all").unwrap(), day);
    caches.add_txt("forged.example", Spf::parse(b"v=spf1 ip4:192.0.2.1 -all").unwrap(), day);
    caches.add_txt("_dmarc.forged.example", Dmarc::parse(b"v=DMARC1; p=reject").unwrap(), day);
    let (mut c, _) = Client::connect(h.addr("mx")).await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<bank@forged.example>").await;
    c.cmd("RCPT TO:<pat@clinic.example>").await;
    c.cmd("DATA").await;
    c.send(format!("{}.\r\n", message("bank@forged.example", "held")).as_bytes()).await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    assert_eq!(h.spool.store().queue_counts().await.unwrap(), vec![("quarantined".to_owned(), 1)]);
}

/// A message of about `size` bytes, in 78-byte lines.
fn padded(subject: &str, size: usize) -> String {
    let mut m = message("a@example.net", subject);
    while m.len() < size {
        m.push_str(&"z".repeat(76));
        m.push_str("\r\n");
    }
    m
}

/// Sends `message` with swaks, a real SMTP client, as DATA without SIZE; returns its transcript.
async fn swaks(addr: SocketAddr, message: String) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, message).unwrap();
    let file = file.display().to_string();
    let (code, transcript) = tokio::task::spawn_blocking(move || {
        let args =
            ["--from", "a@example.net", "--to", "pat@clinic.example", "--helo", "client.example", "--data", &file];
        carepost_testkit::swaks(addr, &args)
    })
    .await
    .unwrap();
    (code == 0, transcript)
}

/// Starts a message and sends a first BDAT chunk of 60,000 bytes: the server holds it (and
/// its memory) until the last chunk.
async fn start_holding(c: &mut Client) {
    let chunk = padded("held", 60_000);
    c.cmd("EHLO holder.example").await;
    c.cmd("MAIL FROM:<a@example.net>").await;
    c.cmd("RCPT TO:<pat@clinic.example>").await;
    c.send(format!("BDAT {}\r\n{chunk}", chunk.len()).as_bytes()).await;
    let reply = c.reply().await;
    assert!(reply.starts_with(&format!("250 2.0.0 {} octets", chunk.len())), "{reply}");
}

#[tokio::test]
async fn message_data_memory_is_capped_with_452_and_given_back() {
    // Room for a bit more than one message of the largest size.
    let h = Harness::start(|c| {
        c.max_message_size = 64 * 1024;
        c.max_data_memory = 100 * 1024;
    })
    .await;
    let (mut holder, _) = Client::connect(h.addr("mx")).await;
    start_holding(&mut holder).await;

    let (mut other, _) = Client::connect(h.addr("mx")).await;
    other.cmd("EHLO client.example").await;
    // A declared size that does not fit what is left: refused before any data is sent.
    let reply = other.cmd("MAIL FROM:<a@example.net> SIZE=40000").await;
    assert!(reply.starts_with("452 4.3.1"), "{reply}");
    // An undeclared body that outgrows what is left: read to its end, then refused.
    assert!(other.cmd("MAIL FROM:<a@example.net> SIZE=1000").await.starts_with("250"));
    assert!(other.cmd("RCPT TO:<pat@clinic.example>").await.starts_with("250"));
    assert!(other.cmd("DATA").await.starts_with("354"));
    other.send(format!("{}.\r\n", padded("outgrown", 50_000)).as_bytes()).await;
    let reply = other.reply().await;
    assert!(reply.starts_with("452 4.3.1 Error: insufficient system storage"), "{reply}");
    assert!(other.cmd("NOOP").await.starts_with("250"), "the session goes on");
    // A real client sees the same temporary refusal and keeps its message.
    let (sent, transcript) = swaks(h.addr("mx"), padded("swaks", 50_000)).await;
    assert!(!sent && transcript.contains("452 4.3.1"), "{transcript}");
    assert_eq!(h.queued().await, 0);

    // The held message completes: its memory is given back, and the others now go through.
    let done = holder.cmd("BDAT 0 LAST").await;
    assert!(done.starts_with("250 2.0.0 Ok: queued as"), "{done}");
    let (sent, transcript) = swaks(h.addr("mx"), padded("swaks", 50_000)).await;
    assert!(sent && transcript.contains("250 2.0.0 Ok: queued as"), "{transcript}");
    assert!(other.cmd("MAIL FROM:<a@example.net> SIZE=60000").await.starts_with("250"));
    assert!(other.cmd("RCPT TO:<pat@clinic.example>").await.starts_with("250"));
    assert!(other.cmd("DATA").await.starts_with("354"));
    other.send(format!("{}.\r\n", padded("after", 60_000)).as_bytes()).await;
    let reply = other.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    assert_eq!(h.queued().await, 3);

    // RSET gives the memory of an unfinished message back at once.
    start_holding(&mut holder).await;
    assert!(other.cmd("MAIL FROM:<a@example.net> SIZE=60000").await.starts_with("452 4.3.1"));
    assert!(holder.cmd("RSET").await.starts_with("250"));
    assert!(other.cmd("MAIL FROM:<a@example.net> SIZE=60000").await.starts_with("250"));
    assert!(other.cmd("RSET").await.starts_with("250"));

    // So does a session that ends in the middle of a message, once the server sees it go.
    start_holding(&mut holder).await;
    drop(holder);
    let mut freed = false;
    for _ in 0..200 {
        let reply = other.cmd("MAIL FROM:<a@example.net> SIZE=60000").await;
        if reply.starts_with("250") {
            freed = true;
            break;
        }
        assert!(reply.starts_with("452 4.3.1"), "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the memory of a dropped session comes back");
}
