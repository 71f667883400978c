//! carepost's SMTP client (RFC 5321) on smtp-proto and tokio-rustls: STARTTLS with
//! carepost's own certificate checks per server, PIPELINING (RFC 2920), CHUNKING (RFC 3030),
//! SMTPUTF8 (RFC 6531), DSN parameters (RFC 3461), REQUIRETLS (RFC 8689), SIZE, AUTH PLAIN,
//! and a time limit on every stage.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use carepost_model::{BodyType, DsnNotify, DsnReturn};
use rustls_pki_types::ServerName;
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{
    EXT_8BIT_MIME, EXT_BINARY_MIME, EXT_CHUNKING, EXT_DSN, EXT_PIPELINING, EXT_REQUIRE_TLS, EXT_SIZE, EXT_SMTP_UTF8,
    EXT_START_TLS, EhloResponse,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::tls_policy::{TlsContext, TlsDemand, Verification};

/// Time limits per stage.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Greeting, EHLO, STARTTLS with the handshake, AUTH.
    pub greeting: Duration,
    /// MAIL, RCPT, DATA (the 354), RSET, QUIT.
    pub command: Duration,
    /// Sending the message and waiting for its final reply.
    pub data: Duration,
}

/// One SMTP reply, or a reply carepost made up locally for a failure before the server
/// could answer (then `local` is true and no remote server said it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub esc: [u8; 3],
    pub text: String,
    pub local: bool,
}

impl Reply {
    pub fn local(code: u16, esc: [u8; 3], text: impl Into<String>) -> Self {
        Reply { code, esc, text: text.into(), local: true }
    }

    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The enhanced status code (RFC 3463), or one derived from the basic code.
    pub fn status(&self) -> String {
        if self.esc[0] != 0 {
            format!("{}.{}.{}", self.esc[0], self.esc[1], self.esc[2])
        } else {
            format!("{}.0.0", self.code / 100)
        }
    }

