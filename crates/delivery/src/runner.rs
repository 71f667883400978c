//! The queue runner: claims due recipients from the durable queue in batches, sorts them into
//! one queue per destination, and delivers each destination's mail over a bounded number of
//! reused connections. Every attempt is audited; every outcome is written back in group
//! commits; nothing leaves the queue without a recorded reason.
//!
//! Outcomes per recipient:
//! - delivered: state `delivered`, a success DSN when NOTIFY=SUCCESS asked and the next hop
//!   does not take the request over;
//! - deferred: retried with back-off; a delay notice after `delay_notice_after`; returned to
//!   the sender after `max_lifetime`;
//! - failed: state `bounced`, a DSN quoting the remote reply, hard bounces suppressed;
//! - needs protected fallback: the hop cannot give the verified TLS the decision demands;
//!   the plan's next step follows: the secure portal, held for an operator, or bounced.
//!
//! Which way each recipient's copy goes is policy's decision, carried out as its plan: S/MIME
//! or PGP/MIME when the key directory has a usable key, verified TLS, the transport, or the
//! portal. A plan never ends in plaintext.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use carepost_audit::{Event, Outcome as AuditOutcome};
use carepost_model::{Address, Arrival, BodyType, DsnNotify, Envelope, Timestamp};
use carepost_store::StoreError;
use carepost_store::queue::{self, RecipientRow, RecipientUpdate, state};
use futures::StreamExt;
use rustls_pki_types::CertificateDer;
use tokio::sync::{Notify, OnceCell, Semaphore, watch};

use crate::client::{
    ClientError, ConnectSpec, Credentials, Outgoing, OutgoingRcpt, Reply, SmtpConnection, Timeouts, TlsSummary,
};
use crate::config::DeliveryConfig;
use crate::decision::{self, Decision, Step};
use crate::dns::Dns;
use crate::dsn::{self, Action, DsnRecipient};
use crate::protect::{EndToEnd, Transform};
use crate::routing::{self, Route, RouteKind, RoutingError};
use crate::suppression::{self, SuppressionReason};
use crate::tls_policy::mta_sts::{MtaSts, StsFetchOptions};
use crate::tls_policy::{self, HostPolicy, TlsContext, TlsDemand};
use crate::tls_rpt::{self, ReportedPolicy, TlsRptCollector};
use crate::{OpenedMessage, Spool, Submission, dkim, retry};
use carepost_policy::{Capabilities, Method};
use carepost_secure::config::OrganizationSigners;
use carepost_secure::directory::KeyDirectory;
use mail_auth::report::tlsrpt::{PolicyType, ResultType};

/// What the runner needs besides its configuration: the resolver, trust roots and test
/// hooks. Production uses [`RunnerEnv::production`].
/// The shortest `delivery.lease` the runner uses: it renews its leases every third of the
/// lease, so a shorter one would turn renewal into a busy loop. Several nodes on one store may
/// set a lease this short so that a dead node's deliveries are taken over quickly.
pub const LEASE_FLOOR_SECS: u64 = 5;

pub struct RunnerEnv {
    pub dns: Arc<dyn Dns>,
    /// The name carepost reports in DSNs and (unless `helo_name` is set) says in EHLO.
    pub hostname: String,
    /// The SMTP port of MX hosts: 25, except in tests.
    pub mx_port: u16,
    /// Trusted roots besides the public web roots (`tls_ca_file`, or a test CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// How MTA-STS policy hosts are reached.
    pub sts_fetch: StsFetchOptions,
    /// The smart host password (from `smart_host_password_file`).
    pub smart_host_password: Option<String>,
    /// How long a stopping runner waits for deliveries in progress.
    pub shutdown_grace: Duration,
    /// The recipient key directory, for S/MIME and OpenPGP (none: no end-to-end encryption).
    pub keys: Option<KeyDirectory>,
    /// The organization's signing identities for S/MIME and PGP/MIME.
    pub signers: Arc<OrganizationSigners>,
    /// Where copies go when their plan reaches the secure portal (none: they are held).
    pub portal: Option<carepost_secure::portal::Portal>,
}

/// What makes two recipients' copies identical: the route, whether it is TLS-only, and the
/// transform's cache key. Recipients with the same shape share one SMTP transaction.
type CopyShape = (Route, bool, String);

impl RunnerEnv {
    pub fn production(dns: Arc<dyn Dns>, hostname: &str) -> Self {
        RunnerEnv {
            dns,
            hostname: hostname.to_owned(),
            mx_port: 25,
            extra_roots: Vec::new(),
            sts_fetch: StsFetchOptions::default(),
            smart_host_password: None,
            shutdown_grace: Duration::from_secs(30),
            keys: None,
            signers: Arc::new(OrganizationSigners::default()),
            portal: None,
        }
    }
}

