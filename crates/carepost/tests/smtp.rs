//! SMTP ingress end to end: the real binary on loopback ports, talked to by real clients
//! (swaks, Python's smtplib, openssl s_client) and by raw TCP for what no polite client sends.
//! Every peer must be installed (scripts/test.sh does it): a missing one fails the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use carepost::install::{Access, Installation};
use carepost_testkit::cli::{self, carepost, carepost_with_stdin};
use carepost_testkit::dns::TestDns;
use carepost_testkit::run_peer as peer;
use carepost_testkit::{Server, swaks};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const PASSWORD: &str = "correct horse battery staple";

/// Listener configuration for a test server; `extra` goes into `[smtp]`.
fn smtp_config(dns: &TestDns, extra: &str) -> String {
    format!(
        "[smtp]\nmx_listen = \"127.0.0.1:0\"\nsubmission_listen = \"127.0.0.1:0\"\nsubmissions_listen = \"127.0.0.1:0\"\n\
         local_domains = [\"clinic.example\"]\ndns_servers = [\"{}\"]\n{extra}\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n\
         [delivery]\nenabled = false\n",
        dns.addr()
    )
}

/// A staff account with [`PASSWORD`].
fn add_user(dir: &Path, login: &str) {
    cli::add_user(BIN, dir, login, &[], PASSWORD);
}

fn queue_id(transcript: &str) -> String {
    let at = transcript.find("queued as ").unwrap_or_else(|| panic!("no queue id in {transcript}"));
    transcript[at + 10..].split_whitespace().next().unwrap().trim_end_matches('\'').to_owned()
}

/// A raw client for what real clients never send.
struct Raw {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> (Raw, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut raw = Raw { stream, reader };
        let greeting = raw.reply();
        (raw, greeting)
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

#[test]
fn swaks_plain_starttls_auth_and_port_465() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, ""));
    add_user(tmp.path(), "jane@clinic.example");

    // Plain SMTP to the MX for a local domain.
    let (code, out) = swaks(
        server.addr("mx"),
        &["--from", "lab@example.net", "--to", "pat@clinic.example", "--ehlo", "lab.example.net"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
    // ... but not for anyone else's domain.
    let (code, out) = swaks(server.addr("mx"), &["--from", "lab@example.net", "--to", "pat@example.org"]);
    assert_ne!(code, 0);
    assert!(out.contains("554 5.7.1 <pat@example.org>: Relay access denied"), "{out}");

    // Submission: STARTTLS, then AUTH; the sender must be the account's.
    let auth = ["--auth", "PLAIN", "--auth-user", "jane@clinic.example", "--auth-password", PASSWORD];
    let mut args = vec!["-tls", "--from", "jane@clinic.example", "--to", "patient@example.org"];
    args.extend_from_slice(&auth);
    let (code, out) = swaks(server.addr("submission"), &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("235 2.7.0 Authentication successful") && out.contains("queued as "), "{out}");
    let mut args = vec!["-tls", "--from", "boss@clinic.example", "--to", "patient@example.org"];
    args.extend_from_slice(&auth);
    let (code, out) = swaks(server.addr("submission"), &args);
    assert_ne!(code, 0);
    assert!(out.contains("553 5.7.1") && out.contains("not owned by user"), "{out}");
    // AUTH LOGIN over implicit TLS on the port-465 listener.
    let (code, out) = swaks(
        server.addr("submissions"),
        &[
            "-tlsc",
            "--from",
            "jane@clinic.example",
            "--to",
            "patient@example.org",
            "--auth",
            "LOGIN",
            "--auth-user",
            "jane@clinic.example",
            "--auth-password",
            PASSWORD,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("queued as "), "{out}");
    // AUTH in clear is refused.
    let (code, out) = swaks(
        server.addr("submission"),
        &[
            "--from",
            "jane@clinic.example",
            "--to",
            "patient@example.org",
            "--auth",
            "PLAIN",
            "--auth-user",
            "jane@clinic.example",
            "--auth-password",
            PASSWORD,
            "--auth-hide-password",
        ],
    );
    assert_ne!(code, 0);
    assert!(out.contains("538 5.7.11") || out.contains("Host did not advertise authentication"), "{out}");
    assert!(server.stop().success());
}

#[test]
fn python_smtplib_and_openssl_s_client() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, ""));
    add_user(tmp.path(), "jane@clinic.example");
    let script = r#"
