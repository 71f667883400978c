//! HTTPS serving: TLS from the same rustls configuration SMTP uses, HTTP/1.1 and HTTP/2
//! (ALPN), an axum router behind it, and a graceful stop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A client has this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// ...and this long to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits for requests in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A bound HTTPS listener that is not serving yet. Binding first lets the caller learn the
/// port (for `web.listen` port 0 and for links) before building the router.
pub struct WebServer {
    listener: TcpListener,
    tls: TlsAcceptor,
}

impl WebServer {
    /// Binds `addr` and prepares TLS from `tls` (the SMTP server configuration), adding ALPN
    /// for HTTP/2 and HTTP/1.1.
    pub async fn bind(addr: SocketAddr, tls: &Arc<ServerConfig>) -> io::Result<WebServer> {
        let listener = TcpListener::bind(addr).await?;
        let mut config = ServerConfig::clone(tls);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(WebServer { listener, tls: TlsAcceptor::from(Arc::new(config)) })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until [`RunningWeb::shutdown`].
    pub fn start(self, router: Router) -> io::Result<RunningWeb> {
        let addr = self.local_addr()?;
        let (stop, stopped) = watch::channel(None);
        let task = tokio::spawn(accept_loop(self, router, stopped));
        Ok(RunningWeb { addr, stop, task })
    }
}

/// A serving HTTPS listener.
pub struct RunningWeb {
    addr: SocketAddr,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

impl RunningWeb {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in progress finish within `grace`, then closes every
    /// connection.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        if tokio::time::timeout(grace + Duration::from_secs(1), self.task).await.is_err() {
            tracing::warn!("HTTPS connections did not close within the grace period");
        }
    }
}

async fn accept_loop(server: WebServer, router: Router, mut stopped: watch::Receiver<Option<Duration>>) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(100);
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = server.listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let (acceptor, router, builder) = (server.tls.clone(), router.clone(), builder.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                router.clone().oneshot(request.map(axum::body::Body::new))
            });
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    drop(server.listener);
    let grace = (*stopped.borrow()).unwrap_or(SHUTDOWN_GRACE);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("HTTPS requests still running at shutdown were cut off");
    }
}