impl RunnerEnv {
    /// The environment `serve` runs with: carepost's resolver (DNSSEC-validating unless
    /// turned off), `tls_ca_file` roots, and the smart host password file. Relative paths
    /// are resolved by `in_data_dir`.
    pub fn from_config(
        config: &DeliveryConfig,
        hostname: &str,
        in_data_dir: impl Fn(&std::path::Path) -> std::path::PathBuf,
    ) -> Result<Self, RunnerError> {
        let servers = config
            .dns_servers
            .iter()
            .map(|s| {
                crate::dns::parse_server(s)
                    .ok_or_else(|| RunnerError::Config(format!("dns_servers: '{s}' is not ip or ip:port")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dns =
            crate::dns::HickoryDns::new(&servers, config.dnssec).map_err(|e| RunnerError::Config(e.to_string()))?;
        let mut env = RunnerEnv::production(Arc::new(dns), hostname);
        if !config.tls_ca_file.as_os_str().is_empty() {
            use rustls_pki_types::pem::PemObject;
            let path = in_data_dir(&config.tls_ca_file);
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| RunnerError::Config(format!("tls_ca_file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(RunnerError::Config(format!("tls_ca_file {}: no certificate in it", path.display())));
            }
            env.extra_roots = certs;
        }
        if !config.smart_host_password_file.as_os_str().is_empty() {
            let path = in_data_dir(&config.smart_host_password_file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| RunnerError::Config(format!("smart_host_password_file {}: {e}", path.display())))?;
            env.smart_host_password = Some(text.lines().next().unwrap_or("").to_owned());
        }
        Ok(env)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Tls(#[from] tls_policy::TlsSetupError),
    #[error(transparent)]
    Sts(#[from] tls_policy::mta_sts::StsError),
    #[error("delivery configuration: {0}")]
    Config(String),
}

/// The remote end of an attempt, as the audit log and DSNs name it.
#[derive(Debug, Clone, Default)]
struct Remote {
    host: String,
    ip: Option<IpAddr>,
    tls: Option<TlsSummary>,
    /// The server takes over DSN requests (it advertised DSN).
    dsn: bool,
}

/// What became of one recipient in one attempt.
#[derive(Debug, Clone)]
enum Outcome {
    /// `protection` names the end-to-end encryption, if the copy had one.
    Delivered {
        reply: Reply,
        remote: Remote,
        protection: Option<&'static str>,
    },
    Deferred {
        reason: String,
        status: String,
        reply: Option<Reply>,
        remote: Option<Remote>,
    },
    Failed {
        reason: String,
        status: String,
        reply: Option<Reply>,
        remote: Option<Remote>,
    },
    /// The hop cannot give the verified TLS this recipient's decision demands: the plan's
    /// next step decides (see `Inner::resolve`).
    NeedsProtectedFallback {
        reason: String,
        remote: Option<Remote>,
    },
    /// The plan sends this copy through the secure portal.
    ToPortal {
        reason: String,
    },
    /// Handed to the secure portal, notices queued.
    ViaPortal,
    /// Kept for an operator (`carepost queue release`), with the reason.
    Held {
        reason: String,
    },
    Suppressed,
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Failed { .. } => "bounced",
            Outcome::NeedsProtectedFallback { .. } | Outcome::Held { .. } | Outcome::ToPortal { .. } => "held",
            Outcome::ViaPortal => "portal",
            Outcome::Suppressed => "suppressed",
        }
    }

    fn remote(&self) -> Option<&Remote> {
        match self {
            Outcome::Delivered { remote, .. } => Some(remote),
            Outcome::Deferred { remote, .. }
            | Outcome::Failed { remote, .. }
            | Outcome::NeedsProtectedFallback { remote, .. } => remote.as_ref(),
            Outcome::Suppressed | Outcome::ToPortal { .. } | Outcome::ViaPortal | Outcome::Held { .. } => None,
        }
    }

    fn from_reply(reply: Reply, remote: &Remote) -> Outcome {
        let status = reply.status();
        if reply.is_positive() {
            Outcome::Delivered { reply, remote: remote.clone(), protection: None }
        } else if reply.is_permanent() {
            let reason = if reply.local {
                reply.text.clone()
            } else {
                "the recipient's mail server refused the message".to_owned()
            };
            Outcome::Failed { reason, status, reply: Some(reply), remote: Some(remote.clone()) }
        } else {
            let reason = if reply.local {
                reply.text.clone()
            } else {
                "the recipient's mail server asked to try again later".to_owned()
            };
            Outcome::Deferred { reason, status, reply: Some(reply), remote: Some(remote.clone()) }
        }
    }
}

/// A message being delivered: opened once, its body loaded and signed once.
struct MessageCtx {
    opened: OpenedMessage,
    /// The message as stored.
    stored: OnceCell<Result<Bytes, String>>,
    /// The stored message, DKIM-signed: what recipients without a transform get.
    body: OnceCell<Result<Bytes, String>>,
}

impl MessageCtx {
    fn new(opened: OpenedMessage) -> Arc<Self> {
        Arc::new(MessageCtx { opened, stored: OnceCell::new(), body: OnceCell::new() })
    }
}

/// Recipients of one message that travel together over one transaction.
struct Job {
    message: Arc<MessageCtx>,
    /// Positions in `message.opened.recipients`.
    rcpts: Vec<usize>,
    require_verified: bool,
    /// What policy does to these recipients' copy before signing; shared only by recipients
    /// whose copies come out the same.
    transform: Arc<Transform>,
}

struct DestState {
    jobs: VecDeque<Job>,
    workers: usize,
}

struct Destination {
    route: Route,
    state: Mutex<DestState>,
    wake: Notify,
}

/// An open connection and what it can do.
struct Session {
    conn: SmtpConnection,
    remote: Remote,
}

/// Why no connection could be had, for every job waiting on the destination.
struct SessionFailure {
    permanent: bool,
    status: &'static str,
    reason: String,
    /// The failure was the peer's inability to give the TLS the hop requires.
    tls: bool,
    remote: Option<Remote>,
}

struct Inner {
    spool: Spool,
    config: DeliveryConfig,
    env: RunnerEnv,
    helo: String,
    tls: TlsContext,
    sts: MtaSts,
    signer: dkim::Signer,
    auth: Option<Credentials>,
    destinations: Mutex<HashMap<Route, Arc<Destination>>>,
    /// Recipients this process holds in memory, so a re-claim after a lease expiry is not
    /// delivered twice by the same process.
    claimed: Mutex<HashSet<(String, i64)>>,
    connections: Arc<Semaphore>,
    progress: Notify,
    /// TLS session counts for RFC 8460 reports, when `tls_rpt` is on.
    tls_rpt: Option<TlsRptCollector>,
    reporting: AtomicBool,
    http: reqwest::Client,
    stopping: AtomicBool,
    workers: AtomicUsize,
    workers_done: Notify,
}

/// The outbound queue runner. Cheap to clone.
#[derive(Clone)]
pub struct QueueRunner {
    inner: Arc<Inner>,
}

impl QueueRunner {
    pub fn new(spool: Spool, config: DeliveryConfig, env: RunnerEnv) -> Result<Self, RunnerError> {
        let tls = TlsContext::new(&env.extra_roots)?;
        let mut sts_fetch = env.sts_fetch.clone();
        sts_fetch.extra_roots_der.extend(env.extra_roots.iter().map(|c| c.as_ref().to_vec()));
        let sts = MtaSts::new(config.mta_sts_timeout.duration(), &sts_fetch)?
            .persist_in(spool.store().clone(), spool.ring().clone());
        let auth = if config.smart_host_username.is_empty() {
            None
        } else {
            let password = env
                .smart_host_password
                .clone()
                .ok_or_else(|| RunnerError::Config("smart_host_username is set but there is no password".into()))?;
            Some(Credentials { username: config.smart_host_username.clone(), password })
        };
        if !config.smart_host.is_empty() {
            routing::parse_hop(&config.smart_host, 25).map_err(|e| RunnerError::Config(e.to_string()))?;
        }
        for (domain, hop) in &config.transport {
            if hop != "mx" {
                routing::parse_hop(hop, 25).map_err(|e| RunnerError::Config(format!("transport for {domain}: {e}")))?;
            }
        }
        let helo = if config.helo_name.is_empty() { env.hostname.clone() } else { config.helo_name.clone() };
        let roots = sts_fetch
            .extra_roots_der
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RunnerError::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .user_agent("carepost-tls-rpt")
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| RunnerError::Config(e.to_string()))?;
        let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
        Ok(QueueRunner {
            inner: Arc::new(Inner {
                spool,
                helo,
                tls,
                sts,
                signer: dkim::Signer::default(),
                auth,
                destinations: Mutex::new(HashMap::new()),
                claimed: Mutex::new(HashSet::new()),
                connections,
                progress: Notify::new(),
                tls_rpt: config.tls_rpt.then(TlsRptCollector::default),
                reporting: AtomicBool::new(false),
                http,
                stopping: AtomicBool::new(false),
                workers: AtomicUsize::new(0),
                workers_done: Notify::new(),
                config,
                env,
            }),
        })
    }

    /// Runs until `shutdown` turns true: then stops claiming, lets deliveries in progress
    /// finish within the grace period, and puts back what it had not started.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let inner = &self.inner;
        // On SQLite one serve owns the queue (the data directory lock proves it), so in-flight
        // rows are leftovers of its own last run. On a shared store they are other nodes'
        // live leases: a dead node's run out and are claimed again instead.
        if !inner.spool.store().backend().is_shared() {
            let now = Timestamp::now().as_micros();
            match inner
                .spool
                .store()
                .write(move |tx| Box::pin(async move { queue::requeue_inflight(tx, now).await }))
                .await
            {
                Ok(n) if n > 0 => tracing::info!(recipients = n, "re-queued deliveries interrupted by the last stop"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot re-queue interrupted deliveries"),
            }
        }
        let mut renewed = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            // A live process keeps its leases (a slow delivery must not be claimed again by
            // another node); a dead one's run out. A third of the lease leaves two chances.
            let lease = inner.config.lease.as_secs().max(LEASE_FLOOR_SECS);
            if renewed.elapsed() >= Duration::from_secs(lease / 3) {
                renewed = tokio::time::Instant::now();
                let now = Timestamp::now().as_micros();
                if let Err(e) = inner.spool.store().renew_queue_leases(now, now + lease as i64 * 1_000_000).await {
                    tracing::error!(error = %e, "renewing delivery leases failed");
                }
            }
            let claimed = match self.claim_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "claiming due recipients failed");
                    0
                }
            };
            self.report_tls_when_a_day_ends();
            if claimed >= inner.config.claim_batch.max(1) {
                tokio::task::yield_now().await;
                continue;
            }
            let wait = match inner.spool.store().next_due().await {
                Ok(Some(due)) => {
                    let micros = (due - Timestamp::now().as_micros()).clamp(0, 5_000_000);
                    Duration::from_micros(micros as u64)
                }
                _ => Duration::from_secs(5),
            }
            .max(Duration::from_millis(20));
            tokio::select! {
                _ = inner.spool.wake().notified() => {}
                _ = inner.progress.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.stop().await;
    }

    /// Sends the TLS reports of finished days in the background, once per day change.
    fn report_tls_when_a_day_ends(&self) {
        let Some(collector) = &self.inner.tls_rpt else { return };
        if collector.finished_day(Timestamp::now()).is_none() || self.inner.reporting.swap(true, Ordering::SeqCst) {
            return;
        }
        let runner = self.clone();
        tokio::spawn(async move {
            let sent = runner.send_tls_reports(Timestamp::now()).await;
            tracing::info!(sent, "TLS reports sent");
            runner.inner.reporting.store(false, Ordering::SeqCst);
        });
    }

    /// Sends the TLS reports (RFC 8460) of every day before the one `now` falls in, to the
    /// domains that publish a `_smtp._tls` record. Returns how many reports went out.
    pub async fn send_tls_reports(&self, now: Timestamp) -> usize {
        let inner = &self.inner;
        let Some(collector) = &inner.tls_rpt else { return 0 };
        let today = now.as_micros().div_euclid(86_400_000_000);
        let host = &inner.env.hostname;
        let contact = format!("postmaster@{host}");
        let mut sent = 0;
        for (domain, report) in collector.take_reports(today, host, &contact) {
            let to = tls_rpt::report_addresses(inner.env.dns.as_ref(), &domain).await;
            if !to.is_empty() {
                sent += tls_rpt::deliver(&inner.spool, &inner.http, host, &domain, &report, &to).await;
            }
        }
        sent
    }

    async fn stop(&self) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        let dests: Vec<Arc<Destination>> =
            inner.destinations.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut unstarted = Vec::new();
        for dest in &dests {
            let mut st = dest.state.lock().unwrap_or_else(|p| p.into_inner());
            for job in st.jobs.drain(..) {
                for &i in &job.rcpts {
                    unstarted.push((job.message.opened.row.id.clone(), job.message.opened.recipients[i].row.idx));
                }
            }
            drop(st);
            dest.wake.notify_waiters();
        }
        let deadline = tokio::time::Instant::now() + inner.env.shutdown_grace;
        while inner.workers.load(Ordering::SeqCst) > 0 {
            if tokio::time::timeout_at(deadline, inner.workers_done.notified()).await.is_err() {
                tracing::warn!(
                    workers = inner.workers.load(Ordering::SeqCst),
                    "deliveries still in progress at shutdown; their leases will make them due again"
                );
                break;
            }
        }
        if !unstarted.is_empty() {
            let now = Timestamp::now().as_micros();
            let n = unstarted.len();
            let result = inner
                .spool
                .store()
                .write(move |tx| Box::pin(async move { queue::requeue(tx, &unstarted, now).await }))
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, recipients = n, "cannot put back unstarted deliveries; their leases will");
            }
        }
    }

