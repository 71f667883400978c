//! One SMTP session: the command state machine of RFC 5321 with the extensions carepost
//! offers, from greeting to QUIT.
//!
//! Everything the client sends is untrusted. Each step checks its preconditions and answers
//! with a reply; nothing here panics on input, and every wait is bounded by a deadline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use carepost_model::{Arrival, Envelope, Recipient, SenderAuthentication, Source, TenantId, TlsInfo};
use carepost_store::accounts::Account;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::accounts::Authenticator;
use crate::budget::{BodyBuffer, DataBudget};
use crate::command::{self, Command, MailParams, Mechanism};
use crate::config::SmtpConfig;
use crate::data::{BodyDecoder, BodyProblem};
use crate::inbound::SenderVerifier;
use crate::ingress::{AcceptedMessage, Ingress};
use crate::received::{self, Trace};
use crate::reply::Reply;
use crate::sasl;
use crate::stream::{Connection, ReadError};
use carepost_guard::Guard;

/// The longest command line, CRLF included. RFC 5321 asks for at least 512; AUTH initial
/// responses need more (RFC 4954 section 4).
pub const MAX_COMMAND_LINE: usize = 4096;

/// Commands that do no work (NOOP, RSET, VRFY, HELP) a session may send before each further
/// one counts as an error, as Postfix's smtpd_junk_command_limit.
const JUNK_LIMIT: u32 = 100;

/// Room kept in front of a message for carepost's own trace headers, so that prepending them
/// does not copy the message.
const HEADROOM: usize = 4096;

/// Messages larger than this are verified (DKIM hashing, signature checks) on a blocking
/// thread rather than on the reactor.
const VERIFY_INLINE_MAX: usize = 256 * 1024;

/// Which listener a session came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Port 25: mail from the Internet for the local domains.
    Mx,
    /// Port 587: submission, STARTTLS then AUTH.
    Submission,
    /// Port 465: submission over implicit TLS.
    Submissions,
}

impl ListenerKind {
    /// The name in the banner and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Mx => "mx",
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
        }
    }

    fn is_submission(self) -> bool {
        !matches!(self, ListenerKind::Mx)
    }
}

/// What every session of one server shares.
pub struct Shared {
    pub config: SmtpConfig,
    pub hostname: String,
    pub tls: Option<TlsAcceptor>,
    pub ingress: Arc<dyn Ingress>,
    pub authenticator: Arc<dyn Authenticator>,
    pub guard: Arc<Guard>,
    pub verifier: Option<Arc<SenderVerifier>>,
    /// The memory all sessions together may hold for message data.
    pub budget: DataBudget,
}

enum Flow {
    Continue,
    Close,
}

struct Transaction {
    mail: MailParams,
    recipients: Vec<Recipient>,
    /// Set once the first BDAT chunk arrived.
    chunks: Option<(BodyDecoder, BodyBuffer)>,
}

pub struct Session {
    shared: Arc<Shared>,
    kind: ListenerKind,
    conn: Connection,
    peer: IpAddr,
    relay_client: bool,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<TlsInfo>,
    account: Option<Account>,
    tx: Option<Transaction>,
    errors: u32,
    junk: u32,
}

/// A buffer for a message of `expected` bytes (as declared with SIZE), its first bytes
/// reserved from the budget; `None` when the budget is spent.
fn new_body(budget: &DataBudget, expected: Option<u64>, limit: usize) -> Option<BodyBuffer> {
    let hint = expected.and_then(|e| usize::try_from(e).ok()).unwrap_or(64 * 1024).min(limit).min(1 << 20);
    BodyBuffer::new(budget, HEADROOM, hint, limit)
}

/// The answer when the memory budget for message data is spent (RFC 3463 X.3.1, "mail
/// system full"): temporary, so the client keeps the message and retries.
fn storage_full() -> Reply {
    Reply::new(452, "4.3.1", "Error: insufficient system storage; try again later")
}

