//! Listeners: binding, accepting within the connection limits, and a bounded graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use carepost_model::Listen;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::accounts::Authenticator;
use crate::config::SmtpConfig;
use crate::inbound::SenderVerifier;
use crate::ingress::Ingress;
use crate::limits::{ConnectionLimiter, LimitExceeded};
use crate::reply::Reply;
use crate::session::{ListenerKind, Session, Shared};
use crate::stream::Connection;
use carepost_guard::{Guard, REFRESH_EVERY};

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("smtp.{key}: cannot listen on {addr}: {source}")]
    Bind { key: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("smtp.submissions_listen needs a TLS certificate")]
    NoTls,
    #[error(
        "smtp.max_data_memory ({budget}) is smaller than smtp.max_message_size ({size}): a message of the largest size could never be taken"
    )]
    DataBudget { budget: u64, size: u64 },
}

/// What the server needs from the rest of carepost.
pub struct Services {
    pub ingress: Arc<dyn Ingress>,
    pub authenticator: Arc<dyn Authenticator>,
    pub guard: Arc<Guard>,
    /// Sender verification on the MX; `None` turns it off.
    pub verifier: Option<Arc<SenderVerifier>>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Bound listeners, not yet serving.
pub struct SmtpServer {
    shared: Arc<Shared>,
    listeners: Vec<(ListenerKind, TcpListener)>,
}

/// Serving listeners.
pub struct RunningServer {
    addrs: Vec<(ListenerKind, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl SmtpServer {
    /// Binds every configured listener (an empty address is off).
    pub async fn bind(config: SmtpConfig, hostname: &str, services: Services) -> Result<SmtpServer, SmtpError> {
        let budget = config.data_budget()?;
        let mut listeners = Vec::new();
        let wanted = [
            (ListenerKind::Mx, "mx_listen", config.mx_listen),
            (ListenerKind::Submission, "submission_listen", config.submission_listen),
            (ListenerKind::Submissions, "submissions_listen", config.submissions_listen),
        ];
        for (kind, key, listen) in wanted {
            let Listen(Some(addr)) = listen else { continue };
            if kind == ListenerKind::Submissions && services.tls.is_none() {
                return Err(SmtpError::NoTls);
            }
            let listener = TcpListener::bind(addr).await.map_err(|source| SmtpError::Bind { key, addr, source })?;
            listeners.push((kind, listener));
        }
        let shared = Arc::new(Shared {
            config,
            hostname: hostname.to_owned(),
            tls: services.tls.map(TlsAcceptor::from),
            ingress: services.ingress,
            authenticator: services.authenticator,
            guard: services.guard,
            verifier: services.verifier,
            budget,
        });
        Ok(SmtpServer { shared, listeners })
    }

    /// The addresses actually bound (port 0 resolved), in configuration order.
    pub fn local_addrs(&self) -> Vec<(ListenerKind, SocketAddr)> {
        self.listeners.iter().filter_map(|(k, l)| l.local_addr().ok().map(|a| (*k, a))).collect()
    }

    /// Starts accepting connections.
    pub fn start(self) -> RunningServer {
        let addrs = self.local_addrs();
        let (shutdown, watcher) = watch::channel(false);
        let limiter =
            ConnectionLimiter::new(self.shared.config.max_connections, self.shared.config.max_connections_per_ip);
        let mut tasks = JoinSet::new();
        for (kind, listener) in self.listeners {
            tasks.spawn(accept_loop(kind, listener, self.shared.clone(), limiter.clone(), watcher.clone()));
        }
        tasks.spawn(refresh_blocks(self.shared.guard.clone(), watcher));
        RunningServer { addrs, shutdown, tasks }
    }
}

impl RunningServer {
    pub fn local_addrs(&self) -> &[(ListenerKind, SocketAddr)] {
        &self.addrs
    }

    /// Stops accepting, tells idle sessions to go (421), gives sessions in the middle of a
    /// message up to `grace` to finish, then drops whatever is left.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(grace + Duration::from_secs(1), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

async fn refresh_blocks(guard: Arc<Guard>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = guard.refresh().await {
                    tracing::warn!(error = %e, "cannot re-read blocked networks");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// How long sessions in the middle of a message get once shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn accept_loop(
    kind: ListenerKind,
    listener: TcpListener,
    shared: Arc<Shared>,
    limiter: ConnectionLimiter,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let exempt = shared.config.is_relay_client(peer.ip());
                    match limiter.acquire(peer.ip(), exempt) {
                        Ok(permit) => {
                            let session = Session::new(shared.clone(), kind, Connection::new(Box::new(stream), stop.clone()), peer.ip());
                            sessions.spawn(async move {
                                session.run().await;
                                drop(permit);
                            });
                        }
                        Err(exceeded) => {
                            sessions.spawn(turn_away(stream, shared.hostname.clone(), peer, exceeded));
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(listener = kind.name(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while sessions.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
}

/// Tells a client over the connection limits to come back later.
async fn turn_away(mut stream: TcpStream, hostname: String, peer: SocketAddr, exceeded: LimitExceeded) {
    let text = match exceeded {
        LimitExceeded::PerIp => format!("{hostname} Error: too many connections from [{}]", peer.ip()),
        LimitExceeded::Total => format!("{hostname} Error: too many connections; try again later"),
    };
    let mut out = Vec::new();
    Reply::new(421, "4.7.0", text).write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