    /// Claims one batch of due recipients and hands them to their destinations. Returns how
    /// many were claimed.
    pub async fn claim_once(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let max_in_memory = inner.config.claim_batch.max(1) * 8;
        let held = inner.claimed.lock().unwrap_or_else(|p| p.into_inner()).len();
        if held >= max_in_memory {
            return Ok(0);
        }
        let limit = inner.config.claim_batch.max(1).min(max_in_memory - held) as i64;
        let now = Timestamp::now().as_micros();
        let lease_until = now + inner.config.lease.as_secs().max(LEASE_FLOOR_SECS) as i64 * 1_000_000;
        let rows = inner
            .spool
            .store()
            .write(move |tx| Box::pin(async move { queue::claim_due(tx, now, lease_until, limit).await }))
            .await?;
        let count = rows.len();
        let mut by_message: HashMap<String, Vec<RecipientRow>> = HashMap::new();
        {
            let mut claimed = inner.claimed.lock().unwrap_or_else(|p| p.into_inner());
            for row in rows {
                if claimed.insert((row.message_id.clone(), row.idx)) {
                    by_message.entry(row.message_id.clone()).or_default().push(row);
                }
            }
        }
        let opened: Vec<(Vec<RecipientRow>, Result<OpenedMessage, crate::SpoolError>)> =
            futures::stream::iter(by_message)
                .map(|(id, rows)| {
                    let spool = inner.spool.clone();
                    async move { (rows, spool.open(&id).await) }
                })
                .buffer_unordered(8)
                .collect()
                .await;
        for (rows, message) in opened {
            match message {
                Ok(message) => self.dispatch(message, rows).await,
                Err(e) => self.unreadable(rows, e.to_string()).await,
            }
        }
        Ok(count)
    }

    /// A message that cannot be opened cannot be delivered: hold its recipients so an
    /// operator sees them, and say why in the audit log.
    async fn unreadable(&self, rows: Vec<RecipientRow>, reason: String) {
        let inner = &self.inner;
        tracing::error!(error = %reason, "a queued message cannot be opened; holding it");
        for row in &rows {
            let (id, idx) = (row.message_id.clone(), row.idx);
            let event = Event::new("delivery", "delivery.attempt")
                .target(format!("msg:{id}"))
                .outcome(AuditOutcome::Failure)
                .detail("rcpt", idx)
                .detail("outcome", "held")
                .detail("reason", "stored message cannot be opened");
            let audit = inner.spool.audit().clone();
            let result = inner
                .spool
                .store()
                .write(move |tx| {
                    Box::pin(async move {
                        queue::set_recipient_state(tx, &id, Some(idx), &[state::INFLIGHT], state::HELD, None).await?;
                        audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        Ok(())
                    })
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "cannot hold an unreadable message");
            }
            inner.claimed.lock().unwrap_or_else(|p| p.into_inner()).remove(&(row.message_id.clone(), row.idx));
        }
    }