import smtplib, ssl, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("laptop.clinic.example")
s.starttls(context=ctx)
s.ehlo("laptop.clinic.example")
print("AUTH" if s.has_extn("auth") else "NOAUTH", "REQUIRETLS" if s.has_extn("requiretls") else "")
s.login(user, password)
s.mail(user, ["REQUIRETLS"])
s.rcpt("patient@example.org", ["NOTIFY=SUCCESS,FAILURE"])
code, reply = s.data(b"From: <" + user.encode() + b">\r\nSubject: results\r\n\r\nSee the portal.\r\n")
print(code, reply.decode())
s.quit()
"#;
    let port = server.addr("submission").port().to_string();
    let (code, out, err) = peer("python3", &["-c", script, &port, "jane@clinic.example", PASSWORD], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("AUTH REQUIRETLS"), "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
    let id = queue_id(&out);

    // openssl s_client speaks STARTTLS; carepost negotiates TLS 1.3, or 1.2 with ECDHE and AEAD.
    let connect = format!("127.0.0.1:{port}");
    let (code, out, err) = peer(
        "openssl",
        &["s_client", "-starttls", "smtp", "-connect", &connect, "-crlf", "-brief", "-ign_eof"],
        "EHLO tester\nQUIT\n",
    );
    let all = format!("{out}{err}");
    assert_eq!(code, 0, "{all}");
    assert!(all.contains("Protocol version: TLSv1.3"), "{all}");
    assert!(all.contains("AUTH PLAIN LOGIN") && all.contains("221 2.0.0"), "{all}");
    let (code, out, err) = peer(
        "openssl",
        &["s_client", "-starttls", "smtp", "-connect", &connect, "-crlf", "-brief", "-ign_eof", "-tls1_2"],
        "QUIT\n",
    );
    let all = format!("{out}{err}");
    assert_eq!(code, 0, "{all}");
    assert!(all.contains("Protocol version: TLSv1.2") && all.contains("ECDHE") && all.contains("GCM"), "{all}");
    let (code, out, err) = peer(
        "openssl",
        &["s_client", "-connect", &server.addr("submissions").to_string(), "-crlf", "-brief", "-ign_eof"],
        "QUIT\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(format!("{out}{err}").contains("220 localhost ESMTP carepost"), "{out}{err}");
    assert!(server.stop().success());

    // The message is in the queue with REQUIRETLS and the DSN request kept.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let install =
            Installation::open(carepost::Config::load(&tmp.path().join("carepost.toml")).unwrap(), Access::Exclusive)
                .await
                .unwrap();
        let spool = carepost_spool::Spool::new(
            install.store.clone(),
            install.ring.clone(),
            install.blobs.clone(),
            install.audit.clone(),
        );
        let opened = spool.open(&id).await.unwrap();
        assert!(opened.envelope.require_tls);
        assert_eq!(opened.arrival.source.as_str(), "submission");
        assert_eq!(opened.arrival.tls.as_ref().map(|t| t.version.as_str()), Some("TLSv1.3"));
        let notify = opened.recipients[0].recipient.notify.unwrap();
        assert!(notify.success && notify.failure && !notify.delay);
        let body = String::from_utf8(spool.body(&opened).await.unwrap().to_vec()).unwrap();
        assert!(
            body.starts_with("Received: from laptop.clinic.example ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher TLS_"),
            "{body}"
        );
        assert!(body.contains("with ESMTPSA;"), "{body}");
        install.close().await.unwrap();
    });
}

