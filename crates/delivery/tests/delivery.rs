//! Outbound delivery against real peers on loopback: Postfix's smtp-sink, small SMTP servers
//! with chosen behaviour, an HTTPS server for MTA-STS policies, and an injected DNS.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use carepost_delivery::dns::StaticDns;
use carepost_delivery::tls_policy::dane;
use carepost_delivery::tls_policy::mta_sts::StsFetchOptions;
use carepost_delivery::{DeliveryConfig, Interval, QueueRunner, RunnerEnv, SmartHostTls, decision};
use carepost_model::{Address, Envelope, Recipient, TenantId};
use carepost_spool::{Spool, Submission};
use carepost_store::audit_log::AuditRow;
use carepost_testkit::{Sink, eventually};
use support::{Behaviour, TestCa, TestHttps, TestSmtp};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(60);

fn config() -> DeliveryConfig {
    DeliveryConfig {
        retry_first: Interval::secs(1),
        retry_max: Interval::secs(1),
        connection_idle: Interval::secs(1),
        connect_timeout: Interval::secs(10),
        greeting_timeout: Interval::secs(10),
        command_timeout: Interval::secs(10),
        data_timeout: Interval::secs(20),
        ..DeliveryConfig::default()
    }
}

fn smart_host(port: u16) -> DeliveryConfig {
    let mut c = config();
    c.smart_host = format!("127.0.0.1:{port}");
    c.smart_host_tls = SmartHostTls::None;
    c
}

fn env(dns: StaticDns, mx_port: u16) -> RunnerEnv {
    RunnerEnv {
        dns: Arc::new(dns),
        hostname: "carepost.test".into(),
        mx_port,
        extra_roots: Vec::new(),
        sts_fetch: StsFetchOptions::default(),
        smart_host_password: None,
        shutdown_grace: Duration::from_secs(10),
        keys: None,
        signers: Default::default(),
        portal: None,
    }
}

fn loopback() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

async fn submit(
    spool: &Spool,
    from: Option<&str>,
    to: &[&str],
    body: &str,
    decisions: Vec<Option<decision::Decision>>,
) -> String {
    let envelope = Envelope {
        mail_from: from.map(|f| Address::parse(f).unwrap()),
        recipients: to.iter().map(|t| Recipient::new(Address::parse(t).unwrap())).collect(),
        dsn_ret: None,
        dsn_envid: Some("env-7".into()),
        require_tls: false,
        smtputf8: false,
        body: Default::default(),
    };
    let text = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: test\r\nMessage-ID: <{}@clinic.test>\r\n\r\n{body}\r\n",
        from.unwrap_or("x@clinic.test"),
        to[0],
        carepost_model::Id::new()
    );
    let mut s = Submission::new(TenantId::default(), envelope, support::submission_arrival(), Bytes::from(text));
    s.decisions = decisions;
    spool.accept(s).await.unwrap().to_string()
}

fn start(runner: &QueueRunner) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let r = runner.clone();
    (tx, tokio::spawn(async move { r.run(rx).await }))
}

async fn stop(handle: (watch::Sender<bool>, tokio::task::JoinHandle<()>)) {
    let _ = handle.0.send(true);
    tokio::time::timeout(WAIT, handle.1).await.expect("runner stops").unwrap();
}

async fn states(spool: &Spool, id: &str) -> Vec<String> {
    spool.store().recipients(id).await.unwrap().into_iter().map(|r| r.state).collect()
}

async fn wait_states(spool: &Spool, id: &str, want: &[&str]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = states(spool, id).await;
        if now == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "message {id}: states {now:?}, wanted {want:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn audit(spool: &Spool) -> Vec<AuditRow> {
    spool.store().audit_records_after(0, 100_000).await.unwrap()
}