    async fn dispatch(&self, message: OpenedMessage, rows: Vec<RecipientRow>) {
        let inner = &self.inner;
        let indexes: Vec<Vec<u8>> = rows.iter().map(|r| r.address_index.clone()).collect();
        let suppressed = match inner.spool.store().suppressed_among(message.tenant.as_str(), &indexes).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "suppression look-up failed; delivering anyway is not safe, deferring");
                let ctx = MessageCtx::new(message);
                let positions = positions(&ctx.opened, &rows);
                let outcomes = positions
                    .iter()
                    .map(|&p| {
                        (
                            p,
                            Outcome::Deferred {
                                reason: "suppression list unavailable".into(),
                                status: "4.3.0".into(),
                                reply: None,
                                remote: None,
                            },
                        )
                    })
                    .collect();
                self.inner.finish(&ctx, outcomes).await;
                return;
            }
        };
        let ctx = MessageCtx::new(message);
        let mut immediate: Vec<(usize, Outcome)> = Vec::new();
        // Recipients whose copies come out the same share transactions; an end-to-end
        // encrypted copy travels alone.
        let mut groups: HashMap<CopyShape, (Arc<Transform>, Vec<usize>)> = HashMap::new();
        let mut alone: Vec<(Route, bool, Arc<Transform>, usize)> = Vec::new();
        for (pos, row) in positions(&ctx.opened, &rows).into_iter().zip(&rows) {
            if suppressed.contains(&row.address_index) {
                immediate.push((pos, Outcome::Suppressed));
                continue;
            }
            let recipient = &ctx.opened.recipients[pos];
            let decision = recipient.decision.clone();
            let (step, transform) = self.first_step(&ctx.opened, pos, decision.as_ref()).await;
            let require_tls = ctx.opened.envelope.require_tls;
            let require_verified = match step {
                Step::TlsVerified => true,
                Step::Transport => require_tls || decision.as_ref().is_some_and(|d| d.require_verified_tls),
                Step::Smime | Step::Pgp => require_tls,
                Step::Portal => {
                    immediate.push((
                        pos,
                        Outcome::ToPortal {
                            reason: "policy sends this recipient's copy through the secure portal".into(),
                        },
                    ));
                    continue;
                }
                Step::Hold => {
                    immediate.push((pos, Outcome::Held { reason: "policy holds this recipient's copy".into() }));
                    continue;
                }
                Step::Bounce => {
                    let reason = "policy does not allow this message to be delivered to this recipient".to_owned();
                    immediate
                        .push((pos, Outcome::Failed { reason, status: "5.7.1".into(), reply: None, remote: None }));
                    continue;
                }
            };
            match routing::route_for(&inner.config, recipient.recipient.address.domain(), inner.env.mx_port) {
                Ok(route) => match transform.sharing_key() {
                    Some(key) => groups
                        .entry((route, require_verified, key))
                        .or_insert_with(|| (Arc::new(transform), Vec::new()))
                        .1
                        .push(pos),
                    None => alone.push((route, require_verified, Arc::new(transform), pos)),
                },
                Err(e) => immediate.push((
                    pos,
                    Outcome::Deferred {
                        reason: format!("delivery configuration: {e}"),
                        status: "4.3.5".into(),
                        reply: None,
                        remote: None,
                    },
                )),
            }
        }
        if !immediate.is_empty() {
            inner.finish(&ctx, immediate).await;
        }
        let per_tx = inner.config.max_recipients_per_transaction.max(1);
        for ((route, require_verified, _), (transform, rcpts)) in groups {
            for chunk in rcpts.chunks(per_tx) {
                let job =
                    Job { message: ctx.clone(), rcpts: chunk.to_vec(), require_verified, transform: transform.clone() };
                Inner::enqueue(&self.inner, route.clone(), job);
            }
        }
        for (route, require_verified, transform, pos) in alone {
            Inner::enqueue(
                &self.inner,
                route,
                Job { message: ctx.clone(), rcpts: vec![pos], require_verified, transform },
            );
        }
    }

    /// The first step of the recipient's plan, and the transform its copy gets. Keys are
    /// looked up only for methods that can use them; a failed look-up means no key, so the
    /// plan falls to verified TLS or the portal, never to less protection.
    async fn first_step(&self, message: &OpenedMessage, pos: usize, decision: Option<&Decision>) -> (Step, Transform) {
        let Some(decision) = decision else { return (Step::Transport, Transform::default()) };
        let mut transform = Transform {
            end_to_end: None,
            add_headers: decision.add_headers.clone(),
            tag_subject: decision.tag_subject.clone(),
        };
        let wants_keys = matches!(decision.method, Some(Method::Best | Method::Smime | Method::Pgp));
        let keys = match (&self.inner.env.keys, wants_keys) {
            (Some(directory), true) => {
                match directory.lookup(&message.tenant, &message.recipients[pos].recipient.address).await {
                    Ok(keys) => keys,
                    Err(e) => {
                        tracing::warn!(message = %message.row.id, error = %e, "key look-up failed; planning without keys");
                        Default::default()
                    }
                }
            }
            _ => Default::default(),
        };
        let caps = Capabilities { smime_certificate: !keys.smime.is_empty(), pgp_key: !keys.pgp.is_empty() };
        let step = decision.plan(caps).first().copied().unwrap_or(Step::Hold);
        match step {
            Step::Smime => transform.end_to_end = keys.smime.into_iter().next().map(EndToEnd::Smime),
            Step::Pgp => transform.end_to_end = keys.pgp.into_iter().next().map(EndToEnd::Pgp),
            _ => {}
        }
        (step, transform)
    }
}

/// Positions in the opened message of the claimed rows.
fn positions(message: &OpenedMessage, rows: &[RecipientRow]) -> Vec<usize> {
    rows.iter().filter_map(|row| message.recipients.iter().position(|r| r.row.idx == row.idx)).collect()
}

