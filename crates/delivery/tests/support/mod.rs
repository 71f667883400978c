//! Real peers on loopback for the delivery tests: small SMTP servers with chosen behaviour
//! (hidden STARTTLS, a chosen certificate, 4xx then 2xx, 5xx), an HTTPS server for MTA-STS
//! policy files, a test PKI, and Postfix's smtp-sink.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A spool with its own store, keys and blobs in a directory.
pub use carepost_spool::testing::spool;

/// How a submission from 127.0.0.1 arrives.
pub fn submission_arrival() -> carepost_model::Arrival {
    serde_json::from_value(serde_json::json!({ "source": "submission", "client_ip": "127.0.0.1" })).unwrap()
}

/// Queues `text` from `from` to the one recipient `to` as a submission from 127.0.0.1, with
/// RFC 8689 REQUIRETLS when `require_tls`: its id.
pub async fn queue_to(
    spool: &carepost_spool::Spool,
    from: &str,
    to: &str,
    require_tls: bool,
    text: impl Into<bytes::Bytes>,
) -> String {
    let from = carepost_model::Address::parse(from).unwrap();
    let envelope = carepost_model::Envelope {
        require_tls,
        ..carepost_model::Envelope::to_one(Some(from), carepost_model::Address::parse(to).unwrap())
    };
    let submission = carepost_spool::Submission::new(Default::default(), envelope, submission_arrival(), text.into());
    spool.accept(submission).await.unwrap().to_string()
}

/// A test certificate authority and the certificates it issues.
pub struct TestCa {
    pub cert: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "carepost test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert: cert.der().clone(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// A server certificate for `names`, with its chain (leaf, CA).
    pub fn issue(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone(), self.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let (chain, key) = self.issue(names);
        server_config(chain, key)
    }
}

pub fn server_config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// A self-signed certificate (for DANE-EE) and its server configuration.
pub fn self_signed(names: &[&str]) -> (CertificateDer<'static>, Arc<rustls::ServerConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap().der().clone();
    let config = server_config(vec![cert.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())));
    (cert, config)
}

/// One message as a test server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// How a test SMTP server behaves.
#[derive(Clone)]
pub struct Behaviour {
    /// STARTTLS offered with this certificate; `None` hides STARTTLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Replies to successive end-of-data, used in order; then 250.
    pub data_replies: Arc<Mutex<VecDeque<String>>>,
    /// A RCPT TO containing the key gets the reply.
    pub rcpt_replies: Vec<(String, String)>,
    pub pipelining: bool,
    pub dsn: bool,
    /// Wait this long before answering end-of-data (to have deliveries in flight).
    pub data_delay: Duration,
    /// Offer CHUNKING (BDAT).
    pub chunking: bool,
    /// Offer AUTH PLAIN and accept only this user and password (after STARTTLS if TLS is
    /// configured).
    pub auth: Option<(String, String)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            tls: None,
            data_replies: Arc::new(Mutex::new(VecDeque::new())),
            rcpt_replies: Vec::new(),
            pipelining: true,
            dsn: true,
            data_delay: Duration::ZERO,
            chunking: false,
            auth: None,
        }
    }
}

/// A small SMTP server on 127.0.0.1 recording what it receives.
pub struct TestSmtp {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub commands: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestSmtp {
    pub async fn start(behaviour: Behaviour) -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (r, c, n) = (received.clone(), commands.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let (b, r, c) = (behaviour.clone(), r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut stream = stream;
                    if stream.write_all(b"220 test.sink ESMTP\r\n").await.is_err() {
                        return;
                    }
                    if let Ok(Some(plain)) = session(BufReader::new(stream), &b, &r, &c, false).await {
                        let Some(config) = b.tls.clone() else { return };
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        let Ok(tls) = acceptor.accept(plain).await else { return };
                        let _ = session(BufReader::new(tls), &b, &r, &c, true).await;
                    }
                });
            }
        });
        TestSmtp { addr, received, commands, connections, task }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn saw_command(&self, prefix: &str) -> bool {
        self.commands.lock().unwrap().iter().any(|c| c.to_ascii_uppercase().starts_with(prefix))
    }
}