async fn attempts_of(spool: &Spool, id: &str) -> Vec<serde_json::Value> {
    audit(spool)
        .await
        .into_iter()
        .filter(|r| r.action == "delivery.attempt" && r.target == format!("msg:{id}"))
        .map(|r| serde_json::from_str(&r.details).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_to_postfix_smtp_sink_through_the_smart_host() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), &[]);
    let spool = support::spool(dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            submit(&spool, Some("clinic@clinic.test"), &["patient@example.net"], &format!("MARKER-{i:03}-END"), vec![])
                .await,
        );
    }
    let runner = QueueRunner::new(spool.clone(), smart_host(sink.addr.port()), env(StaticDns::new(), 25)).unwrap();
    let handle = start(&runner);
    for id in &ids {
        wait_states(&spool, id, &["delivered"]).await;
    }
    stop(handle).await;
    let dumped = sink.all();
    for i in 0..40 {
        assert_eq!(dumped.matches(&format!("MARKER-{i:03}-END")).count(), 1, "message {i} reached the sink once");
    }
    let attempt = &attempts_of(&spool, &ids[0]).await[0];
    assert_eq!(attempt["outcome"], "delivered");
    assert_eq!(attempt["remote_ip"], "127.0.0.1");
    assert_eq!(attempt["verified"], "none");
    assert_eq!(attempt["reply"], "250");
    assert!(attempt["host"].as_str().unwrap().starts_with("h:"), "host names are hashed in the audit log");
    assert!(spool.audit().verify().await.unwrap().is_ok());
    assert_eq!(spool.store().messages_in_state("active", 10).await.unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_and_limited_per_destination() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestSmtp::start(Behaviour::default()).await;
    let spool = support::spool(dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            submit(&spool, Some("clinic@clinic.test"), &["a@example.net", "b@example.net"], &format!("m{i}"), vec![])
                .await,
        );
    }
    let mut c = smart_host(server.addr.port());
    c.max_connections_per_destination = 2;
    // Long enough that a slow machine never closes an idle connection between messages.
    c.connection_idle = Interval::secs(60);
    let runner = QueueRunner::new(spool.clone(), c, env(StaticDns::new(), 25)).unwrap();
    let handle = start(&runner);
    for id in &ids {
        wait_states(&spool, id, &["delivered", "delivered"]).await;
    }
    stop(handle).await;
    let received = server.received();
    assert_eq!(received.len(), 30, "one transaction per message, both recipients in it");
    assert!(received.iter().all(|r| r.rcpts.len() == 2));
    let connections = server.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&connections), "{connections} connections for 30 messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_then_2xx_is_delivered_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let behaviour = Behaviour::default();
    behaviour.data_replies.lock().unwrap().push_back("451 4.3.0 try again later".into());
    let server = TestSmtp::start(behaviour).await;
    let spool = support::spool(dir.path()).await;
    let id = submit(&spool, Some("clinic@clinic.test"), &["patient@example.net"], "ONCE-ONLY", vec![]).await;
    let runner = QueueRunner::new(spool.clone(), smart_host(server.addr.port()), env(StaticDns::new(), 25)).unwrap();
    let handle = start(&runner);
    wait_states(&spool, &id, &["delivered"]).await;
    stop(handle).await;
    let received = server.received();
    assert_eq!(received.iter().filter(|r| r.text().contains("ONCE-ONLY")).count(), 1);
    let outcomes: Vec<String> =
        attempts_of(&spool, &id).await.iter().map(|a| a["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, vec!["deferred", "delivered"]);
    let rows = spool.store().recipients(&id).await.unwrap();
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(rows[0].method.as_deref(), Some("smtp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_bounces_with_a_dsn_to_the_sender_and_suppresses_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut behaviour = Behaviour::default();
    behaviour.rcpt_replies.push(("gone@example.net".into(), "550 5.1.1 <gone@example.net>: user unknown".into()));
    let server = TestSmtp::start(behaviour).await;
    let spool = support::spool(dir.path()).await;
    let id = submit(&spool, Some("clinic@clinic.test"), &["gone@example.net", "here@example.net"], "BOUNCE-ME", vec![])
        .await;
    let runner = QueueRunner::new(spool.clone(), smart_host(server.addr.port()), env(StaticDns::new(), 25)).unwrap();
    let handle = start(&runner);
    wait_states(&spool, &id, &["bounced", "delivered"]).await;
    // The DSN goes out like any message (through the same smart host) with the null sender.
    eventually("the DSN reaching the sender's server", WAIT, async || {
        server.received().iter().any(|r| r.mail_from.starts_with("<>"))
    })
    .await;
    let dsn = server.received().into_iter().find(|r| r.mail_from.starts_with("<>")).unwrap();
    assert_eq!(dsn.rcpts, vec!["<clinic@clinic.test>".to_owned()]);
    let text = dsn.text();
    for needle in [
        "multipart/report; report-type=delivery-status",
        "Final-Recipient: rfc822; gone@example.net",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: user unknown",
        "Original-Envelope-Id: env-7",
        "Subject: test",
    ] {
        assert!(text.contains(needle), "DSN lacks {needle:?}:\n{text}");
    }
    assert!(!text.contains("here@example.net>:"), "only the failed recipient is reported");
    assert!(!text.contains("BOUNCE-ME"), "the body is not returned without RET=FULL");

    // The address is now suppressed: the next message to it is not even tried.
    let suppressed = carepost_delivery::suppression::list(&spool, &TenantId::default()).await.unwrap();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0].address, "gone@example.net");
    let before = server.commands.lock().unwrap().iter().filter(|c| c.contains("gone@example.net")).count();
    let second = submit(&spool, Some("clinic@clinic.test"), &["gone@example.net"], "AGAIN", vec![]).await;
    wait_states(&spool, &second, &["bounced"]).await;
    stop(handle).await;
    let after = server.commands.lock().unwrap().iter().filter(|c| c.contains("gone@example.net")).count();
    assert_eq!(before, after, "a suppressed address is never sent to");
    assert_eq!(attempts_of(&spool, &second).await[0]["outcome"], "suppressed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_is_never_bounced() {
    let dir = tempfile::tempdir().unwrap();
    let mut behaviour = Behaviour::default();
    behaviour.rcpt_replies.push(("nobody@example.net".into(), "550 5.1.1 no such user".into()));
    let server = TestSmtp::start(behaviour).await;
    let spool = support::spool(dir.path()).await;
    let id = submit(&spool, None, &["nobody@example.net"], "NULL-SENDER", vec![]).await;
    let runner = QueueRunner::new(spool.clone(), smart_host(server.addr.port()), env(StaticDns::new(), 25)).unwrap();
    let handle = start(&runner);
    wait_states(&spool, &id, &["bounced"]).await;
    stop(handle).await;
    assert_eq!(attempts_of(&spool, &id).await[0]["dsn"], "none: null sender");
    assert_eq!(spool.store().messages_in_state("active", 10).await.unwrap().len(), 0, "no DSN was queued");
}

fn partner_dns(domain: &str, mx: &str) -> StaticDns {
    let dns = StaticDns::new();
    dns.add_mx(domain, 10, mx).add_ip(mx, loopback());
    dns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_hiding_starttls_never_gets_a_tls_required_message_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // The server could do TLS, but STARTTLS is stripped from its EHLO (a downgrade).
    let server = TestSmtp::start(Behaviour::default()).await;
    let spool = support::spool(dir.path()).await;
    let dns = partner_dns("required.test", "mx.required.test");
    dns.add_mx("open.test", 10, "mx.open.test").add_ip("mx.open.test", loopback());
    let mut c = config();
    c.tls_required_domains = vec!["required.test".into()];
    let mut e = env(dns, server.addr.port());
    e.extra_roots = vec![ca.cert.clone()];
    let runner = QueueRunner::new(spool.clone(), c, e).unwrap();

    // A TLS-required domain: deferred, never sent.
    let required =
        submit(&spool, Some("clinic@clinic.test"), &["patient@required.test"], "SECRET-REQUIRED", vec![]).await;
    // Policy demands verified TLS for this recipient of an ordinary domain: held for the
    // protected fallback, never sent.
    let decided = submit(
        &spool,
        Some("clinic@clinic.test"),
        &["patient@open.test"],
        "SECRET-DECIDED",
        vec![Some(decision::verified_tls())],
    )
    .await;
    // Without a requirement the same peer gets mail (opportunistic TLS).
    let plain = submit(&spool, Some("clinic@clinic.test"), &["patient@open.test"], "ORDINARY", vec![]).await;
    let handle = start(&runner);
    wait_states(&spool, &decided, &["held"]).await;
    wait_states(&spool, &plain, &["delivered"]).await;
    eventually("a second attempt", WAIT, async || spool.store().recipients(&required).await.unwrap()[0].attempts >= 2)
        .await;
    stop(handle).await;
    let received = server.received();
    assert!(received.iter().all(|r| !r.text().contains("SECRET")), "a protected message was sent in clear");
    assert!(received.iter().any(|r| r.text().contains("ORDINARY")));
    let opened = spool.open(&required).await.unwrap();
    assert_eq!(opened.recipients[0].row.state, "queued");
    assert!(
        opened.recipients[0].last_reply.as_deref().unwrap().contains("STARTTLS"),
        "{:?}",
        opened.recipients[0].last_reply
    );
    let held = spool.open(&decided).await.unwrap();
    assert!(
        held.recipients[0].last_reply.as_deref().unwrap().contains("verified TLS"),
        "{:?}",
        held.recipients[0].last_reply
    );
    let attempt = &attempts_of(&spool, &decided).await[0];
    assert_eq!(attempt["outcome"], "held");
    assert_eq!(attempt["tls"], "none");
}

async fn sts_setup(cert_names: &[&str]) -> (tempfile::TempDir, Spool, TestSmtp, TestHttps, QueueRunner, TestCa) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let server = TestSmtp::start(Behaviour { tls: Some(ca.server_config(cert_names)), ..Behaviour::default() }).await;
    let policy = "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n".to_owned();
    let https = TestHttps::start(ca.server_config(&["mta-sts.sts.test"]), policy).await;
    let dns = partner_dns("sts.test", "mx.sts.test");
    // Unsigned zone: no DANE, so MTA-STS is the strongest policy.
    dns.set_insecure("sts.test").set_insecure("mx.sts.test");
    dns.add_txt("_mta-sts.sts.test", "v=STSv1; id=20261123T000000;");
    let spool = support::spool(dir.path()).await;
    let mut e = env(dns, server.addr.port());
    e.extra_roots = vec![ca.cert.clone()];
    e.sts_fetch = StsFetchOptions {
        extra_roots_der: Vec::new(),
        resolve: vec![("mta-sts.sts.test".into(), https.addr)],
        port: Some(https.addr.port()),
    };
    let runner = QueueRunner::new(spool.clone(), config(), e).unwrap();
    (dir, spool, server, https, runner, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mta_sts_enforce_refuses_a_certificate_for_the_wrong_name() {
    let (_dir, spool, server, https, runner, _ca) = sts_setup(&["wrong.example"]).await;
    let id = submit(&spool, Some("clinic@clinic.test"), &["patient@sts.test"], "STS-SECRET", vec![]).await;
    let handle = start(&runner);
    eventually("an attempt", WAIT, async || spool.store().recipients(&id).await.unwrap()[0].attempts >= 1).await;
    stop(handle).await;
    assert!(https.requests.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the policy was fetched");
    assert!(server.saw_command("STARTTLS"));
    assert!(!server.saw_command("MAIL FROM"), "nothing was sent after the failed handshake");
    assert!(server.received().is_empty());
    let opened = spool.open(&id).await.unwrap();
    assert_eq!(opened.recipients[0].row.state, "queued");
    let reason = opened.recipients[0].last_reply.clone().unwrap();
    assert!(reason.contains("MTA-STS") && reason.to_lowercase().contains("certificate"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mta_sts_enforce_delivers_to_a_verified_server() {
    let (_dir, spool, server, _https, runner, _ca) = sts_setup(&["mx.sts.test"]).await;
    let id = submit(&spool, Some("clinic@clinic.test"), &["patient@sts.test"], "STS-OK", vec![]).await;
    let handle = start(&runner);
    wait_states(&spool, &id, &["delivered"]).await;
    stop(handle).await;
    assert!(server.received()[0].tls);
    let attempt = &attempts_of(&spool, &id).await[0];
    assert_eq!(attempt["verified"], "mta-sts");
    assert!(attempt["tls"].as_str().unwrap().starts_with("TLSv1."), "{attempt}");
    assert!(!attempt["cipher"].as_str().unwrap().is_empty());
    assert_eq!(spool.store().recipients(&id).await.unwrap()[0].method.as_deref(), Some("tls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_mta_sts_policy_outlives_a_restart_and_its_policy_host() {
    let (_dir, spool, _server, https, runner, ca) = sts_setup(&["mx.sts.test"]).await;
    let first = submit(&spool, Some("clinic@clinic.test"), &["patient@sts.test"], "STS-FIRST", vec![]).await;
    let handle = start(&runner);
    wait_states(&spool, &first, &["delivered"]).await;
    stop(handle).await;
    assert_eq!(attempts_of(&spool, &first).await[0]["verified"], "mta-sts");
    assert_eq!(https.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A restart, and the policy host is gone (an attacker blocking it, say); the MX now
    // shows a certificate for another name. Only the remembered policy (max_age one day)
    // stands between the next message and a downgrade to opportunistic TLS.
    let dead = https.addr;
    drop((runner, https));
    let impostor =
        TestSmtp::start(Behaviour { tls: Some(ca.server_config(&["wrong.example"])), ..Behaviour::default() }).await;
    let dns = partner_dns("sts.test", "mx.sts.test");
    dns.set_insecure("sts.test").set_insecure("mx.sts.test");
    dns.add_txt("_mta-sts.sts.test", "v=STSv1; id=20261123T000000;");
    let mut e = env(dns, impostor.addr.port());
    e.extra_roots = vec![ca.cert.clone()];
    e.sts_fetch = StsFetchOptions {
        extra_roots_der: Vec::new(),
        resolve: vec![("mta-sts.sts.test".into(), dead)],
        port: Some(dead.port()),
    };
    let restarted = QueueRunner::new(spool.clone(), config(), e).unwrap();
    let id = submit(&spool, Some("clinic@clinic.test"), &["patient@sts.test"], "STS-SECRET-2", vec![]).await;
    let handle = start(&restarted);
    eventually("an attempt", WAIT, async || spool.store().recipients(&id).await.unwrap()[0].attempts >= 1).await;
    stop(handle).await;
    assert!(!impostor.saw_command("MAIL FROM"), "nothing was sent to the host the policy does not vouch for");
    assert!(impostor.received().is_empty());
    let opened = spool.open(&id).await.unwrap();
    assert_eq!(opened.recipients[0].row.state, "queued");
    let reason = opened.recipients[0].last_reply.clone().unwrap();
    assert!(reason.contains("MTA-STS"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_matches_the_tlsa_record_or_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, tls) = support::self_signed(&["mx.dane.test"]);
    let server = TestSmtp::start(Behaviour { tls: Some(tls), ..Behaviour::default() }).await;
    let dns = partner_dns("dane.test", "mx.dane.test");
    dns.add_tlsa(&format!("_{}._tcp.mx.dane.test", server.addr.port()), dane::record_for(&cert, 3, 1, 1).unwrap());
    let (other, _) = support::self_signed(&["mx.dane.test"]);
    dns.add_mx("wrongdane.test", 10, "mx.wrongdane.test").add_ip("mx.wrongdane.test", loopback());
    dns.add_tlsa(
        &format!("_{}._tcp.mx.wrongdane.test", server.addr.port()),
        dane::record_for(&other, 3, 1, 1).unwrap(),
    );
    dns.add_txt("_smtp._tls.wrongdane.test", "v=TLSRPTv1; rua=mailto:tls@reports.test");
    let spool = support::spool(dir.path()).await;
    let runner = QueueRunner::new(spool.clone(), config(), env(dns, server.addr.port())).unwrap();
    let good = submit(&spool, Some("clinic@clinic.test"), &["patient@dane.test"], "DANE-OK", vec![]).await;
    let bad = submit(&spool, Some("clinic@clinic.test"), &["patient@wrongdane.test"], "DANE-SECRET", vec![]).await;
    let handle = start(&runner);
    wait_states(&spool, &good, &["delivered"]).await;
    eventually("an attempt", WAIT, async || spool.store().recipients(&bad).await.unwrap()[0].attempts >= 1).await;
    stop(handle).await;
    assert_eq!(attempts_of(&spool, &good).await[0]["verified"], "dane");
    assert!(server.received().iter().all(|r| !r.text().contains("DANE-SECRET")));
    assert_eq!(spool.store().recipients(&bad).await.unwrap()[0].state, "queued");

    // Once the day is over, the domain that asked for TLS reports gets one (RFC 8460).
    let sent = runner.send_tls_reports(carepost_model::Timestamp::now().plus_seconds(86_400)).await;
    assert_eq!(sent, 1, "only wrongdane.test publishes _smtp._tls");
    let mut report = None;
    for row in spool.store().messages_in_state("active", 100).await.unwrap() {
        let opened = spool.open(&row.id).await.unwrap();
        if opened.recipients[0].recipient.address.as_str() == "tls@reports.test" {
            report = Some(spool.body(&opened).await.unwrap());
        }
    }
    let report = report.expect("a TLS report queued to the rua address");
    let parsed = mail_parser::MessageParser::default().parse(&report[..]).unwrap();
    assert!(parsed.subject().unwrap().starts_with("Report Domain: wrongdane.test Submitter: carepost.test"));
    let gz = parsed.attachments().next().expect("the gzipped report").contents().to_vec();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut mail_auth::flate2::read::GzDecoder::new(&gz[..]), &mut json).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let policy = &json["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "tlsa");
    assert_eq!(policy["policy"]["policy-domain"], "wrongdane.test");
    assert!(policy["summary"]["total-failure-session-count"].as_u64().unwrap() >= 1);
    assert_eq!(policy["failure-details"][0]["result-type"], "tlsa-invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_that_would_loop_back_to_this_server_waits() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestSmtp::start(Behaviour::default()).await;
    let spool = support::spool(dir.path()).await;
    let mut e = env(StaticDns::new(), 25);
    // The next hop greets with this server's own name.
    e.hostname = "test.sink".into();
    let runner = QueueRunner::new(spool.clone(), smart_host(server.addr.port()), e).unwrap();
    let id = submit(&spool, Some("clinic@clinic.test"), &["patient@example.net"], "LOOP", vec![]).await;
    let handle = start(&runner);
    eventually("an attempt", WAIT, async || spool.store().recipients(&id).await.unwrap()[0].attempts >= 1).await;
    stop(handle).await;
    assert!(!server.saw_command("MAIL FROM"));
    let reason = spool.open(&id).await.unwrap().recipients[0].last_reply.clone().unwrap();
    assert!(reason.contains("4.4.6") && reason.contains("loops back"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_mx_bounces_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSmtp::start(Behaviour::default()).await;
    let dns = StaticDns::new();
    dns.add_mx("nomail.test", 0, ".");
    // The DSN to the sender's domain goes to the test server.
    dns.add_mx("clinic.test", 10, "mx.clinic.test").add_ip("mx.clinic.test", loopback());
    let spool = support::spool(dir.path()).await;
    let runner = QueueRunner::new(spool.clone(), config(), env(dns, sink.addr.port())).unwrap();
    let id = submit(&spool, Some("clinic@clinic.test"), &["someone@nomail.test"], "NULLMX", vec![]).await;
    let handle = start(&runner);
    wait_states(&spool, &id, &["bounced"]).await;
    eventually("the DSN", WAIT, async || sink.received().iter().any(|r| r.text().contains("Status: 5.1.10"))).await;
    stop(handle).await;
    assert_eq!(spool.store().recipients(&id).await.unwrap()[0].attempts, 1, "no retry");
    assert!(sink.received().iter().all(|r| !r.text().contains("NULLMX\r\n") || r.mail_from.starts_with("<>")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_notice_is_sent_once_while_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let mut behaviour = Behaviour::default();
    behaviour.rcpt_replies.push(("slow@example.net".into(), "451 4.2.1 mailbox busy".into()));
    let server = TestSmtp::start(behaviour).await;
    let spool = support::spool(dir.path()).await;
    let mut c = smart_host(server.addr.port());
    c.delay_notice_after = Interval::secs(1);
    let runner = QueueRunner::new(spool.clone(), c, env(StaticDns::new(), 25)).unwrap();
    let id = submit(&spool, Some("clinic@clinic.test"), &["slow@example.net"], "DELAYED", vec![]).await;
    let handle = start(&runner);
    eventually("a delay notice", WAIT, async || server.received().iter().any(|r| r.text().contains("Action: delayed")))
        .await;
    eventually("the retries", WAIT, async || spool.store().recipients(&id).await.unwrap()[0].attempts >= 4).await;
    stop(handle).await;
    let notices: Vec<_> = server.received().into_iter().filter(|r| r.text().contains("Action: delayed")).collect();
    assert_eq!(notices.len(), 1, "one delay notice per recipient");
    let text = notices[0].text();
    assert!(
        text.contains("Will-Retry-Until:") && text.contains("Diagnostic-Code: smtp; 451 4.2.1 mailbox busy"),
        "{text}"
    );
    assert_eq!(spool.store().recipients(&id).await.unwrap()[0].state, "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let behaviour = Behaviour { data_delay: Duration::from_millis(150), ..Behaviour::default() };
    let server = TestSmtp::start(behaviour).await;
    let spool = support::spool(dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            submit(
                &spool,
                Some("clinic@clinic.test"),
                &["patient@example.net"],
                &format!("RESTART-{i:02}-END"),
                vec![],
            )
            .await,
        );
    }
    let mut c = smart_host(server.addr.port());
    c.max_connections_per_destination = 3;
    let runner = QueueRunner::new(spool.clone(), c.clone(), env(StaticDns::new(), 25)).unwrap();
    let (_tx, task) = start(&runner);
    eventually("some deliveries", WAIT, async || server.received().len() >= 3).await;
    // A crash: the runner and its deliveries vanish without any clean-up.
    task.abort();
    drop(runner);
    let counts = spool.store().queue_counts().await.unwrap();
    assert!(counts.iter().any(|(s, n)| s == "inflight" && *n > 0), "deliveries were in flight: {counts:?}");

    let runner = QueueRunner::new(spool.clone(), c, env(StaticDns::new(), 25)).unwrap();
    let handle = start(&runner);
    for id in &ids {
        wait_states(&spool, id, &["delivered"]).await;
    }
    stop(handle).await;
    let all: String = server.received().iter().map(|r| r.text()).collect();
    for i in 0..30 {
        assert!(all.contains(&format!("RESTART-{i:02}-END")), "message {i} was lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunking_without_pipelining_and_dot_lines_arrive_intact() {
    let dir = tempfile::tempdir().unwrap();
    let spool = support::spool(dir.path()).await;
    let body = "line one\r\n.leading dot\r\n..two dots\r\n.";
    for (chunking, pipelining) in [(true, true), (true, false), (false, false)] {
        let server = TestSmtp::start(Behaviour { chunking, pipelining, ..Behaviour::default() }).await;
        let id = submit(&spool, Some("clinic@clinic.test"), &["a@example.net", "b@example.net"], body, vec![]).await;
        let runner =
            QueueRunner::new(spool.clone(), smart_host(server.addr.port()), env(StaticDns::new(), 25)).unwrap();
        let handle = start(&runner);
        wait_states(&spool, &id, &["delivered", "delivered"]).await;
        stop(handle).await;
        assert_eq!(server.saw_command("BDAT"), chunking);
        let received = server.received();
        assert_eq!(received.len(), 1);
        assert!(
            received[0].text().contains("line one\r\n.leading dot\r\n..two dots\r\n.\r\n"),
            "{chunking} {pipelining}: {:?}",
            received[0].text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_host_with_required_tls_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let server = TestSmtp::start(Behaviour {
        tls: Some(ca.server_config(&["relay.internal.test"])),
        auth: Some(("carepost".into(), "s3cret".into())),
        ..Behaviour::default()
    })
    .await;
    let spool = support::spool(dir.path()).await;
    let dns = StaticDns::new();
    dns.add_ip("relay.internal.test", loopback());
    let mut c = config();
    c.smart_host = format!("relay.internal.test:{}", server.addr.port());
    c.smart_host_tls = SmartHostTls::Required;
    c.smart_host_username = "carepost".into();
    let mut e = env(dns.clone(), 25);
    e.extra_roots = vec![ca.cert.clone()];
    e.smart_host_password = Some("s3cret".into());
    let runner = QueueRunner::new(spool.clone(), c.clone(), e).unwrap();
    let id = submit(
        &spool,
        Some("clinic@clinic.test"),
        &["patient@example.net"],
        "VIA-RELAY",
        vec![Some(decision::verified_tls())],
    )
    .await;
    let handle = start(&runner);
    wait_states(&spool, &id, &["delivered"]).await;
    stop(handle).await;
    assert!(server.received()[0].tls);
    assert_eq!(attempts_of(&spool, &id).await[0]["verified"], "pkix");
    // AUTH happened inside TLS only.
    let commands = server.commands.lock().unwrap().clone();
    let auth = commands.iter().position(|c| c.starts_with("AUTH")).unwrap();
    let starttls = commands.iter().position(|c| c == "STARTTLS").unwrap();
    assert!(starttls < auth);

    // A wrong password: nothing is sent, the message waits.
    let mut e = env(dns, 25);
    e.extra_roots = vec![ca.cert.clone()];
    e.smart_host_password = Some("wrong".into());
    let runner = QueueRunner::new(spool.clone(), c, e).unwrap();
    let id = submit(&spool, Some("clinic@clinic.test"), &["patient@example.net"], "NOT-SENT", vec![]).await;
    let handle = start(&runner);
    eventually("an attempt", WAIT, async || spool.store().recipients(&id).await.unwrap()[0].attempts >= 1).await;
    stop(handle).await;
    assert!(server.received().iter().all(|r| !r.text().contains("NOT-SENT")));
    let reason = spool.open(&id).await.unwrap().recipients[0].last_reply.clone().unwrap();
    assert!(reason.contains("AUTH") && reason.contains("535"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiretls_goes_only_to_a_verified_server_that_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let verified =
        TestSmtp::start(Behaviour { tls: Some(ca.server_config(&["mx.secure.test"])), ..Behaviour::default() }).await;
    let spool = support::spool(dir.path()).await;
    let dns = partner_dns("secure.test", "mx.secure.test");
    let mut e = env(dns, verified.addr.port());
    e.extra_roots = vec![ca.cert.clone()];
    let runner = QueueRunner::new(spool.clone(), config(), e).unwrap();
    let mut envelope_ids = Vec::new();
    for rcpt in ["patient@secure.test"] {
        let text: &[u8] = b"From: <clinic@clinic.test>\r\nSubject: x\r\n\r\nREQUIRETLS-BODY\r\n";
        envelope_ids.push(support::queue_to(&spool, "clinic@clinic.test", rcpt, true, text).await);
    }
    let handle = start(&runner);
    wait_states(&spool, &envelope_ids[0], &["delivered"]).await;
    stop(handle).await;
    assert!(
        verified
            .commands
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("MAIL FROM:<clinic@clinic.test>") && c.contains("REQUIRETLS"))
    );

    // The same message to a server without STARTTLS: returned, never sent.
    let plain = TestSmtp::start(Behaviour::default()).await;
    let dns = partner_dns("plain.test", "mx.plain.test");
    dns.add_mx("clinic.test", 10, "mx.plain.test");
    let runner = QueueRunner::new(spool.clone(), config(), env(dns, plain.addr.port())).unwrap();
    let text: &[u8] = b"From: <clinic@clinic.test>\r\nSubject: x\r\n\r\nREQUIRETLS-SECRET\r\n";
    let id = support::queue_to(&spool, "clinic@clinic.test", "patient@plain.test", true, text).await;
    let handle = start(&runner);
    wait_states(&spool, &id, &["bounced"]).await;
    stop(handle).await;
    assert!(plain.received().iter().all(|r| !r.text().contains("REQUIRETLS-SECRET") || r.mail_from.starts_with("<>")));
    let reason = spool.open(&id).await.unwrap().recipients[0].last_reply.clone().unwrap();
    assert!(reason.contains("5.7.10") && reason.contains("REQUIRETLS"), "{reason}");
}