impl Inner {
    fn enqueue(self: &Arc<Self>, route: Route, job: Job) {
        let dest = {
            let mut map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, d| {
                let st = d.state.lock().unwrap_or_else(|p| p.into_inner());
                st.workers > 0 || !st.jobs.is_empty()
            });
            map.entry(route.clone())
                .or_insert_with(|| {
                    Arc::new(Destination {
                        route,
                        state: Mutex::new(DestState { jobs: VecDeque::new(), workers: 0 }),
                        wake: Notify::new(),
                    })
                })
                .clone()
        };
        let spawn = {
            let mut st = dest.state.lock().unwrap_or_else(|p| p.into_inner());
            st.jobs.push_back(job);
            let limit = self.config.max_connections_per_destination.max(1);
            if st.workers < limit && st.workers < st.jobs.len() {
                st.workers += 1;
                true
            } else {
                false
            }
        };
        dest.wake.notify_one();
        if spawn {
            self.workers.fetch_add(1, Ordering::SeqCst);
            let inner = self.clone();
            tokio::spawn(async move {
                inner.worker(dest).await;
                inner.workers.fetch_sub(1, Ordering::SeqCst);
                inner.workers_done.notify_waiters();
                inner.progress.notify_one();
            });
        }
    }

    /// The next job for a worker of `dest`, waiting up to `connection_idle`; `None` retires
    /// the worker (its count drops under the same lock, so enqueue never strands a job).
    async fn next_job(&self, dest: &Destination) -> Option<Job> {
        loop {
            let notified = dest.wake.notified();
            {
                let mut st = dest.state.lock().unwrap_or_else(|p| p.into_inner());
                if self.stopping.load(Ordering::SeqCst) {
                    st.workers -= 1;
                    return None;
                }
                if let Some(job) = st.jobs.pop_front() {
                    return Some(job);
                }
            }
            if tokio::time::timeout(self.config.connection_idle.duration(), notified).await.is_err() {
                let mut st = dest.state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(job) = st.jobs.pop_front() {
                    return Some(job);
                }
                st.workers -= 1;
                return None;
            }
        }
    }

    async fn worker(self: &Arc<Self>, dest: Arc<Destination>) {
        let mut session: Option<Session> = None;
        let mut _permit = None;
        while let Some(job) = self.next_job(&dest).await {
            if session.is_none() {
                if _permit.is_none() {
                    _permit = self.connections.clone().acquire_owned().await.ok();
                }
                match self.open_session(&dest.route).await {
                    Ok(s) => session = Some(s),
                    Err(failure) => {
                        // The destination is unreachable now: every job waiting for it gets
                        // the same answer instead of each trying again at once.
                        let mut jobs = vec![job];
                        jobs.extend(dest.state.lock().unwrap_or_else(|p| p.into_inner()).jobs.drain(..));
                        for job in jobs {
                            let outcomes = job
                                .rcpts
                                .iter()
                                .map(|&p| (p, session_outcome(&failure, job.require_verified)))
                                .collect();
                            self.finish(&job.message, outcomes).await;
                        }
                        continue;
                    }
                }
            }
            let Some(s) = session.as_mut() else { continue };
            let (outcomes, usable) = self.deliver(s, &job).await;
            self.finish(&job.message, outcomes).await;
            if !usable || s.conn.transactions >= self.config.max_messages_per_connection.max(1) {
                if usable {
                    let _ = s.conn.quit().await;
                }
                session = None;
            }
        }
        if let Some(mut s) = session {
            let _ = s.conn.quit().await;
        }
    }

    /// Finds a host for `route` and connects, strongest TLS policy first.
    async fn open_session(&self, route: &Route) -> Result<Session, SessionFailure> {
        let dns = self.env.dns.as_ref();
        let candidates = routing::candidates(dns, &route.hop).await.map_err(|e| routing_failure(&e))?;
        let sts = if self.config.mta_sts && !matches!(route.kind, RouteKind::SmartHost(_)) && !route.domain.is_empty() {
            self.sts.policy(dns, &route.domain).await
        } else {
            None
        };
        let timeouts = Timeouts {
            connect: self.config.connect_timeout.duration(),
            greeting: self.config.greeting_timeout.duration(),
            command: self.config.command_timeout.duration(),
            data: self.config.data_timeout.duration(),
        };
        let auth = match route.kind {
            RouteKind::SmartHost(_) => self.auth.as_ref(),
            _ => None,
        };
        let mut last = SessionFailure {
            permanent: false,
            status: "4.4.1",
            reason: "no mail server could be reached".into(),
            tls: false,
            remote: None,
        };
        // Postfix's smtp_mx_address_limit: a handful of addresses, not every one.
        let mut addresses_tried = 0;
        for candidate in candidates.iter().take(5) {
            let ips = match dns.ips(&candidate.host).await {
                Ok(ips) => ips,
                Err(e) => {
                    last = SessionFailure {
                        permanent: false,
                        status: "4.4.4",
                        reason: format!("no address for the mail server: {e}"),
                        tls: false,
                        remote: None,
                    };
                    continue;
                }
            };
            let demand = match tls_policy::host_policy(
                &self.config,
                dns,
                route.kind,
                &route.domain,
                candidate,
                ips.secure,
                sts.as_deref(),
            )
            .await
            {
                HostPolicy::Use(d) => d,
                HostPolicy::Skip(reason) => {
                    self.tls_report(
                        route,
                        candidate,
                        None,
                        &TlsDemand::Never,
                        sts.as_deref(),
                        Some(ResultType::ValidationFailure),
                    );
                    last = SessionFailure { permanent: false, status: "4.7.5", reason, tls: true, remote: None };
                    continue;
                }
                HostPolicy::Defer(reason) => {
                    let tlsa = ReportedPolicy { kind: PolicyType::Tlsa, strings: Vec::new() };
                    if let Some(c) = &self.tls_rpt
                        && reports_on(route)
                    {
                        c.failure(
                            Timestamp::now(),
                            &route.domain,
                            &tlsa,
                            &candidate.host,
                            None,
                            ResultType::DnssecInvalid,
                        );
                    }
                    last = SessionFailure { permanent: false, status: "4.7.5", reason, tls: false, remote: None };
                    continue;
                }
            };
            for ip in ips.records.iter().take(2) {
                if addresses_tried >= 5 {
                    break;
                }
                addresses_tried += 1;
                let addr = std::net::SocketAddr::new(*ip, candidate.port);
                let remote = Remote { host: candidate.host.clone(), ip: Some(*ip), tls: None, dsn: false };
                let mut demand_now = demand.clone();
                for _ in 0..2 {
                    let spec = ConnectSpec {
                        addr,
                        host: &candidate.host,
                        helo: &self.helo,
                        demand: &demand_now,
                        auth,
                        timeouts,
                    };
                    match SmtpConnection::connect(spec, &self.tls).await {
                        Ok(mut conn) => {
                            // Postfix's "mail loops back to myself": the next hop is this
                            // very server (an MX or smart host pointing back here).
                            if !conn.greeting_name.is_empty() && conn.greeting_name.eq_ignore_ascii_case(&self.helo) {
                                let _ = conn.quit().await;
                                return Err(SessionFailure {
                                    permanent: false,
                                    status: "4.4.6",
                                    reason: format!(
                                        "mail for this destination loops back to this server ({}); route it with delivery.transport",
                                        self.helo
                                    ),
                                    tls: false,
                                    remote: Some(remote),
                                });
                            }
                            if conn.tls.is_some() {
                                self.tls_report(route, candidate, Some(*ip), &demand_now, sts.as_deref(), None);
                            }
                            let remote = Remote { tls: conn.tls.clone(), dsn: conn.supports_dsn(), ..remote };
                            return Ok(Session { conn, remote });
                        }
                        Err(ClientError::Tls { required: false, reason, .. })
                        | Err(ClientError::Refused { stage: "STARTTLS", reply: Reply { text: reason, .. } })
                            if !demand_now.requires_tls() =>
                        {
                            // Opportunistic TLS that fails is retried in clear, as Postfix
                            // does; messages that need verified TLS will not use it.
                            tracing::debug!(host = %carepost_model::Sensitive::new(candidate.host.as_str()), %reason, "TLS failed; retrying without");
                            demand_now = TlsDemand::Never;
                            continue;
                        }
                        Err(e) => {
                            if let Some(result) = tls_rpt::result_type(&e) {
                                self.tls_report(route, candidate, Some(*ip), &demand_now, sts.as_deref(), Some(result));
                            }
                            let tls = e.is_tls_failure();
                            last = SessionFailure {
                                permanent: false,
                                status: if tls { "4.7.5" } else { "4.4.1" },
                                reason: e.to_string(),
                                tls,
                                remote: Some(remote.clone()),
                            };
                            break;
                        }
                    }
                }
            }
        }
        Err(last)
    }

    /// Counts a TLS session (or its failure) for the recipient domain's TLS report.
    fn tls_report(
        &self,
        route: &Route,
        candidate: &routing::Candidate,
        ip: Option<IpAddr>,
        demand: &TlsDemand,
        sts: Option<&tls_policy::mta_sts::StsPolicy>,
        failure: Option<ResultType>,
    ) {
        let Some(collector) = &self.tls_rpt else { return };
        if !reports_on(route) {
            return;
        }
        let policy = ReportedPolicy::of(demand, sts);
        let now = Timestamp::now();
        match failure {
            None => collector.success(now, &route.domain, &policy, &candidate.host),
            Some(result) => collector.failure(now, &route.domain, &policy, &candidate.host, ip, result),
        }
    }

    /// Sends one job over `session`. Returns the outcomes and whether the connection can
    /// carry another message.
    async fn deliver(&self, session: &mut Session, job: &Job) -> (Vec<(usize, Outcome)>, bool) {
        let opened = &job.message.opened;
        let verification = session.conn.verification();
        if job.require_verified && !verification.is_verified() {
            let who = if opened.envelope.require_tls { "REQUIRETLS: the sender" } else { "policy" };
            let reason = match &session.remote.tls {
                None => format!(
                    "{who} requires verified TLS, but the connection to the recipient's server is not encrypted (no STARTTLS)"
                ),
                Some(_) => {
                    format!("{who} requires verified TLS, but the recipient's server certificate could not be verified")
                }
            };
            let outcomes = job
                .rcpts
                .iter()
                .map(|&p| {
                    (
                        p,
                        Outcome::NeedsProtectedFallback {
                            reason: reason.clone(),
                            remote: Some(session.remote.clone()),
                        },
                    )
                })
                .collect();
            return (outcomes, true);
        }
        let body = if job.transform.is_identity() {
            self.body(&job.message).await
        } else {
            self.transformed_body(&job.message, &job.transform).await
        };
        let body = match body {
            Ok(b) => b,
            Err(reason) => {
                let outcomes = job
                    .rcpts
                    .iter()
                    .map(|&p| {
                        (
                            p,
                            Outcome::Deferred {
                                reason: reason.clone(),
                                status: "4.3.0".into(),
                                reply: None,
                                remote: None,
                            },
                        )
                    })
                    .collect();
                return (outcomes, true);
            }
        };
        let recipients: Vec<OutgoingRcpt<'_>> = job
            .rcpts
            .iter()
            .map(|&p| {
                let r = &opened.recipients[p].recipient;
                OutgoingRcpt { address: r.address.as_str(), notify: r.notify, orcpt: r.orcpt.as_deref() }
            })
            .collect();
        let envelope = &opened.envelope;
        let outgoing = Outgoing {
            mail_from: envelope.mail_from.as_ref().map(Address::as_str),
            recipients,
            body_type: envelope.body,
            smtputf8: envelope.smtputf8,
            require_tls: envelope.require_tls,
            ret: envelope.dsn_ret,
            envid: envelope.dsn_envid.as_deref(),
        };
        match session.conn.send(&outgoing, &body).await {
            Ok(replies) => {
                let protection = job.transform.end_to_end.as_ref().map(EndToEnd::method);
                let outcomes = job
                    .rcpts
                    .iter()
                    .zip(replies)
                    .map(|(&p, reply)| {
                        let mut outcome = Outcome::from_reply(reply, &session.remote);
                        if let Outcome::Delivered { protection: p, .. } = &mut outcome {
                            *p = protection;
                        }
                        (p, outcome)
                    })
                    .collect();
                (outcomes, true)
            }
            Err(e) => {
                let reason = e.to_string();
                let outcomes = job
                    .rcpts
                    .iter()
                    .map(|&p| {
                        (
                            p,
                            Outcome::Deferred {
                                reason: reason.clone(),
                                status: "4.4.2".into(),
                                reply: None,
                                remote: Some(session.remote.clone()),
                            },
                        )
                    })
                    .collect();
                (outcomes, false)
            }
        }
    }

    /// The message as stored, opened once per message.
    async fn stored(&self, message: &MessageCtx) -> Result<Bytes, String> {
        message
            .stored
            .get_or_init(|| async {
                self.spool.body(&message.opened).await.map_err(|e| format!("cannot read the stored message: {e}"))
            })
            .await
            .clone()
    }

    /// DKIM signatures in front of `message`, made with keys of the message's own tenant.
    /// Mail that came in on the MX and goes on to another host is never signed: its From was
    /// written by an outsider, and our signature would vouch for it.
    async fn sign(&self, ctx: &MessageCtx, message: Bytes) -> Bytes {
        if !self.config.dkim_sign || ctx.opened.arrival.source == carepost_model::Source::Mx {
            return message;
        }
        match self.signer.sign(&self.spool, &ctx.opened.tenant, message.clone()).await {
            Ok(headers) if !headers.is_empty() => {
                let mut signed = Vec::with_capacity(headers.len() + message.len());
                signed.extend_from_slice(&headers);
                signed.extend_from_slice(&message);
                Bytes::from(signed)
            }
            Ok(_) => message,
            Err(e) => {
                tracing::warn!(error = %e, "DKIM signing failed; sending unsigned");
                message
            }
        }
    }

    /// The message as sent to recipients without a transform: signed once per message.
    async fn body(&self, message: &MessageCtx) -> Result<Bytes, String> {
        message
            .body
            .get_or_init(|| async {
                let stored = self.stored(message).await?;
                Ok(self.sign(message, stored).await)
            })
            .await
            .clone()
    }

    /// One recipient group's copy: header actions, encryption, then DKIM over the result.
    /// Encryption is CPU work proportional to the size: off the reactor.
    async fn transformed_body(&self, message: &MessageCtx, transform: &Arc<Transform>) -> Result<Bytes, String> {
        let stored = self.stored(message).await?;
        let (transform, signers) = (transform.clone(), self.env.signers.clone());
        let transformed = tokio::task::spawn_blocking(move || transform.apply(&stored, &signers))
            .await
            .map_err(|e| format!("transforming the message failed: {e}"))??;
        Ok(self.sign(message, Bytes::from(transformed)).await)
    }

    /// Records outcomes: recipient rows, audit records, DSNs and suppressions, then frees the
    /// recipients for the claim loop.
    async fn finish(&self, message: &Arc<MessageCtx>, outcomes: Vec<(usize, Outcome)>) {
        let outcomes = self.resolve(message, outcomes).await;
        let opened = &message.opened;
        let id = opened.row.id.clone();
        let now = Timestamp::now();
        let received = Timestamp::from_micros(opened.row.received_at);
        let age_secs = (now.as_micros() - received.as_micros()) / 1_000_000;
        let expire_at = received.plus_seconds(self.config.max_lifetime.as_secs() as i64);
        let mut updates: Vec<(i64, RecipientUpdate)> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut bounces: Vec<(usize, DsnRecipient)> = Vec::new();
        let mut delays: Vec<(usize, DsnRecipient)> = Vec::new();
        let mut successes: Vec<(usize, DsnRecipient)> = Vec::new();
        let mut suppress: Vec<suppression::PreparedSuppression> = Vec::new();
        let salt = opened.row.id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));

        for (pos, outcome) in outcomes {
            let rcpt = &opened.recipients[pos];
            let idx = rcpt.row.idx;
            let attempts = rcpt.row.attempts + 1;
            let notify = rcpt.recipient.notify.unwrap_or_else(DsnNotify::implicit);
            let mut outcome = outcome;
            // A temporary failure past the message's lifetime is final.
            if let Outcome::Deferred { reason, status: _, reply, remote } = &outcome
                && now >= expire_at
            {
                outcome = Outcome::Failed {
                    reason: format!(
                        "could not be delivered for {}: {reason}",
                        crate::config::Interval::secs(age_secs.max(0) as u64)
                    ),
                    status: "5.4.7".into(),
                    reply: reply.clone(),
                    remote: remote.clone(),
                };
            }
            let remote = outcome.remote().cloned();
            let dsn_entry = |action: Action, status: String, reason: String, reply: Option<&Reply>| DsnRecipient {
                address: rcpt.recipient.address.as_str().to_owned(),
                orcpt: rcpt.recipient.orcpt.clone(),
                action,
                status,
                remote_mta: remote.as_ref().map(|r| r.host.clone()).filter(|h| !h.is_empty()),
                diagnostic: reply.filter(|r| !r.local).map(Reply::line),
                reason,
                last_attempt: Some(now),
                will_retry_until: (action == Action::Delayed).then_some(expire_at),
            };
            let mut event = Event::new("delivery", "delivery.attempt")
                .target(format!("msg:{id}"))
                .detail("rcpt", idx)
                .detail("attempt", attempts)
                .detail("outcome", outcome.name());
            if let Some(r) = &remote {
                event = event.detail_hashed("host", r.host.as_bytes());
                if let Some(ip) = r.ip {
                    event = event.detail("remote_ip", ip);
                }
                match &r.tls {
                    Some(t) => {
                        event = event
                            .detail("tls", &t.version)
                            .detail("cipher", &t.cipher)
                            .detail("verified", t.verification.as_str());
                    }
                    None => event = event.detail("tls", "none").detail("verified", "none"),
                }
            }
            // The enhanced status code of the outcome, for the recipient's history (the reply
            // text is sealed; the code says what happened without quoting anyone).
            let status_code = match &outcome {
                Outcome::Delivered { reply, .. } => reply.status(),
                Outcome::Deferred { status, .. } | Outcome::Failed { status, .. } => status.clone(),
                Outcome::NeedsProtectedFallback { .. } | Outcome::ToPortal { .. } | Outcome::Held { .. } => {
                    "4.7.10".to_owned()
                }
                Outcome::ViaPortal => "2.0.0".to_owned(),
                Outcome::Suppressed => "5.7.1".to_owned(),
            };
            let (state, next, reply_text, method, audit_outcome, delay_notified) = match &outcome {
                Outcome::Delivered { reply, remote, protection } => {
                    let method = protection.unwrap_or(if remote.tls.is_some() { "tls" } else { "smtp" });
                    event = event.detail("reply", reply.code).detail("status", reply.status()).detail("method", method);
                    if notify.success && !notify.never && !remote.dsn {
                        successes.push((
                            pos,
                            dsn_entry(
                                Action::Relayed,
                                reply.status(),
                                "delivered to the recipient's mail server, which does not report delivery".into(),
                                Some(reply),
                            ),
                        ));
                    }
                    (
                        state::DELIVERED,
                        now.as_micros(),
                        reply.line(),
                        Some(method.to_owned()),
                        AuditOutcome::Success,
                        rcpt.row.delay_notified,
                    )
                }
                Outcome::Deferred { reason, status, reply, .. } => {
                    if let Some(r) = reply {
                        event = event.detail("reply", r.code);
                    }
                    event = event.detail("status", status);
                    let wait = retry::backoff_secs(&self.config, attempts, salt);
                    let next = now.plus_seconds(wait).min(expire_at.plus_seconds(1));
                    let mut notified = rcpt.row.delay_notified;
                    let notice_after = self.config.delay_notice_after.as_secs() as i64;
                    if !notified && notice_after > 0 && age_secs >= notice_after {
                        notified = true;
                        if notify.delay && !notify.never {
                            delays.push((
                                pos,
                                dsn_entry(Action::Delayed, status.clone(), reason.clone(), reply.as_ref()),
                            ));
                        }
                    }
                    let text = reply.as_ref().map(Reply::line).unwrap_or_else(|| format!("{status} {reason}"));
                    (state::QUEUED, next.as_micros(), text, None, AuditOutcome::Failure, notified)
                }
                Outcome::Failed { reason, status, reply, .. } => {
                    if let Some(r) = reply {
                        event = event.detail("reply", r.code);
                    }
                    event = event.detail("status", status);
                    if notify.failure && !notify.never {
                        bounces.push((pos, dsn_entry(Action::Failed, status.clone(), reason.clone(), reply.as_ref())));
                    }
                    let remote_said = reply.as_ref().is_some_and(|r| !r.local);
                    if (remote_said || status == "5.1.10") && suppression::is_hard_bounce(status) {
                        match suppression::prepare(
                            self.spool.ring(),
                            &opened.tenant,
                            &rcpt.recipient.address,
                            SuppressionReason::HardBounce,
                            reply.as_ref().map(Reply::line).as_deref(),
                        ) {
                            Ok(s) => suppress.push(s),
                            Err(e) => tracing::warn!(error = %e, "cannot seal a suppression entry"),
                        }
                    }
                    let text = reply.as_ref().map(Reply::line).unwrap_or_else(|| format!("{status} {reason}"));
                    (state::BOUNCED, now.as_micros(), text, None, AuditOutcome::Failure, rcpt.row.delay_notified)
                }
                Outcome::NeedsProtectedFallback { reason, .. }
                | Outcome::ToPortal { reason }
                | Outcome::Held { reason } => {
                    event = event.detail("reason", "held by policy or for want of verified TLS");
                    (
                        state::HELD,
                        now.as_micros(),
                        format!("4.7.10 held: {reason}"),
                        None,
                        AuditOutcome::Denied,
                        rcpt.row.delay_notified,
                    )
                }
                Outcome::ViaPortal => {
                    event = event.detail("method", "portal");
                    if notify.success && !notify.never {
                        successes.push((
                            pos,
                            dsn_entry(
                                Action::Delivered,
                                "2.0.0".into(),
                                "stored in the secure portal; the recipient was sent a notice".into(),
                                None,
                            ),
                        ));
                    }
                    (
                        state::DELIVERED,
                        now.as_micros(),
                        "250 2.0.0 stored in the secure portal".to_owned(),
                        Some("portal".to_owned()),
                        AuditOutcome::Success,
                        rcpt.row.delay_notified,
                    )
                }
                Outcome::Suppressed => {
                    let reason =
                        "the address is on the suppression list (an earlier hard bounce, complaint or unsubscribe)"
                            .to_owned();
                    if notify.failure && !notify.never {
                        bounces.push((pos, dsn_entry(Action::Failed, "5.7.1".into(), reason.clone(), None)));
                    }
                    (
                        state::BOUNCED,
                        now.as_micros(),
                        format!("5.7.1 {reason}"),
                        None,
                        AuditOutcome::Denied,
                        rcpt.row.delay_notified,
                    )
                }
            };
            events.push(event.outcome(audit_outcome));
            let sealed = match opened.seal_reply(idx, &reply_text) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot seal a delivery reply");
                    None
                }
            };
            updates.push((
                idx,
                RecipientUpdate {
                    state,
                    attempts,
                    next_attempt_at: next,
                    last_reply: sealed,
                    method,
                    delay_notified,
                    status: Some(status_code),
                },
            ));
        }

        // Notices are queued before the outcome commits: a crash in between repeats a notice
        // rather than losing one.
        for (kind, entries) in [("bounce", bounces), ("delay", delays), ("success", successes)] {
            if entries.is_empty() {
                continue;
            }
            match self.notify_sender(message, &entries).await {
                Ok(Some(dsn_id)) => {
                    for (pos, _) in &entries {
                        let idx = opened.recipients[*pos].row.idx;
                        if let Some(e) = events.iter_mut().find(|e| e.details.get("rcpt") == Some(&idx.to_string())) {
                            *e = e.clone().detail("dsn", format!("{kind}:{dsn_id}"));
                        }
                    }
                }
                Ok(None) => {
                    for (pos, _) in &entries {
                        let idx = opened.recipients[*pos].row.idx.to_string();
                        if let Some(e) = events.iter_mut().find(|e| e.details.get("rcpt") == Some(&idx)) {
                            *e = e.clone().detail("dsn", "none: null sender");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, kind, "cannot queue a delivery status notification"),
            }
        }

        let finished: Vec<i64> = updates.iter().map(|(idx, _)| *idx).collect();
        let audit = self.spool.audit().clone();
        let message_id = id.clone();
        let result = self
            .spool
            .store()
            .write(move |tx| {
                Box::pin(async move {
                    for (idx, update) in &updates {
                        queue::update_recipient(tx, &message_id, *idx, update).await?;
                    }
                    for entry in &suppress {
                        suppression::insert_in(tx, entry).await?;
                    }
                    for event in &events {
                        audit.append_in(tx, event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    }
                    queue::finish_if_done_later(tx, &message_id)?;
                    Ok(())
                })
            })
            .await;
        if let Err(e) = result {
            // The lease makes these recipients due again: at least once, never lost.
            tracing::error!(error = %e, "cannot record delivery outcomes");
        }
        {
            let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
            for idx in &finished {
                claimed.remove(&(id.clone(), *idx));
            }
        }
        self.progress.notify_one();
    }

    /// Turns what the plan does next into outcomes: a missing verified TLS follows the plan
    /// (portal, hold or bounce), and a copy bound for the portal is handed over, its notices
    /// queued before the outcome is recorded (a crash in between repeats a notice rather than
    /// losing the message).
    async fn resolve(&self, message: &MessageCtx, outcomes: Vec<(usize, Outcome)>) -> Vec<(usize, Outcome)> {
        let mut resolved = Vec::with_capacity(outcomes.len());
        for (pos, outcome) in outcomes {
            let outcome = match outcome {
                Outcome::NeedsProtectedFallback { reason, remote } => {
                    let decision = message.opened.recipients[pos].decision.as_ref();
                    match decision::after_verified_tls(decision) {
                        Step::Bounce => Outcome::Failed { reason, status: "5.7.10".into(), reply: None, remote },
                        // RFC 8689: a REQUIRETLS message that cannot be sent as asked is returned.
                        Step::Hold if message.opened.envelope.require_tls => {
                            Outcome::Failed { reason, status: "5.7.10".into(), reply: None, remote }
                        }
                        Step::Portal if self.env.portal.is_some() => self.hand_to_portal(message, pos, reason).await,
                        Step::Portal => Outcome::NeedsProtectedFallback {
                            reason: format!("{reason}; no secure portal is configured"),
                            remote,
                        },
                        _ => Outcome::NeedsProtectedFallback { reason, remote },
                    }
                }
                Outcome::ToPortal { reason } => self.hand_to_portal(message, pos, reason).await,
                other => other,
            };
            resolved.push((pos, outcome));
        }
        resolved
    }

    async fn hand_to_portal(&self, message: &MessageCtx, pos: usize, reason: String) -> Outcome {
        let Some(portal) = &self.env.portal else {
            return Outcome::Held { reason: format!("{reason}; no secure portal is configured") };
        };
        let deferred = |reason: String| Outcome::Deferred { reason, status: "4.3.0".into(), reply: None, remote: None };
        let stored = match self.stored(message).await {
            Ok(b) => b,
            Err(e) => return deferred(e),
        };
        match crate::portal::hand_over(portal, self.spool.audit(), &message.opened, pos, &stored).await {
            Ok(notices) => {
                for notice in notices {
                    if let Err(e) = self.spool.accept(notice).await {
                        return deferred(format!("cannot queue the portal notice: {e}"));
                    }
                }
                Outcome::ViaPortal
            }
            Err(e) => deferred(format!("the secure portal could not take the message: {e}")),
        }
    }

    /// Queues a DSN to the message's sender. `Ok(None)` when the sender is the null path:
    /// a bounce is never bounced.
    async fn notify_sender(
        &self,
        message: &MessageCtx,
        entries: &[(usize, DsnRecipient)],
    ) -> Result<Option<String>, crate::SpoolError> {
        let opened = &message.opened;
        let Some(sender) = opened.envelope.mail_from.clone() else { return Ok(None) };
        let original = match message.body.get() {
            Some(Ok(b)) => b.clone(),
            _ => self.spool.body(opened).await.unwrap_or_default(),
        };
        let recipients: Vec<DsnRecipient> = entries.iter().map(|(_, d)| d.clone()).collect();
        let report = dsn::DsnReport {
            reporting_mta: &self.env.hostname,
            sender: sender.as_str(),
            envid: opened.envelope.dsn_envid.as_deref(),
            arrival: Timestamp::from_micros(opened.row.received_at),
            queue_id: &opened.row.id,
            recipients: &recipients,
            original: &original,
            ret: opened.envelope.dsn_ret,
        };
        let message_id = format!("<{}.dsn@{}>", carepost_model::Id::new(), self.env.hostname);
        let body = dsn::build(&report, &message_id);
        // The notice quotes the original's headers (and with RET=FULL its body): it gets the
        // strictest protection any of the original's recipients had.
        let strict = opened.envelope.require_tls
            || opened.recipients.iter().any(|r| decision::requires_verified_tls(r.decision.as_ref()));
        let envelope = Envelope {
            smtputf8: sender.is_utf8() || entries.iter().any(|(_, d)| !d.address.is_ascii()),
            body: BodyType::EightBitMime,
            ..Envelope::to_one(None, sender.clone())
        };
        let arrival = Arrival::system();
        let mut submission = Submission::new(opened.tenant.clone(), envelope, arrival, Bytes::from(body));
        submission.message_id_header = Some(message_id);
        submission.decisions = vec![strict.then(decision::verified_tls)];
        let id = self.spool.accept(submission).await?;
        Ok(Some(id.to_string()))
    }
}

/// TLS reports are about recipient domains' own servers, not about the smart host.
fn reports_on(route: &Route) -> bool {
    !matches!(route.kind, RouteKind::SmartHost(_)) && !route.domain.is_empty()
}

fn routing_failure(e: &RoutingError) -> SessionFailure {
    let (permanent, status) = match e {
        RoutingError::NullMx => (true, "5.1.10"),
        RoutingError::NoSuchDomain => (true, "5.1.2"),
        RoutingError::NoMailServer => (true, "5.4.4"),
        RoutingError::Temporary(_) => (false, "4.4.3"),
    };
    SessionFailure { permanent, status, reason: e.to_string(), tls: false, remote: None }
}

fn session_outcome(f: &SessionFailure, require_verified: bool) -> Outcome {
    if f.tls && require_verified {
        return Outcome::NeedsProtectedFallback { reason: f.reason.clone(), remote: f.remote.clone() };
    }
    if f.permanent {
        Outcome::Failed { reason: f.reason.clone(), status: f.status.into(), reply: None, remote: f.remote.clone() }
    } else {
        Outcome::Deferred { reason: f.reason.clone(), status: f.status.into(), reply: None, remote: f.remote.clone() }
    }
}