/// Runs SMTP on `reader` until QUIT or EOF. Returns the stream when STARTTLS was accepted.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut reader: BufReader<S>,
    b: &Behaviour,
    received: &Arc<Mutex<Vec<Received>>>,
    commands: &Arc<Mutex<Vec<String>>>,
    tls: bool,
) -> std::io::Result<Option<S>> {
    let mut mail_from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let cmd = line.trim_end().to_owned();
        commands.lock().unwrap().push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut ext = vec!["test.sink", "8BITMIME", "SIZE 50000000", "ENHANCEDSTATUSCODES", "SMTPUTF8"];
            if b.pipelining {
                ext.push("PIPELINING");
            }
            if b.dsn {
                ext.push("DSN");
            }
            if b.tls.is_some() && !tls {
                ext.push("STARTTLS");
            }
            if tls {
                ext.push("REQUIRETLS");
            }
            if b.chunking {
                ext.push("CHUNKING");
            }
            if b.auth.is_some() && (tls || b.tls.is_none()) {
                ext.push("AUTH PLAIN");
            }
            let mut text = String::new();
            for (i, e) in ext.iter().enumerate() {
                text.push_str(&format!("250{}{e}\r\n", if i + 1 == ext.len() { ' ' } else { '-' }));
            }
            text
        } else if upper.starts_with("HELO") {
            "250 test.sink\r\n".into()
        } else if upper == "STARTTLS" && b.tls.is_some() && !tls {
            reader.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
            return Ok(Some(reader.into_inner()));
        } else if upper.starts_with("AUTH PLAIN ") {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.decode(cmd[11..].trim()).unwrap_or_default();
            let parts: Vec<&[u8]> = token.split(|&c| c == 0).collect();
            let ok = b
                .auth
                .as_ref()
                .is_some_and(|(u, p)| parts.len() == 3 && parts[1] == u.as_bytes() && parts[2] == p.as_bytes());
            if ok { "235 2.7.0 authenticated\r\n".into() } else { "535 5.7.8 bad credentials\r\n".into() }
        } else if upper.starts_with("BDAT ") {
            let mut words = upper.split_whitespace().skip(1);
            let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            let mut data = vec![0u8; size];
            reader.read_exact(&mut data).await?;
            if !last {
                "250 2.0.0 chunk ok\r\n".into()
            } else if rcpts.is_empty() {
                "554 5.5.1 no valid recipients\r\n".into()
            } else {
                let answer = b.data_replies.lock().unwrap().pop_front().unwrap_or_else(|| "250 2.0.0 queued".into());
                if answer.starts_with('2') {
                    received.lock().unwrap().push(Received {
                        mail_from: mail_from.clone(),
                        rcpts: rcpts.clone(),
                        data,
                        tls,
                    });
                }
                rcpts.clear();
                format!("{answer}\r\n")
            }
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = cmd[10..].to_owned();
            rcpts.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            match b.rcpt_replies.iter().find(|(k, _)| cmd.contains(k.as_str())) {
                Some((_, r)) => format!("{r}\r\n"),
                None => {
                    rcpts.push(cmd[8..].to_owned());
                    "250 2.1.5 ok\r\n".into()
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "554 5.5.1 no valid recipients\r\n".into()
            } else {
                reader.get_mut().write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if reader.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(None);
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b"..") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                if !b.data_delay.is_zero() {
                    tokio::time::sleep(b.data_delay).await;
                }
                let answer = b.data_replies.lock().unwrap().pop_front().unwrap_or_else(|| "250 2.0.0 queued".into());
                if answer.starts_with('2') {
                    received.lock().unwrap().push(Received {
                        mail_from: mail_from.clone(),
                        rcpts: rcpts.clone(),
                        data,
                        tls,
                    });
                }
                rcpts.clear();
                format!("{answer}\r\n")
            }
        } else if upper == "RSET" {
            rcpts.clear();
            "250 2.0.0 ok\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 ok\r\n".into()
        } else if upper == "QUIT" {
            reader.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(None);
        } else {
            "502 5.5.2 unknown command\r\n".into()
        };
        reader.get_mut().write_all(reply.as_bytes()).await?;
    }
}

/// An HTTPS server answering every request with `body` as text/plain.
pub struct TestHttps {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestHttps {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestHttps {
    pub async fn start(config: Arc<rustls::ServerConfig>, body: String) -> TestHttps {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let task = tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, body, count) = (acceptor.clone(), body.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else { return };
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
                        if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TestHttps { addr, requests, task }
    }
}