    /// `550 5.1.1 text` on one line, for logs of the sender's own DSN and sealed storage.
    pub fn line(&self) -> String {
        let text = self.text.replace(['\r', '\n'], " ");
        if self.esc[0] != 0 {
            format!("{} {} {}", self.code, self.status(), text)
        } else {
            format!("{} {}", self.code, text)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("timed out waiting for the {stage} reply")]
    Timeout { stage: &'static str },
    #[error("connection lost during {stage}: {source}")]
    Io { stage: &'static str, source: io::Error },
    #[error("protocol error during {stage}: {reason}")]
    Protocol { stage: &'static str, reason: String },
    #[error("the server refused {stage}: {}", reply.line())]
    Refused { stage: &'static str, reply: Reply },
    /// The hop must be encrypted but the server does not offer STARTTLS (or it was stripped).
    #[error("the server does not offer STARTTLS, and this hop requires TLS ({policy})")]
    NoStartTls { policy: &'static str },
    #[error("TLS handshake failed ({policy}): {reason}")]
    Tls { policy: &'static str, reason: String, required: bool },
}

impl ClientError {
    /// An error that means the peer cannot give the protection the hop requires.
    pub fn is_tls_failure(&self) -> bool {
        matches!(self, ClientError::NoStartTls { .. } | ClientError::Tls { required: true, .. })
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Closed,
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// The TLS a connection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSummary {
    pub version: String,
    pub cipher: String,
    pub verification: Verification,
}

/// SMTP AUTH credentials (smart host).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// What to connect to and how.
pub struct ConnectSpec<'a> {
    pub addr: SocketAddr,
    /// The host name (SNI, certificate checks); an address literal for IP hops.
    pub host: &'a str,
    pub helo: &'a str,
    pub demand: &'a TlsDemand,
    pub auth: Option<&'a Credentials>,
    pub timeouts: Timeouts,
}

/// The envelope of one transaction.
pub struct Outgoing<'a> {
    /// `None` is the null reverse path.
    pub mail_from: Option<&'a str>,
    pub recipients: Vec<OutgoingRcpt<'a>>,
    pub body_type: BodyType,
    pub smtputf8: bool,
    pub require_tls: bool,
    pub ret: Option<DsnReturn>,
    pub envid: Option<&'a str>,
}

pub struct OutgoingRcpt<'a> {
    pub address: &'a str,
    pub notify: Option<DsnNotify>,
    pub orcpt: Option<&'a str>,
}

/// An open SMTP session, ready for transactions.
pub struct SmtpConnection {
    stream: Stream,
    buf: Vec<u8>,
    pub addr: SocketAddr,
    pub host: String,
    pub greeting_name: String,
    capabilities: u32,
    max_size: usize,
    pub tls: Option<TlsSummary>,
    timeouts: Timeouts,
    /// Transactions completed on this connection.
    pub transactions: usize,
}

/// Longest reply carepost reads; more is a protocol error.
const MAX_REPLY: usize = 64 * 1024;

impl SmtpConnection {
    /// Connects, reads the greeting, says EHLO, does STARTTLS as `demand` requires (or
    /// opportunistically) and AUTH when credentials are given.
    pub async fn connect(spec: ConnectSpec<'_>, tls: &TlsContext) -> Result<SmtpConnection, ClientError> {
        let tcp = tokio::time::timeout(spec.timeouts.connect, TcpStream::connect(spec.addr))
            .await
            .map_err(|_| ClientError::Timeout { stage: "connect" })?
            .map_err(|source| ClientError::Connect { addr: spec.addr, source })?;
        let _ = tcp.set_nodelay(true);
        let mut conn = SmtpConnection {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(1024),
            addr: spec.addr,
            host: spec.host.to_owned(),
            greeting_name: String::new(),
            capabilities: 0,
            max_size: 0,
            tls: None,
            timeouts: spec.timeouts,
            transactions: 0,
        };
        let greeting_timeout = spec.timeouts.greeting;
        let greeting = conn.read_reply("greeting", greeting_timeout).await?;
        if greeting.code != 220 {
            return Err(ClientError::Refused { stage: "the connection", reply: greeting });
        }
        conn.ehlo(spec.helo).await?;

        let wants_tls = !matches!(spec.demand, TlsDemand::Never);
        if wants_tls && conn.has(EXT_START_TLS) {
            conn.starttls(spec.host, spec.demand, tls).await?;
            conn.ehlo(spec.helo).await?;
        } else if spec.demand.requires_tls() {
            let _ = conn.quit().await;
            return Err(ClientError::NoStartTls { policy: spec.demand.source() });
        }

        if let Some(credentials) = spec.auth {
            conn.auth_plain(credentials).await?;
        }
        Ok(conn)
    }

    fn has(&self, capability: u32) -> bool {
        self.capabilities & capability != 0
    }

    pub fn supports_dsn(&self) -> bool {
        self.has(EXT_DSN)
    }

    pub fn verification(&self) -> Verification {
        self.tls.as_ref().map(|t| t.verification).unwrap_or(Verification::None)
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), ClientError> {
        let t = self.timeouts.greeting;
        self.write(format!("EHLO {helo}\r\n").as_bytes(), "EHLO", t).await?;
        let raw = self.read_raw_reply("EHLO", t).await?;
        match EhloResponse::parse(&mut raw.iter()) {
            Ok(ehlo) => {
                self.greeting_name = ehlo.hostname.clone();
                self.capabilities = ehlo.capabilities;
                self.max_size = ehlo.size;
                Ok(())
            }
            Err(_) => {
                let reply = parse_reply(&raw, "EHLO")?;
                if reply.is_permanent() {
                    // An old server: HELO, and no extensions.
                    self.write(format!("HELO {helo}\r\n").as_bytes(), "HELO", t).await?;
                    let reply = self.read_reply("HELO", t).await?;
                    if reply.code == 250 {
                        self.capabilities = 0;
                        return Ok(());
                    }
                    return Err(ClientError::Refused { stage: "HELO", reply });
                }
                Err(ClientError::Refused { stage: "EHLO", reply })
            }
        }
    }

    async fn starttls(&mut self, host: &str, demand: &TlsDemand, tls: &TlsContext) -> Result<(), ClientError> {
        let t = self.timeouts.greeting;
        let required = demand.requires_tls();
        let policy = demand.source();
        self.write(b"STARTTLS\r\n", "STARTTLS", t).await?;
        let reply = self.read_reply("STARTTLS", t).await?;
        if reply.code != 220 {
            if required {
                return Err(ClientError::Tls {
                    policy,
                    reason: format!("STARTTLS refused: {}", reply.line()),
                    required,
                });
            }
            return Err(ClientError::Refused { stage: "STARTTLS", reply });
        }
        if !self.buf.is_empty() {
            // RFC 3207 section 6 / CVE-2011-0411: anything sent before the handshake could be
            // an injected command; never act on it.
            return Err(ClientError::Protocol {
                stage: "STARTTLS",
                reason: "data after the 220 reply, before TLS".into(),
            });
        }
        let (config, outcome) =
            tls.client_config(demand).map_err(|e| ClientError::Tls { policy, reason: e.to_string(), required })?;
        let server_name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Tls {
                policy,
                reason: format!("bad host name: {e}"),
                required,
            })?,
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(ClientError::Protocol { stage: "STARTTLS", reason: "TLS is already active".into() });
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = tokio::time::timeout(t, connector.connect(server_name, tcp))
            .await
            .map_err(|_| ClientError::Timeout { stage: "TLS handshake" })?
            .map_err(|e| ClientError::Tls { policy, reason: io_reason(&e), required })?;
        let session = stream.get_ref().1;
        let version = session.protocol_version().map(tls_version_name).unwrap_or_default();
        let cipher = session.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        let verification = *outcome.lock().unwrap_or_else(|p| p.into_inner());
        self.tls = Some(TlsSummary { version, cipher, verification });
        self.stream = Stream::Tls(Box::new(stream));
        // RFC 3207: forget what was learned before TLS.
        self.capabilities = 0;
        Ok(())
    }

    async fn auth_plain(&mut self, c: &Credentials) -> Result<(), ClientError> {
        let t = self.timeouts.greeting;
        let mut token = Vec::with_capacity(c.username.len() + c.password.len() + 2);
        token.push(0);
        token.extend_from_slice(c.username.as_bytes());
        token.push(0);
        token.extend_from_slice(c.password.as_bytes());
        let line = format!("AUTH PLAIN {}\r\n", base64::engine::general_purpose::STANDARD.encode(&token));
        self.write(line.as_bytes(), "AUTH", t).await?;
        let reply = self.read_reply("AUTH", t).await?;
        if reply.code != 235 {
            return Err(ClientError::Refused { stage: "AUTH", reply });
        }
        Ok(())
    }

    /// Checks what the envelope needs against what the server offers. `Err` is the reply to
    /// give every recipient without sending anything.
    fn preflight(&self, env: &Outgoing<'_>, size: usize) -> Result<(), Reply> {
        let needs_utf8 = env.smtputf8
            || env.mail_from.is_some_and(|a| !a.is_ascii())
            || env.recipients.iter().any(|r| !r.address.is_ascii());
        if needs_utf8 && !self.has(EXT_SMTP_UTF8) {
            return Err(Reply::local(
                553,
                [5, 6, 7],
                "the server does not support SMTPUTF8, which this message needs (RFC 6531)",
            ));
        }
        if env.body_type == BodyType::BinaryMime && !(self.has(EXT_BINARY_MIME) && self.has(EXT_CHUNKING)) {
            return Err(Reply::local(
                554,
                [5, 6, 3],
                "the server does not accept BINARYMIME, which this message needs",
            ));
        }
        if env.require_tls {
            // RFC 8689 section 4.2.1: only over verified TLS, and only to a server that
            // promises to keep the requirement.
            if !self.tls.as_ref().is_some_and(|t| t.verification.is_verified()) {
                return Err(Reply::local(
                    550,
                    [5, 7, 10],
                    "REQUIRETLS: the sender requires verified TLS, and the server's TLS could not be verified",
                ));
            }
            if !self.has(EXT_REQUIRE_TLS) {
                return Err(Reply::local(
                    550,
                    [5, 7, 30],
                    "REQUIRETLS support required: the server does not offer it (RFC 8689)",
                ));
            }
        }
        if self.has(EXT_SIZE) && self.max_size > 0 && size > self.max_size {
            return Err(Reply::local(
                552,
                [5, 3, 4],
                format!("the message ({size} bytes) is larger than the server accepts ({})", self.max_size),
            ));
        }
        Ok(())
    }

    fn mail_command(&self, env: &Outgoing<'_>, size: usize) -> String {
        let mut cmd = format!("MAIL FROM:<{}>", env.mail_from.unwrap_or(""));
        if self.has(EXT_SIZE) {
            cmd.push_str(&format!(" SIZE={size}"));
        }
        match env.body_type {
            BodyType::EightBitMime if self.has(EXT_8BIT_MIME) => cmd.push_str(" BODY=8BITMIME"),
            BodyType::BinaryMime => cmd.push_str(" BODY=BINARYMIME"),
            _ => {}
        }
        let needs_utf8 = env.smtputf8
            || env.mail_from.is_some_and(|a| !a.is_ascii())
            || env.recipients.iter().any(|r| !r.address.is_ascii());
        if needs_utf8 {
            cmd.push_str(" SMTPUTF8");
        }
        if env.require_tls {
            cmd.push_str(" REQUIRETLS");
        }
        if self.has(EXT_DSN) {
            match env.ret {
                Some(DsnReturn::Full) => cmd.push_str(" RET=FULL"),
                Some(DsnReturn::Headers) => cmd.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = env.envid {
                cmd.push_str(" ENVID=");
                cmd.push_str(&xtext(envid));
            }
        }
        cmd.push_str("\r\n");
        cmd
    }

    fn rcpt_command(&self, r: &OutgoingRcpt<'_>) -> String {
        let mut cmd = format!("RCPT TO:<{}>", r.address);
        if self.has(EXT_DSN) {
            if let Some(n) = r.notify {
                let mut parts = Vec::new();
                if n.never {
                    parts.push("NEVER");
                } else {
                    if n.success {
                        parts.push("SUCCESS");
                    }
                    if n.failure {
                        parts.push("FAILURE");
                    }
                    if n.delay {
                        parts.push("DELAY");
                    }
                }
                if !parts.is_empty() {
                    cmd.push_str(" NOTIFY=");
                    cmd.push_str(&parts.join(","));
                }
            }
            if let Some(orcpt) = r.orcpt
                && !orcpt.is_empty()
                && orcpt.is_ascii()
                && !orcpt.contains([' ', '\r', '\n'])
            {
                cmd.push_str(" ORCPT=");
                cmd.push_str(orcpt);
            }
        }
        cmd.push_str("\r\n");
        cmd
    }

    /// Sends one message to the envelope's recipients. Returns one reply per recipient, in
    /// order: the RCPT refusal, or the MAIL refusal, or the final reply to the data. `Err`
    /// means the connection is unusable and nothing is known about the recipients.
    pub async fn send(&mut self, env: &Outgoing<'_>, message: &[u8]) -> Result<Vec<Reply>, ClientError> {
        let n = env.recipients.len();
        if let Err(reply) = self.preflight(env, message.len()) {
            return Ok(vec![reply; n]);
        }
        let command = self.timeouts.command;
        let pipelining = self.has(EXT_PIPELINING);
        let chunking = self.has(EXT_CHUNKING);
        let mut replies: Vec<Option<Reply>> = vec![None; n];

        let mail = self.mail_command(env, message.len());
        let rcpts: Vec<String> = env.recipients.iter().map(|r| self.rcpt_command(r)).collect();
        let accepted: usize;
        if pipelining {
            // RFC 2920: MAIL and RCPT go together; with CHUNKING the BDAT and its data may
            // follow at once, with DATA the group ends at DATA.
            let mut batch = Vec::with_capacity(mail.len() + rcpts.iter().map(String::len).sum::<usize>() + 32);
            batch.extend_from_slice(mail.as_bytes());
            for r in &rcpts {
                batch.extend_from_slice(r.as_bytes());
            }
            if chunking {
                batch.extend_from_slice(format!("BDAT {} LAST\r\n", message.len()).as_bytes());
                self.write_parts(&[&batch, message], "MAIL", self.timeouts.data).await?;
            } else {
                batch.extend_from_slice(b"DATA\r\n");
                self.write(&batch, "MAIL", command).await?;
            }
            let mail_reply = self.read_reply("MAIL", command).await?;
            let mut ok = 0;
            for slot in replies.iter_mut() {
                let reply = self.read_reply("RCPT", command).await?;
                if reply.is_positive() {
                    ok += 1;
                } else {
                    *slot = Some(reply);
                }
            }
            if !mail_reply.is_positive() {
                for slot in replies.iter_mut() {
                    *slot = Some(mail_reply.clone());
                }
                ok = 0;
            }
            accepted = ok;
            let data_reply = if chunking {
                self.read_reply("BDAT", self.timeouts.data).await?
            } else {
                let go = self.read_reply("DATA", command).await?;
                if go.code == 354 {
                    if accepted == 0 {
                        // The server said go ahead to nobody: end the empty message.
                        self.write(b".\r\n", "DATA", command).await?;
                        let _ = self.read_reply("DATA", self.timeouts.data).await?;
                        self.rset().await?;
                        return Ok(fill(replies, &Reply::local(554, [5, 5, 0], "no recipient accepted")));
                    }
                    self.send_data(message).await?
                } else {
                    go
                }
            };
            if accepted == 0 {
                self.rset().await?;
                return Ok(fill(replies, &Reply::local(554, [5, 5, 0], "no recipient accepted")));
            }
            let complete = data_reply.is_positive();
            let out = fill(replies, &data_reply);
            if complete {
                self.transactions += 1;
            } else {
                self.rset().await?;
            }
            return Ok(out);
        }

        self.write(mail.as_bytes(), "MAIL", command).await?;
        let mail_reply = self.read_reply("MAIL", command).await?;
        if !mail_reply.is_positive() {
            self.rset().await?;
            return Ok(vec![mail_reply; n]);
        }
        let mut ok = 0;
        for (slot, r) in replies.iter_mut().zip(&rcpts) {
            self.write(r.as_bytes(), "RCPT", command).await?;
            let reply = self.read_reply("RCPT", command).await?;
            if reply.is_positive() {
                ok += 1;
            } else {
                *slot = Some(reply);
            }
        }
        if ok == 0 {
            self.rset().await?;
            return Ok(fill(replies, &Reply::local(554, [5, 5, 0], "no recipient accepted")));
        }
        let data_reply = if chunking {
            let head = format!("BDAT {} LAST\r\n", message.len());
            self.write_parts(&[head.as_bytes(), message], "BDAT", self.timeouts.data).await?;
            self.read_reply("BDAT", self.timeouts.data).await?
        } else {
            self.write(b"DATA\r\n", "DATA", command).await?;
            let go = self.read_reply("DATA", command).await?;
            if go.code == 354 { self.send_data(message).await? } else { go }
        };
        let complete = data_reply.is_positive();
        let out = fill(replies, &data_reply);
        if complete {
            self.transactions += 1;
        } else {
            self.rset().await?;
        }
        Ok(out)
    }

    async fn send_data(&mut self, message: &[u8]) -> Result<Reply, ClientError> {
        let stuffed = dot_stuff(message);
        self.write(&stuffed, "DATA", self.timeouts.data).await?;
        self.read_reply("end of data", self.timeouts.data).await
    }

    /// Resets the transaction after a failure so the connection can carry the next one.
    pub async fn rset(&mut self) -> Result<(), ClientError> {
        let t = self.timeouts.command;
        self.write(b"RSET\r\n", "RSET", t).await?;
        let reply = self.read_reply("RSET", t).await?;
        if reply.code != 250 {
            return Err(ClientError::Refused { stage: "RSET", reply });
        }
        Ok(())
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn quit(&mut self) -> Result<(), ClientError> {
        let t = self.timeouts.command.min(Duration::from_secs(10));
        self.write(b"QUIT\r\n", "QUIT", t).await?;
        let _ = self.read_reply("QUIT", t).await;
        let _ = tokio::time::timeout(t, self.stream.shutdown()).await;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8], stage: &'static str, limit: Duration) -> Result<(), ClientError> {
        self.write_parts(&[bytes], stage, limit).await
    }

    async fn write_parts(&mut self, parts: &[&[u8]], stage: &'static str, limit: Duration) -> Result<(), ClientError> {
        let stream = &mut self.stream;
        let io = async move {
            for part in parts {
                stream.write_all(part).await?;
            }
            stream.flush().await
        };
        tokio::time::timeout(limit, io)
            .await
            .map_err(|_| ClientError::Timeout { stage })?
            .map_err(|source| ClientError::Io { stage, source })
    }

    async fn read_reply(&mut self, stage: &'static str, limit: Duration) -> Result<Reply, ClientError> {
        let raw = self.read_raw_reply(stage, limit).await?;
        parse_reply(&raw, stage)
    }

    /// Reads one complete (possibly multi-line) reply.
    async fn read_raw_reply(&mut self, stage: &'static str, limit: Duration) -> Result<Vec<u8>, ClientError> {
        let stream = &mut self.stream;
        let buf = &mut self.buf;
        let io = async move {
            loop {
                if let Some(end) = complete_reply_len(buf) {
                    let raw: Vec<u8> = buf.drain(..end).collect();
                    return Ok(raw);
                }
                if buf.len() > MAX_REPLY {
                    return Err(ClientError::Protocol { stage, reason: "reply too long".into() });
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.map_err(|source| ClientError::Io { stage, source })?;
                if n == 0 {
                    return Err(ClientError::Io { stage, source: io::ErrorKind::UnexpectedEof.into() });
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(limit, io).await.map_err(|_| ClientError::Timeout { stage })?
    }
}

/// Length of the first complete reply in `buf`: lines up to one whose fourth byte is a
/// space (or that has only the code).
fn complete_reply_len(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        start += nl + 1;
        if line.len() <= 3 || line[3] != b'-' {
            return Some(start);
        }
    }
    None
}

fn parse_reply(raw: &[u8], stage: &'static str) -> Result<Reply, ClientError> {
    let mut receiver = ResponseReceiver::default();
    match receiver.parse(&mut raw.iter()) {
        Ok(r) if (200..600).contains(&r.code) => Ok(Reply { code: r.code, esc: r.esc, text: r.message, local: false }),
        Ok(r) => Err(ClientError::Protocol { stage, reason: format!("reply code {} out of range", r.code) }),
        Err(e) => Err(ClientError::Protocol { stage, reason: format!("unreadable reply: {e:?}") }),
    }
}

fn fill(replies: Vec<Option<Reply>>, default: &Reply) -> Vec<Reply> {
    replies.into_iter().map(|r| r.unwrap_or_else(|| default.clone())).collect()
}

/// The message as DATA sends it: every line ending made CRLF, lines starting with "."
/// doubled, and the terminating ".".
///
/// A bare CR counts as a line ending as much as a bare LF: some receivers end a line at
/// either, so a body holding `\r.\r\n` or `\n.\n` would end the data there and let what
/// follows pass as new commands (SMTP smuggling). Making every CR, LF and CRLF one CRLF
/// before stuffing means the next hop sees exactly one message, whatever the body held.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut at_line_start = true;
    let mut bytes = message.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' | b'\n' => {
                if b == b'\r' && bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = false;
            }
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// xtext (RFC 3461 section 4): "+" and "=" and non-printable characters as "+XX".
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn tls_version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// Shared handle type for the TLS context.
pub type SharedTls = Arc<TlsContext>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".x\nno end"), b"..x\r\nno end\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn bare_carriage_returns_become_line_ends() {
        // The published smuggling payloads: each reaches the next hop as plain lines, the
        // dot stuffed, so only the final CRLF.CRLF ends the data.
        assert_eq!(dot_stuff(b"a\r.\r\nMAIL FROM:<x@y>\r\n"), b"a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\r\n.\rb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\r"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\n\r.\r"), b"a\r\n\r\n..\r\n.\r\n");
    }

    /// Undoes DATA's dot-stuffing the way a strict receiver does; `None` when the data has a
    /// bare CR or LF or does not end with the end marker.
    fn strict_receive(data: &[u8]) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        let mut rest = data;
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let line = &rest[..end];
            if line.contains(&b'\r') || line.contains(&b'\n') {
                return None;
            }
            rest = &rest[end + 2..];
            if line == b"." {
                return rest.is_empty().then_some(body);
            }
            body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            body.extend_from_slice(b"\r\n");
        }
    }

    proptest::proptest! {
        /// Whatever the message holds, DATA carries it as CRLF lines with one end marker at
        /// the very end, and a strict receiver gets the message back with its line endings
        /// made CRLF.
        #[test]
        fn stuffed_data_has_only_crlf_and_one_end(input in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(b'\r'), proptest::strategy::Just(b'\n'), proptest::strategy::Just(b'.'), proptest::prelude::any::<u8>()], 0..300)) {
            let data = dot_stuff(&input);
            for (i, &b) in data.iter().enumerate() {
                if b == b'\r' { proptest::prop_assert_eq!(data.get(i + 1), Some(&b'\n')); }
                if b == b'\n' { proptest::prop_assert!(i > 0 && data[i - 1] == b'\r'); }
            }
            let received = strict_receive(&data);
            proptest::prop_assert!(received.is_some(), "{:?}", data);
            let mut expected = Vec::new();
            let mut bytes = input.iter().copied().peekable();
            while let Some(b) = bytes.next() {
                if b == b'\r' || b == b'\n' {
                    if b == b'\r' && bytes.peek() == Some(&b'\n') { bytes.next(); }
                    expected.extend_from_slice(b"\r\n");
                } else {
                    expected.push(b);
                }
            }
            if !expected.is_empty() && !expected.ends_with(b"\r\n") { expected.extend_from_slice(b"\r\n"); }
            proptest::prop_assert_eq!(received.unwrap(), expected);
        }
    }

    #[test]
    fn replies_are_framed_and_parsed() {
        assert_eq!(complete_reply_len(b"250-a\r\n250-b\r\n"), None);
        assert_eq!(complete_reply_len(b"250-a\r\n250 b\r\nextra"), Some(14));
        assert_eq!(complete_reply_len(b"250\r\n"), Some(5));
        let r = parse_reply(b"550-5.1.1 no such\r\n550 5.1.1 user\r\n", "RCPT").unwrap();
        assert_eq!((r.code, r.status(), r.is_permanent()), (550, "5.1.1".to_owned(), true));
        assert!(r.line().starts_with("550 5.1.1 no such"), "{}", r.line());
        assert!(parse_reply(b"hello\r\n", "x").is_err());
        assert_eq!(Reply::local(451, [0, 0, 0], "x").status(), "4.0.0");
    }

    #[test]
    fn xtext_encodes_specials() {
        assert_eq!(xtext("id+1=2 é"), "id+2B1+3D2+20+C3+A9");
    }
}