#[test]
fn smuggling_payloads_and_oversize_messages_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, "max_message_size = 2000"));
    let mx = server.addr("mx");
    let smuggled = "MAIL FROM:<ceo@clinic.example>\r\nRCPT TO:<pat@clinic.example>\r\nDATA\r\n\r\nsmuggled\r\n";
    for payload in ["\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r"] {
        for bdat in [false, true] {
            let (mut c, _) = Raw::connect(mx);
            c.cmd("EHLO attacker.example");
            assert!(c.cmd("MAIL FROM:<a@example.net>").starts_with("250"));
            assert!(c.cmd("RCPT TO:<pat@clinic.example>").starts_with("250"));
            let content = format!("Subject: x\r\n\r\nhello{payload}{smuggled}");
            if bdat {
                c.send(format!("BDAT {} LAST\r\n{content}", content.len()).as_bytes());
            } else {
                assert!(c.cmd("DATA").starts_with("354"));
                c.send(format!("{content}.\r\n").as_bytes());
            }
            let reply = c.reply();
            assert!(reply.starts_with("550 5.5.2 Error: bare"), "{payload:?} bdat={bdat}: {reply}");
            assert!(c.closed(), "{payload:?}: the session ends");
        }
    }
    // Too big: refused on MAIL FROM when announced, and at the end of DATA when not.
    let (mut c, _) = Raw::connect(mx);
    assert!(c.cmd("EHLO client.example").contains("SIZE 2000"));
    assert!(c.cmd("MAIL FROM:<a@example.net> SIZE=1000000").starts_with("552 5.3.4"));
    c.cmd("MAIL FROM:<a@example.net>");
    c.cmd("RCPT TO:<pat@clinic.example>");
    c.cmd("DATA");
    c.send(
        format!("Subject: big\r\n\r\n{}.\r\n", "0123456789012345678901234567890123456789\r\n".repeat(200)).as_bytes(),
    );
    assert!(c.reply().starts_with("552 5.3.4"));
    assert!(c.cmd("QUIT").starts_with("221"));
    assert!(server.stop().success());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let queued = rt.block_on(async {
        let install =
            Installation::open(carepost::Config::load(&tmp.path().join("carepost.toml")).unwrap(), Access::Shared)
                .await
                .unwrap();
        let n = install.store.queue_counts().await.unwrap().iter().map(|(_, n)| *n).sum::<i64>();
        install.store.close().await;
        n
    });
    assert_eq!(queued, 0, "nothing smuggled or oversize was queued");
}

#[test]
fn repeated_bad_passwords_block_the_address_until_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, "auth_failures_per_ip = 3"));
    add_user(tmp.path(), "jane@clinic.example");
    let sub = server.addr("submission");
    let wrong = [
        "-tls",
        "--from",
        "jane@clinic.example",
        "--to",
        "p@example.org",
        "--auth",
        "PLAIN",
        "--auth-user",
        "jane@clinic.example",
        "--auth-password",
        "guess",
    ];
    for _ in 0..2 {
        let (code, out) = swaks(sub, &wrong);
        assert_ne!(code, 0);
        assert!(out.contains("535 5.7.8"), "{out}");
    }
    let (_, out) = swaks(sub, &wrong);
    assert!(out.contains("535 5.7.8") && out.contains("421 4.7.0"), "the third failure blocks: {out}");
    // Every listener now refuses this address, even with the right password.
    let (_, greeting) = Raw::connect(server.addr("mx"));
    assert!(greeting.starts_with("554 5.7.1") && greeting.contains("blocked"), "{greeting}");
    let (code, out, err) = carepost(BIN, tmp.path(), &["block", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("127.0.0.1  until=") && out.contains("by=smtp"), "{out}");
    let (code, _, err) = carepost(BIN, tmp.path(), &["block", "remove", "127.0.0.1"]);
    assert_eq!(code, 0, "{err}");
    // The running server re-reads blocks every few seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, greeting) = Raw::connect(server.addr("mx"));
        if greeting.starts_with("220") {
            break;
        }
        assert!(Instant::now() < deadline, "still blocked: {greeting}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, out) = swaks(
        sub,
        &[
            "-tls",
            "--from",
            "jane@clinic.example",
            "--to",
            "p@example.org",
            "--auth",
            "PLAIN",
            "--auth-user",
            "jane@clinic.example",
            "--auth-password",
            PASSWORD,
        ],
    );
    assert_eq!(code, 0, "{out}");
    // A manual block, then the audit trail of all of it, with the source address.
    let (code, out, _) =
        carepost(BIN, tmp.path(), &["block", "add", "192.0.2.0/24", "--for", "1h", "--reason", "scanner"]);
    assert_eq!(code, 0);
    assert!(out.contains("192.0.2.0/24 blocked until"), "{out}");
    assert!(server.stop().success());
    let (_, export, _) = carepost(BIN, tmp.path(), &["audit", "export"]);
    let lines: Vec<&str> = export.lines().collect();
    let has = |action: &str, outcome: &str| {
        lines.iter().any(|l| {
            l.contains(&format!("\"action\":\"{action}\""))
                && l.contains(&format!("\"outcome\":\"{outcome}\""))
                && l.contains("127.0.0.1")
        })
    };
    assert!(has("smtp.auth", "failure") && has("smtp.auth", "success") && has("smtp.block", "denied"), "{export}");
    assert!(export.contains("\"action\":\"user.add\"") && export.contains("\"action\":\"smtp.unblock\""), "{export}");
    assert!(!export.contains("jane@clinic.example"), "no login names in the audit log");
    let (code, out, _) = carepost(BIN, tmp.path(), &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_message_acknowledged_before_kill_9_is_in_the_queue_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, "relay_networks = [\"127.0.0.0/8\"]"));
    let marker = format!("KILL9-MARKER-{}", std::process::id());
    let (code, out) = swaks(
        server.addr("mx"),
        &[
            "--from",
            "lab@clinic.example",
            "--to",
            "patient@example.org",
            "--header",
            &format!("Subject: {marker}"),
            "--body",
            &marker,
        ],
    );
    assert_eq!(code, 0, "{out}");
    let id = queue_id(&out);
    server.kill9();

    let server =
        Server::start_with(Path::new(BIN), tmp.path(), &tmp.path().join("carepost.toml"), &tmp.path().join("data"));
    assert!(server.stop().success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let install =
            Installation::open(carepost::Config::load(&tmp.path().join("carepost.toml")).unwrap(), Access::Exclusive)
                .await
                .unwrap();
        let spool = carepost_spool::Spool::new(
            install.store.clone(),
            install.ring.clone(),
            install.blobs.clone(),
            install.audit.clone(),
        );
        let opened = spool.open(&id).await.expect("the acknowledged message survived kill -9");
        assert_eq!(opened.recipients[0].recipient.address.as_str(), "patient@example.org");
        assert_eq!(opened.recipients[0].row.state, "queued");
        let body = String::from_utf8(spool.body(&opened).await.unwrap().to_vec()).unwrap();
        assert!(body.contains(&marker));
        install.close().await.unwrap();
    });
    assert!(
        carepost_testkit::files_containing(&tmp.path().join("data"), marker.as_bytes()).is_empty(),
        "sealed at rest"
    );
}