impl Session {
    pub fn new(shared: Arc<Shared>, kind: ListenerKind, conn: Connection, peer: IpAddr) -> Self {
        let relay_client = shared.config.is_relay_client(peer);
        Session {
            shared,
            kind,
            conn,
            peer,
            relay_client,
            helo: None,
            esmtp: false,
            tls: None,
            account: None,
            tx: None,
            errors: 0,
            junk: 0,
        }
    }

    fn hostname(&self) -> &str {
        &self.shared.hostname
    }

    fn command_deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.shared.config.command_timeout_secs)
    }

    fn data_deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.shared.config.data_timeout_secs)
    }

    fn max_size(&self) -> usize {
        usize::try_from(self.shared.config.max_message_size).unwrap_or(usize::MAX)
    }

    /// Queues a reply, counting failures towards the error limit. Returns `Close` when the
    /// limit is reached (the 421 is already queued).
    fn respond(&mut self, reply: Reply) -> Flow {
        self.conn.reply(&reply);
        if reply.code >= 400 {
            self.errors += 1;
            if self.errors >= self.shared.config.max_errors {
                let bye = Reply::new(421, "4.7.0", format!("{} Error: too many errors", self.hostname()));
                self.conn.reply(&bye);
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        if self.kind == ListenerKind::Submissions && !self.start_tls().await {
            return;
        }
        if let Some(block) = self.shared.guard.blocked(self.peer) {
            self.shared.guard.refused_blocked(self.peer, &block, "smtp").await;
            self.refuse(block.until.map(|u| u.to_rfc3339()), &block.reason).await;
            return;
        }
        self.conn.reply(&Reply::plain(220, format!("{} ESMTP carepost", self.hostname())));
        loop {
            let line = match self.read_command().await {
                Ok(line) => line,
                Err(flow) => match flow {
                    Flow::Continue => continue,
                    Flow::Close => break,
                },
            };
            let flow = match command::parse(&line) {
                Ok(command) => self.handle(command).await,
                Err(reply) => self.respond(reply),
            };
            if let Flow::Close = flow {
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        self.conn.close(deadline).await;
    }

    /// Reads one command line; on failure queues the reply that goes with it.
    async fn read_command(&mut self) -> Result<Vec<u8>, Flow> {
        let deadline = self.command_deadline();
        match self.conn.read_line(MAX_COMMAND_LINE, deadline).await {
            Ok(line) => Ok(line),
            Err(ReadError::TooLong) => Err(self.respond(Reply::new(500, "5.5.2", "Error: line too long"))),
            Err(e) => Err(self.fatal(e)),
        }
    }

    /// The reply, if any, to a read error after which the session ends.
    fn fatal(&mut self, e: ReadError) -> Flow {
        let host = self.hostname().to_owned();
        let reply = match e {
            ReadError::Timeout => Some(Reply::new(421, "4.4.2", format!("{host} Error: timeout exceeded"))),
            ReadError::Shutdown => {
                Some(Reply::new(421, "4.3.2", format!("{host} Service shutting down, closing transmission channel")))
            }
            ReadError::BareLf => Some(Reply::new(500, "5.5.2", "Error: bare <LF> received")),
            ReadError::BareCr => Some(Reply::new(500, "5.5.2", "Error: bare <CR> received")),
            ReadError::TooLong => Some(Reply::new(500, "5.5.2", "Error: line too long")),
            ReadError::Closed | ReadError::Io(_) => None,
        };
        if let Some(reply) = reply {
            tracing::debug!(listener = self.kind.name(), reply = %reply, "session ends");
            self.conn.reply(&reply);
        }
        Flow::Close
    }

    /// A blocked client: 554 instead of a greeting, then nothing but QUIT (RFC 5321 section
    /// 3.1 asks the server to wait for it).
    async fn refuse(&mut self, until: Option<String>, reason: &str) {
        let until = until.map(|u| format!(" until {u}")).unwrap_or_default();
        let reply = Reply::new(
            554,
            "5.7.1",
            format!("Service unavailable; client host [{}] blocked{until}: {reason}", self.peer),
        );
        self.conn.reply(&reply);
        tracing::info!(listener = self.kind.name(), "refused a blocked client");
        loop {
            match self.read_command().await {
                Ok(line) if matches!(command::parse(&line), Ok(Command::Quit)) => {
                    self.conn.reply(&Reply::new(221, "2.0.0", "Bye"));
                    break;
                }
                Ok(_) => {
                    if let Flow::Close = self.respond(Reply::new(503, "5.5.1", "Error: access denied")) {
                        break;
                    }
                }
                Err(Flow::Continue) => continue,
                Err(Flow::Close) => break,
            }
        }
        self.conn.close(Instant::now() + Duration::from_secs(10)).await;
    }

    fn junk(&mut self, reply: Reply) -> Flow {
        self.junk += 1;
        if self.junk > JUNK_LIMIT {
            self.errors += 1;
        }
        self.respond(reply)
    }

    async fn handle(&mut self, command: Command) -> Flow {
        match command {
            Command::Ehlo(host) => self.hello(host, true),
            Command::Helo(host) => self.hello(host, false),
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial).await,
            Command::Mail(params) => {
                let reply = self.mail(params);
                self.respond(reply)
            }
            Command::Rcpt(recipient) => {
                let reply = self.rcpt(recipient);
                self.respond(reply)
            }
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::Rset => {
                self.tx = None;
                self.junk(Reply::new(250, "2.0.0", "Ok"))
            }
            Command::Noop => self.junk(Reply::new(250, "2.0.0", "Ok")),
            Command::Vrfy => {
                self.junk(Reply::new(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"))
            }
            Command::Help => self.junk(Reply::new(214, "2.0.0", "See RFC 5321; carepost speaks ESMTP")),
            Command::Expn | Command::NotImplemented => {
                self.respond(Reply::new(502, "5.5.1", "Error: command not implemented"))
            }
            Command::Quit => {
                self.conn.reply(&Reply::new(221, "2.0.0", "Bye"));
                Flow::Close
            }
        }
    }

    fn hello(&mut self, host: String, esmtp: bool) -> Flow {
        self.tx = None;
        self.helo = Some(host);
        self.esmtp = esmtp;
        if !esmtp {
            let reply = Reply::plain(250, self.hostname().to_owned());
            return self.respond(reply);
        }
        let mut lines = vec![
            self.hostname().to_owned(),
            "PIPELINING".into(),
            format!("SIZE {}", self.shared.config.max_message_size),
        ];
        if self.tls.is_none() && self.shared.tls.is_some() {
            lines.push("STARTTLS".into());
        }
        if self.kind.is_submission() && self.tls.is_some() && self.account.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.extend(["ENHANCEDSTATUSCODES".into(), "8BITMIME".into(), "DSN".into(), "SMTPUTF8".into()]);
        if self.tls.is_some() {
            lines.push("REQUIRETLS".into());
        }
        lines.push("CHUNKING".into());
        self.respond(Reply::plain(250, lines.join("\n")))
    }

    async fn starttls(&mut self) -> Flow {
        if self.tls.is_some() {
            return self.respond(Reply::new(554, "5.5.1", "Error: TLS already active"));
        }
        if self.shared.tls.is_none() {
            return self.respond(Reply::new(502, "5.5.1", "Error: command not implemented"));
        }
        self.conn.reply(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        if self.start_tls().await {
            // RFC 3207 section 4.2: forget everything learnt before TLS.
            self.helo = None;
            self.esmtp = false;
            self.tx = None;
            self.account = None;
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    /// Runs a TLS handshake on the connection. False when it failed (the session ends).
    async fn start_tls(&mut self) -> bool {
        let Some(acceptor) = self.shared.tls.clone() else { return false };
        let (io, dropped) = match self.conn.take_for_tls().await {
            Ok(taken) => taken,
            Err(_) => return false,
        };
        if dropped > 0 {
            tracing::info!(listener = self.kind.name(), bytes = dropped, "discarded input pipelined after STARTTLS");
        }
        let handshake = tokio::time::timeout_at(self.command_deadline(), acceptor.accept(io)).await;
        match handshake {
            Ok(Ok(stream)) => {
                self.tls = Some(crate::tls::negotiated(stream.get_ref().1));
                self.conn.set_io(Box::new(stream));
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(listener = self.kind.name(), error = %e, "TLS handshake failed");
                false
            }
            Err(_) => {
                tracing::debug!(listener = self.kind.name(), "TLS handshake timed out");
                false
            }
        }
    }

    /// Reads one AUTH continuation line, without CRLF. `Err` ends the exchange.
    async fn auth_response(&mut self, challenge: &str) -> Result<String, Flow> {
        self.conn.reply(&Reply::plain(334, challenge));
        let line = self.read_command().await?;
        let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).trim().to_owned();
        if text == "*" {
            return Err(self.respond(Reply::new(501, "5.7.0", "Authentication aborted")));
        }
        Ok(text)
    }

    fn decode(&mut self, b64: &str) -> Result<Vec<u8>, Flow> {
        sasl::decode(b64).map_err(|_| self.respond(Reply::new(501, "5.5.2", "Cannot decode the response as base64")))
    }

    async fn credentials(
        &mut self,
        mechanism: Mechanism,
        initial: Option<String>,
    ) -> Result<Option<(String, String)>, Flow> {
        match mechanism {
            Mechanism::Plain => {
                let response = match initial {
                    Some(r) => r,
                    None => self.auth_response("").await?,
                };
                let decoded = self.decode(&response)?;
                Ok(sasl::plain(&decoded).ok())
            }
            Mechanism::Login => {
                let user = match initial {
                    Some(r) => r,
                    None => self.auth_response(&sasl::encode("Username:")).await?,
                };
                let user = self.decode(&user)?;
                let password = self.auth_response(&sasl::encode("Password:")).await?;
                let password = self.decode(&password)?;
                Ok(sasl::login_field(&user).ok().zip(sasl::login_field(&password).ok()))
            }
        }
    }

    async fn auth(&mut self, mechanism: Option<Mechanism>, initial: Option<String>) -> Flow {
        if !self.kind.is_submission() {
            return self.respond(Reply::new(503, "5.5.1", "Error: authentication not enabled"));
        }
        if self.tls.is_none() {
            return self.respond(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ));
        }
        if self.account.is_some() {
            return self.respond(Reply::new(503, "5.5.1", "Error: already authenticated"));
        }
        if self.tx.is_some() {
            return self.respond(Reply::new(503, "5.5.1", "Error: MAIL transaction in progress"));
        }
        if !self.esmtp {
            return self.respond(Reply::new(503, "5.5.1", "Error: send EHLO first"));
        }
        let Some(mechanism) = mechanism else {
            return self.respond(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
        };
        let mech_name = match mechanism {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        };
        let (login, password) = match self.credentials(mechanism, initial).await {
            Ok(Some(pair)) => pair,
            Ok(None) => (String::new(), String::new()),
            Err(flow) => return flow,
        };
        // Every refusal reads the same, whatever its reason (unknown, locked, wrong, a
        // password that needs a second factor, a login refused from this client).
        let failed = Reply::new(535, "5.7.8", "Error: authentication failed");
        if login.is_empty() {
            return self.auth_failed(&login, mech_name, None).await;
        }
        let guard = self.shared.guard.clone();
        if guard.login_refused(self.peer, &login) {
            guard.refused_login(self.peer, &login, mech_name).await;
            return self.respond(failed);
        }
        match self.shared.authenticator.authenticate(&login, &password).await {
            Ok(Ok(signed)) => {
                guard.signed_in(self.peer, &login, &signed.account.id, mech_name, signed.app_password.as_deref()).await;
                tracing::info!(listener = self.kind.name(), account = %signed.account.id, "signed in");
                self.account = Some(signed.account);
                self.respond(Reply::new(235, "2.7.0", "Authentication successful"))
            }
            Ok(Err(refused)) => self.auth_failed(&login, mech_name, Some(refused)).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot check credentials");
                self.respond(Reply::new(454, "4.7.0", "Temporary authentication failure"))
            }
        }
    }

    /// A refused AUTH: counted and audited by the guard, answered 535, and the session closed
    /// when this failure blocked the client.
    async fn auth_failed(&mut self, login: &str, mech_name: &str, refused: Option<crate::accounts::Refused>) -> Flow {
        let guard = self.shared.guard.clone();
        let blocked = match &refused {
            Some(r) => {
                let outcome =
                    if r.because.denied() { carepost_audit::Outcome::Denied } else { carepost_audit::Outcome::Failure };
                let locked = if r.locked_now { "true" } else { "false" };
                let details = [("reason", r.because.as_str()), ("locked_now", locked)];
                let blocked =
                    guard.failed_with(self.peer, login, mech_name, r.account_id.as_deref(), outcome, &details).await;
                if r.locked_now
                    && let Some(id) = &r.account_id
                {
                    guard.account_locked(self.peer, id).await;
                }
                blocked
            }
            None => guard.failed(self.peer, login, mech_name).await,
        };
        let flow = self.respond(Reply::new(535, "5.7.8", "Error: authentication failed"));
        if blocked.is_some() {
            let reply = Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many failed authentications; try again later", self.hostname()),
            );
            self.conn.reply(&reply);
            return Flow::Close;
        }
        flow
    }

    fn mail(&mut self, params: MailParams) -> Reply {
        if self.helo.is_none() {
            return Reply::new(503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.tx.is_some() {
            return Reply::new(503, "5.5.1", "Error: nested MAIL command");
        }
        if params.extended && !self.esmtp {
            return Reply::new(555, "5.5.4", "Unsupported option: ESMTP parameters need EHLO");
        }
        if self.kind.is_submission() && self.account.is_none() && !self.relay_client {
            return if self.tls.is_none() {
                Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
            } else {
                Reply::new(530, "5.7.0", "Authentication required")
            };
        }
        if params.size.is_some_and(|s| s > self.shared.config.max_message_size) {
            return Reply::new(552, "5.3.4", "Message size exceeds fixed limit");
        }
        // RFC 1870 section 6.1: a declared size that cannot be held now is refused at once,
        // before the client sends it. Nothing is reserved yet: memory is taken as data arrives.
        if params.size.is_some_and(|s| usize::try_from(s).map_or(true, |s| s > self.shared.budget.available())) {
            tracing::warn!(
                listener = self.kind.name(),
                in_use = self.shared.budget.in_use(),
                "message data memory is full"
            );
            return storage_full();
        }
        if params.require_tls && self.tls.is_none() {
            return Reply::new(530, "5.7.10", "REQUIRETLS needs a TLS session");
        }
        if let Some(account) = &self.account {
            let owned = params.sender.as_ref().is_some_and(|s| carepost_identity::may_send_as(account, s));
            if !owned {
                let shown = params.sender.as_ref().map(|s| s.to_string()).unwrap_or_default();
                return Reply::new(
                    553,
                    "5.7.1",
                    format!("<{shown}>: Sender address rejected: not owned by user {}", account.login),
                );
            }
        }
        self.tx = Some(Transaction { mail: params, recipients: Vec::new(), chunks: None });
        Reply::new(250, "2.1.0", "Ok")
    }

    fn rcpt(&mut self, recipient: Recipient) -> Reply {
        let may_relay = self.account.is_some() || self.relay_client;
        let max = self.shared.config.max_recipients;
        let local = self.shared.config.is_local_domain(recipient.address.domain());
        let kind = self.kind;
        let Some(tx) = self.tx.as_mut() else {
            return Reply::new(503, "5.5.1", "Error: need MAIL command");
        };
        if tx.chunks.is_some() {
            return Reply::new(503, "5.5.1", "Error: BDAT transfer in progress");
        }
        if tx.recipients.len() >= max {
            return Reply::new(452, "4.5.3", "Error: too many recipients");
        }
        if recipient.address.is_utf8() && !tx.mail.smtputf8 {
            return Reply::new(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address");
        }
        if !(may_relay || kind == ListenerKind::Mx && local) {
            return Reply::new(554, "5.7.1", format!("<{}>: Relay access denied", recipient.address));
        }
        tx.recipients.push(recipient);
        Reply::new(250, "2.1.5", "Ok")
    }

    /// Why the current transaction cannot take message data, if it cannot.
    fn data_refusal(&self, bdat: bool) -> Option<Reply> {
        match &self.tx {
            None => Some(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            Some(tx) if tx.recipients.is_empty() => Some(Reply::new(554, "5.5.1", "Error: no valid recipients")),
            Some(tx) if !bdat && tx.chunks.is_some() => {
                Some(Reply::new(503, "5.5.1", "Error: BDAT transfer in progress"))
            }
            Some(_) => None,
        }
    }

    async fn data(&mut self) -> Flow {
        if let Some(reply) = self.data_refusal(false) {
            return self.respond(reply);
        }
        let declared = self.tx.as_ref().and_then(|t| t.mail.size);
        let Some(mut body) = new_body(&self.shared.budget, declared, self.max_size()) else {
            tracing::warn!(
                listener = self.kind.name(),
                in_use = self.shared.budget.in_use(),
                "message data memory is full"
            );
            return self.respond(storage_full());
        };
        self.conn.reply(&Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
        let mut decoder = BodyDecoder::data(self.max_size(), self.shared.config.max_line_length);
        let deadline = self.data_deadline();
        if let Err(e) = self.conn.read_data(&mut decoder, &mut body, deadline).await {
            return self.fatal(e);
        }
        self.finish(decoder, body).await
    }

    async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let mut refusal = self.data_refusal(true);
        let deadline = self.data_deadline();
        let max_size = self.max_size();
        let max_line = self.shared.config.max_line_length;
        let started = match self.tx.as_mut() {
            Some(tx) if refusal.is_none() => match tx.chunks.take() {
                Some(started) => Some(started),
                None => match new_body(&self.shared.budget, tx.mail.size, max_size) {
                    Some(body) => Some((BodyDecoder::bdat(max_size, max_line), body)),
                    None => {
                        tracing::warn!(
                            listener = self.kind.name(),
                            in_use = self.shared.budget.in_use(),
                            "message data memory is full"
                        );
                        self.tx = None;
                        refusal = Some(storage_full());
                        None
                    }
                },
            },
            _ => None,
        };
        let Some((mut decoder, mut body)) = started else {
            // The chunk is on its way whatever the reply: read and drop it (RFC 3030).
            let mut sink = BodyDecoder::bdat(0, usize::MAX);
            if let Err(e) = self.conn.read_chunk(size, &mut sink, &mut BodyBuffer::sink(), deadline).await {
                return self.fatal(e);
            }
            return self.respond(refusal.unwrap_or_else(|| Reply::new(503, "5.5.1", "Error: need MAIL command")));
        };
        if let Err(e) = self.conn.read_chunk(size, &mut decoder, &mut body, deadline).await {
            return self.fatal(e);
        }
        if last {
            decoder.finish();
            return self.finish(decoder, body).await;
        }
        if decoder.problem().is_some() || body.over_budget() {
            return self.finish(decoder, body).await;
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.chunks = Some((decoder, body));
        }
        self.respond(Reply::new(250, "2.0.0", format!("{size} octets received")))
    }

    /// A complete message (or one that went wrong on the way): check, trace, hand over.
    async fn finish(&mut self, decoder: BodyDecoder, body: BodyBuffer) -> Flow {
        let Some(tx) = self.tx.take() else {
            return self.respond(Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        match decoder.problem() {
            Some(BodyProblem::BareLf) | Some(BodyProblem::BareCr) => {
                // The SMTP smuggling defence: the data is refused and the session ends, so
                // whatever was hidden behind a bare line ending is never read as commands.
                let which = if decoder.problem() == Some(BodyProblem::BareLf) { "<LF>" } else { "<CR>" };
                tracing::warn!(listener = self.kind.name(), "refused message data with a bare {which}");
                self.conn.reply(&Reply::new(550, "5.5.2", format!("Error: bare {which} received in message data")));
                let actor =
                    self.account.as_ref().map(|a| format!("account:{}", a.id)).unwrap_or_else(|| "smtp".to_owned());
                let event = carepost_audit::Event::new(actor, "smtp.smuggling")
                    .target(format!("ip:{}", self.peer))
                    .ip(Some(self.peer))
                    .detail("listener", self.kind.name())
                    .detail("reason", format!("bare {which} in message data"));
                let guard = self.shared.guard.clone();
                guard.audit_refusal(event).await;
                return Flow::Close;
            }
            Some(BodyProblem::TooBig) => return self.respond(Reply::new(552, "5.3.4", "Error: message file too big")),
            Some(BodyProblem::LineTooLong) => {
                let max = self.shared.config.max_line_length;
                return self.respond(Reply::new(
                    554,
                    "5.6.0",
                    format!("Error: message has a line longer than {max} octets"),
                ));
            }
            None => {}
        }
        if body.over_budget() {
            tracing::warn!(
                listener = self.kind.name(),
                in_use = self.shared.budget.in_use(),
                "message data memory is full"
            );
            return self.respond(storage_full());
        }
        // The reservation is held until intake has made the message durable (or refused it).
        let (body, _reservation) = body.into_parts();
        if let Some((reply, event)) = self.foreign_header_from(&body) {
            let guard = self.shared.guard.clone();
            guard.audit_refusal(event).await;
            return self.respond(reply);
        }
        let Transaction { mail, recipients, .. } = tx;
        let authenticated = self.account.is_some();
        let source = if authenticated {
            Source::Submission
        } else if self.relay_client {
            Source::Relay
        } else {
            Source::Mx
        };
        let verifier = if source == Source::Mx { self.shared.verifier.clone() } else { None };
        let helo = self.helo.clone().unwrap_or_default();
        let (body, verdict) = match verify_sender(verifier, helo, self.peer, mail.sender.as_ref(), body).await {
            Ok(checked) => checked,
            Err(reply) => return self.respond(reply),
        };
        let mut sender_auth: Option<SenderAuthentication> = None;
        let mut auth_header = String::new();
        if let Some(v) = verdict {
            if let Some(reply) = v.reject {
                tracing::info!(listener = self.kind.name(), "refused a message failing DMARC");
                return self.respond(reply);
            }
            auth_header = v.header;
            sender_auth = Some(v.result);
        }
        let trace = Trace {
            helo: self.helo.as_deref(),
            client_ip: self.peer,
            hostname: &self.shared.hostname,
            esmtp: self.esmtp,
            tls: self.tls.as_ref(),
            authenticated,
            smtputf8: mail.smtputf8,
        };
        let mut prefix = received::header(&trace, time::OffsetDateTime::now_utc());
        prefix.push_str(&auth_header);
        let message = prepend(body, prefix.as_bytes());
        let size = message.len();
        let recipient_count = recipients.len();
        let accepted = AcceptedMessage {
            tenant: self.account.as_ref().map(|a| a.tenant.clone()).unwrap_or_else(TenantId::default_tenant),
            envelope: Envelope {
                mail_from: mail.sender,
                recipients,
                dsn_ret: mail.ret,
                dsn_envid: mail.envid,
                require_tls: mail.require_tls,
                smtputf8: mail.smtputf8,
                body: mail.body,
            },
            arrival: Arrival {
                source,
                client_ip: Some(carepost_model::canonical_ip(self.peer)),
                helo: self.helo.clone(),
                authenticated_as: self.account.as_ref().map(|a| a.login.clone()),
                tls: self.tls.clone(),
                sender_auth,
            },
            message,
        };
        match self.shared.ingress.accept(accepted).await {
            Ok(id) => {
                tracing::info!(listener = self.kind.name(), id = %id, size, recipients = recipient_count, source = source.as_str(), "accepted");
                self.respond(Reply::new(250, "2.0.0", format!("Ok: queued as {id}")))
            }
            Err(rejection) => {
                tracing::info!(listener = self.kind.name(), reply = %rejection, "message not taken");
                self.respond(rejection.reply())
            }
        }
    }
}

impl Session {
    /// On submission, the refusal of a message whose From header names an address the
    /// account may not use: carepost signs by that header, so MAIL FROM alone proves nothing
    /// (a user could otherwise have mail signed as any address of the domain). A From that
    /// cannot be read as addresses, or more than one From field, is refused too: mail clients
    /// would still show it to local recipients as the author. A message with no From at all
    /// is let through; it is not signed. The audit record comes back with the reply.
    fn foreign_header_from(&self, body: &[u8]) -> Option<(Reply, carepost_audit::Event)> {
        let account = self.account.as_ref()?;
        let message = body.get(HEADROOM..).unwrap_or_default();
        let Some(from) = carepost_model::header::header_from(message) else {
            if !carepost_model::header::has_from_field(message) {
                return None;
            }
            tracing::info!(listener = self.kind.name(), account = %account.id, "refused an unreadable or repeated From header");
            let event = carepost_audit::Event::new(format!("account:{}", account.id), "smtp.sender")
                .target(format!("account:{}", account.id))
                .ip(Some(self.peer))
                .detail("reason", "header From unreadable or repeated");
            let reply = Reply::new(
                550,
                "5.7.1",
                "From header rejected: it must be exactly one field naming the sender's address",
            );
            return Some((reply, event));
        };
        let foreign = from
            .iter()
            .find(|a| !carepost_model::Address::parse(a).is_ok_and(|a| carepost_identity::may_send_as(account, &a)))?;
        tracing::info!(listener = self.kind.name(), account = %account.id, "refused a From header the account may not use");
        let event = carepost_audit::Event::new(format!("account:{}", account.id), "smtp.sender")
            .target(format!("account:{}", account.id))
            .ip(Some(self.peer))
            .detail("reason", "header From not owned")
            .detail_hashed("from", foreign.as_bytes());
        Some((
            Reply::new(550, "5.7.1", format!("<{foreign}>: From header rejected: not owned by user {}", account.login)),
            event,
        ))
    }
}

/// SPF, DKIM, ARC and DMARC of a message from the Internet (no verifier: nothing to do).
async fn verify_sender(
    verifier: Option<Arc<SenderVerifier>>,
    helo: String,
    ip: IpAddr,
    sender: Option<&carepost_model::Address>,
    body: Vec<u8>,
) -> Result<(Vec<u8>, Option<crate::inbound::Verdict>), Reply> {
    let Some(verifier) = verifier else { return Ok((body, None)) };
    if body.len() - HEADROOM <= VERIFY_INLINE_MAX {
        let verdict = verifier.verify(ip, &helo, sender, &body[HEADROOM..]).await;
        return Ok((body, Some(verdict)));
    }
    let sender = sender.cloned();
    let handle = tokio::runtime::Handle::current();
    let work = tokio::task::spawn_blocking(move || {
        let verdict = handle.block_on(verifier.verify(ip, &helo, sender.as_ref(), &body[HEADROOM..]));
        (body, verdict)
    });
    match work.await {
        Ok((body, verdict)) => Ok((body, Some(verdict))),
        Err(e) => {
            tracing::error!(error = %e, "sender verification failed to run");
            Err(Reply::new(451, "4.3.0", "Error: temporary failure checking the sender; try again later"))
        }
    }
}

/// Puts `prefix` in front of the message held after `HEADROOM` in `body`, without copying the
/// message when the prefix fits the headroom.
fn prepend(mut body: Vec<u8>, prefix: &[u8]) -> Bytes {
    if body.len() < HEADROOM {
        return Bytes::copy_from_slice(prefix);
    }
    if prefix.len() <= HEADROOM {
        let start = HEADROOM - prefix.len();
        body[start..HEADROOM].copy_from_slice(prefix);
        Bytes::from(body).slice(start..)
    } else {
        let mut joined = Vec::with_capacity(prefix.len() + body.len() - HEADROOM);
        joined.extend_from_slice(prefix);
        joined.extend_from_slice(&body[HEADROOM..]);
        Bytes::from(joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepending_uses_the_headroom() {
        let (mut body, _reservation) = new_body(&DataBudget::new(100), None, 100).unwrap().into_parts();
        body.extend_from_slice(b"Subject: x\r\n\r\nhi\r\n");
        let m = prepend(body.clone(), b"Received: a\r\n");
        assert_eq!(&m[..], b"Received: a\r\nSubject: x\r\n\r\nhi\r\n");
        let big = vec![b'h'; HEADROOM + 1];
        let m = prepend(body, &big);
        assert_eq!(m.len(), HEADROOM + 1 + 18);
    }
}