#[test]
fn user_commands_manage_accounts_and_app_passwords() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, ""));
    add_user(tmp.path(), "jane@clinic.example");
    let (code, _, err) =
        carepost_with_stdin(BIN, tmp.path(), &["user", "add", "JANE@clinic.example", "--password-stdin"], "x\n");
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, out, _) = carepost(BIN, tmp.path(), &["user", "app-password", "add", "jane@clinic.example", "phone"]);
    assert_eq!(code, 0);
    let app = out.lines().last().unwrap().trim().to_owned();
    let sub = server.addr("submissions");
    let send = |password: &str| {
        swaks(
            sub,
            &[
                "-tlsc",
                "--from",
                "jane@clinic.example",
                "--to",
                "p@example.org",
                "--auth",
                "PLAIN",
                "--auth-user",
                "jane@clinic.example",
                "--auth-password",
                password,
            ],
        )
    };
    assert_eq!(send(&app).0, 0, "the app password signs in");
    let (code, _, err) = carepost_with_stdin(
        BIN,
        tmp.path(),
        &["user", "passwd", "jane@clinic.example", "--password-stdin"],
        "a new passphrase\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_ne!(send(PASSWORD).0, 0, "the old password no longer works");
    assert_eq!(send("a new passphrase").0, 0);
    let (code, _, _) = carepost(BIN, tmp.path(), &["user", "app-password", "revoke", "jane@clinic.example", "phone"]);
    assert_eq!(code, 0);
    assert_ne!(send(&app).0, 0, "a revoked app password no longer works");
    let (code, _, _) = carepost(BIN, tmp.path(), &["user", "disable", "jane@clinic.example"]);
    assert_eq!(code, 0);
    assert_ne!(send("a new passphrase").0, 0, "a disabled account cannot sign in");
    let (code, out, _) = carepost(BIN, tmp.path(), &["user", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("jane@clinic.example") && out.contains("disabled") && out.contains("sends-as=jane@clinic.example"),
        "{out}"
    );
    assert!(server.stop().success());
}

/// Submission with AUTH PLAIN over STARTTLS from `local` (a loopback address).
fn submit_from(addr: SocketAddr, local: &str, login: &str, password: &str) -> (i32, String) {
    let from = if login.contains('@') { login } else { "nobody@clinic.example" };
    swaks(
        addr,
        &[
            "-tls",
            "--local-interface",
            local,
            "--from",
            from,
            "--to",
            "p@example.org",
            "--auth",
            "PLAIN",
            "--auth-user",
            login,
            "--auth-password",
            password,
        ],
    )
}

/// The AUTH answer in a swaks transcript (`535 5.7.8 ...` or `235 ...`), without the arrow.
/// Whether the server answered with `code` anywhere in a swaks transcript. Only reply lines
/// count: the transcript's "Trying 127.0.0.1:42197" must not read as a 421.
fn replied(transcript: &str, code: &str) -> bool {
    transcript
        .lines()
        .filter(|l| l.starts_with('<'))
        .any(|l| l.trim_start_matches(['<', '~', '*', ' ']).starts_with(code))
}

fn auth_reply(transcript: &str) -> String {
    transcript
        .lines()
        .map(|l| l.trim_start_matches(['<', '~', '*', ' ']))
        .find(|l| l.starts_with("535") || l.starts_with("235"))
        .unwrap_or_else(|| panic!("no AUTH answer in {transcript}"))
        .to_owned()
}

#[test]
fn smtp_auth_failures_lock_the_account_persistently_and_a_locked_account_reads_as_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, ""));
    add_user(tmp.path(), "jane@clinic.example");
    let sub = server.addr("submission");
    let unknown = auth_reply(&submit_from(sub, "127.0.0.1", "nobody@clinic.example", PASSWORD).1);
    for _ in 0..5 {
        let (code, out) = submit_from(sub, "127.0.0.1", "jane@clinic.example", "guess");
        assert_ne!(code, 0);
        assert_eq!(auth_reply(&out), unknown, "a wrong password reads as an unknown account: {out}");
        assert!(!replied(&out, "421"), "one account failing does not block the address: {out}");
    }
    let (_, out, _) = carepost(BIN, tmp.path(), &["user", "list"]);
    assert!(out.contains("locked-until="), "{out}");
    // The lock is the account's, kept in the store: a restart forgets the guard's counters
    // but not the lock.
    assert!(server.stop().success());
    let server =
        Server::start_with(Path::new(BIN), tmp.path(), &tmp.path().join("carepost.toml"), &tmp.path().join("data"));
    let sub = server.addr("submission");
    let (code, right) = submit_from(sub, "127.0.0.1", "jane@clinic.example", PASSWORD);
    assert_ne!(code, 0, "the right password does not open a locked account: {right}");
    let (_, wrong) = submit_from(sub, "127.0.0.1", "jane@clinic.example", "guess again");
    assert_eq!(auth_reply(&right), auth_reply(&wrong), "right and wrong passwords of a locked account read alike");
    assert_eq!(auth_reply(&right), unknown, "a locked account reads as an unknown one");
    // From another address too: the lock is not tied to where the failures came from.
    assert_ne!(submit_from(sub, "127.0.0.3", "jane@clinic.example", PASSWORD).0, 0);
    let (code, _, err) = carepost(BIN, tmp.path(), &["user", "unlock", "jane@clinic.example"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = carepost(BIN, tmp.path(), &["user", "list"]);
    assert!(!out.contains("locked-until=") && out.contains("active"), "{out}");
    let (code, out) = submit_from(sub, "127.0.0.3", "jane@clinic.example", PASSWORD);
    assert_eq!(code, 0, "{out}");
    assert!(server.stop().success());
    let (_, export, _) = carepost(BIN, tmp.path(), &["audit", "export"]);
    let has = |action: &str, outcome: &str, detail: &str| {
        export.lines().any(|l| {
            l.contains(&format!("\"action\":\"{action}\""))
                && l.contains(&format!("\"outcome\":\"{outcome}\""))
                && l.contains(detail)
        })
    };
    assert!(has("staff.lockout", "success", "smtp-password"), "the lock is audited: {export}");
    assert!(has("smtp.auth", "denied", "account locked"), "attempts on the locked account are audited: {export}");
    assert!(!export.contains("jane@clinic.example"), "no login names in the audit log");
}

#[test]
fn accounts_with_a_second_factor_submit_with_app_passwords_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(Path::new(BIN), tmp.path(), &smtp_config(&dns, ""));
    add_user(tmp.path(), "jane@clinic.example");
    let sub = server.addr("submission");
    assert_eq!(
        submit_from(sub, "127.0.0.1", "jane@clinic.example", PASSWORD).0,
        0,
        "no second factor yet: the password works"
    );
    let (code, _, err) = carepost(BIN, tmp.path(), &["user", "require-mfa", "on"]);
    assert_eq!(code, 0, "{err}");
    let (code, out) = submit_from(sub, "127.0.0.1", "jane@clinic.example", PASSWORD);
    assert_ne!(code, 0, "the main password of an account that needs a second factor is refused: {out}");
    let (_, wrong) = submit_from(sub, "127.0.0.1", "jane@clinic.example", "guess");
    assert_eq!(auth_reply(&out), auth_reply(&wrong), "and reads like a wrong one");
    let (code, out, err) = carepost(BIN, tmp.path(), &["user", "app-password", "add", "jane@clinic.example", "phone"]);
    assert_eq!(code, 0, "{err}");
    let app = out.lines().last().unwrap().trim().to_owned();
    let (code, out) = submit_from(sub, "127.0.0.1", "jane@clinic.example", &app);
    assert_eq!(code, 0, "the app password signs in: {out}");
    let (code, out, _) = carepost(BIN, tmp.path(), &["user", "app-password", "list", "jane@clinic.example"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("phone  created=") && !out.contains("last-used=never"), "{out}");
    let (code, _, err) = carepost(BIN, tmp.path(), &["user", "app-password", "remove", "jane@clinic.example", "phone"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        submit_from(sub, "127.0.0.1", "jane@clinic.example", &app).0,
        0,
        "a removed app password no longer works"
    );
    assert!(server.stop().success());
    let (_, export, _) = carepost(BIN, tmp.path(), &["audit", "export"]);
    assert!(
        export.lines().any(|l| l.contains("\"action\":\"smtp.auth\"")
            && l.contains("\"outcome\":\"denied\"")
            && l.contains("app passwords only")),
        "{export}"
    );
}

#[test]
fn one_mistyping_device_behind_nat_blocks_neither_the_address_nor_other_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = TestDns::start(&[]);
    let server = Server::start(
        Path::new(BIN),
        tmp.path(),
        &smtp_config(&dns, "auth_failures_per_ip = 8\ntrusted_networks = [\"127.0.0.2\"]"),
    );
    add_user(tmp.path(), "a@clinic.example");
    add_user(tmp.path(), "b@clinic.example");
    let sub = server.addr("submission");
    // One device behind the clinic's address keeps a wrong password for account A.
    for _ in 0..5 {
        let (code, out) = submit_from(sub, "127.0.0.1", "a@clinic.example", "last year's password");
        assert_ne!(code, 0);
        assert!(replied(&out, "535 5.7.8") && !replied(&out, "421"), "{out}");
    }
    // Everyone else at the clinic still signs in from the same address.
    let (code, out) = submit_from(sub, "127.0.0.1", "b@clinic.example", PASSWORD);
    assert_eq!(code, 0, "account B signs in from the address where A failed five times: {out}");
    let (_, greeting) = Raw::connect(server.addr("mx"));
    assert!(greeting.starts_with("220"), "{greeting}");
    // Failures across many logins (password spraying) still block the address.
    let mut blocked = false;
    for i in 0..3 {
        let (_, out) = submit_from(sub, "127.0.0.1", &format!("guess{i}@clinic.example"), "password1");
        blocked |= replied(&out, "421 4.7.0");
    }
    assert!(blocked, "the eighth failure from the address blocks it");
    let (_, greeting) = Raw::connect(server.addr("mx"));
    assert!(greeting.starts_with("554 5.7.1"), "{greeting}");
    // A trusted network is never blocked automatically.
    for i in 0..10 {
        let (_, out) = submit_from(sub, "127.0.0.2", &format!("typo{i}@clinic.example"), "password1");
        assert!(replied(&out, "535 5.7.8") && !replied(&out, "421") && !replied(&out, "554"), "{out}");
    }
    let (code, out) = submit_from(sub, "127.0.0.2", "b@clinic.example", PASSWORD);
    assert_eq!(code, 0, "{out}");
    assert!(server.stop().success());
    let (_, export, _) = carepost(BIN, tmp.path(), &["audit", "export"]);
    assert!(
        export.lines().any(|l| l.contains("\"action\":\"smtp.blocked\"") && l.contains("\"outcome\":\"denied\"")),
        "refused connections are audited: {export}"
    );
    let (code, out, _) = carepost(BIN, tmp.path(), &["block", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("127.0.0.1  until=") && !out.contains("127.0.0.2"), "{out}");
}
