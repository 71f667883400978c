use std::process::ExitCode;

use carepost::install::{Access, Installation};
use carepost_audit::Event;

use super::Global;

/// How long the webhook dispatcher's lease lasts: another node takes dispatch over at most
/// this long after the dispatching node dies.
const WEBHOOK_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// How often expired portal messages are shredded.
const PORTAL_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    let (config, origin) = global.load_config()?;
    let install = Installation::open(config, Access::Exclusive).await?;
    let tls = carepost::tls::ensure_identity(&install.config)?;
    // Before this process signs anything, name what the last one left unsigned (on a shared
    // store, only if no other node is alive to sign it: docs/audit.md).
    let unsigned = install.audit.recover_shared().await?;
    install.audit.renew_node_lease().await?;
    install.audit.append(Event::new("system", "system.start").detail("version", env!("CARGO_PKG_VERSION"))).await?;

    let data_dir = std::fs::canonicalize(&install.config.data_dir).unwrap_or_else(|_| install.config.data_dir.clone());
    println!("carepost {} on {}", env!("CARGO_PKG_VERSION"), install.config.hostname);
    println!("  config      {origin}");
    println!("  data        {} (database, sealed blobs, keys)", data_dir.display());
    println!(
        "  tls         {}{}",
        tls.cert_file.display(),
        if tls.generated { " (self-signed, for localhost only)" } else { "" }
    );
    match unsigned {
        Some((from, to)) if from == to => {
            println!("  audit       record {from} was never signed: carepost stopped without shutting down")
        }
        Some((from, to)) => {
            println!("  audit       records {from} to {to} were never signed: carepost stopped without shutting down")
        }
        None => {}
    }
    // One spool for ingress and delivery, so that accepting a message wakes the runner.
    let spool = super::spool_of(&install);
    // The web listener binds first: the portal's links name its address.
    let carepost::web::Web { running: web, portal } = carepost::web::start(&install, &tls, &spool).await?;
    let delivery = start_delivery(&install, &spool, portal.clone())?;
    let webhooks = start_webhooks(&install, &spool)?;
    let sweep = portal.map(|portal| {
        let audit = install.audit.clone();
        carepost::jobs::every_on_one_node(install.store.clone(), "portal.expiry", PORTAL_SWEEP_EVERY, move || {
            let (portal, audit) = (portal.clone(), audit.clone());
            async move { portal.expire_due(&audit).await }
        })
    });
    let smtp = carepost::smtp::start(&install, &spool, &tls).await?;
    for (kind, addr) in smtp.local_addrs() {
        println!("  {:<12}{addr}", kind.name());
    }
    if let Some(web) = &web {
        println!("  {:<12}{}", "https", web.local_addr());
    }
    // Signal handlers are in place before "ready": a supervisor (or a test) that stops
    // carepost right after it says ready must get a clean stop, not the default SIGTERM death.
    let shutdown = shutdown_signal();
    println!("ready; Ctrl-C or SIGTERM stops carepost");

    // The head of the audit chain is signed at most this far behind the newest record, so
    // that a tail deleted or rewritten in the database is named by sequence number. Every
    // node signs what it wrote (no lease: a node can vouch only for its own records); on a
    // shared store it also keeps its node lease and names nodes that died (docs/audit.md).
    let anchors = {
        let audit = install.audit.clone();
        carepost::jobs::every(carepost_audit::HEAD_SIGN_INTERVAL, move || {
            let audit = audit.clone();
            async move {
                if let Err(e) = audit.sign_head().await {
                    tracing::warn!(error = %e, "cannot sign the audit head");
                }
            }
        })
    };
    let liveness = {
        let audit = install.audit.clone();
        carepost::jobs::every(carepost_audit::NODE_LEASE / 3, move || {
            let audit = audit.clone();
            async move {
                if let Err(e) = audit.renew_node_lease().await {
                    tracing::warn!(error = %e, "cannot renew this node's lease");
                }
                if let Err(e) = audit.name_lost_nodes().await {
                    tracing::warn!(error = %e, "cannot look for nodes that stopped");
                }
            }
        })
    };

    shutdown.await;
    println!("stopping");
    // Listeners close first; sessions in the middle of a message get a few seconds to finish.
    smtp.shutdown(carepost_smtp::server::SHUTDOWN_GRACE).await;
    if let Some(web) = web {
        web.shutdown(carepost_web::SHUTDOWN_GRACE).await;
    }
    if let Some((stop, runner)) = delivery {
        // The runner stops claiming, lets deliveries in progress finish within its grace
        // period and puts back what it had not started.
        let _ = stop.send(true);
        let _ = runner.await;
    }
    if let Some((stop, dispatcher)) = webhooks {
        let _ = stop.send(true);
        let _ = dispatcher.await;
    }
    anchors.abort();
    liveness.abort();
    if let Some((lease, sweep)) = sweep {
        sweep.abort();
        lease.release().await;
    }
    install.audit.append(Event::new("system", "system.stop")).await?;
    // The node lease goes back only once its last records are signed.
    install.audit.checkpoint().await?;
    install.audit.release_node_lease().await?;
    install.close().await?;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Registers SIGTERM and SIGINT handling at once; the returned future ends on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

/// Starts the outbound queue runner unless `delivery.enabled` is off; prints how mail leaves.
fn start_delivery(
    install: &Installation,
    spool: &carepost_spool::Spool,
    portal: Option<carepost_secure::portal::Portal>,
) -> anyhow::Result<Option<(tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)>> {
    let config = &install.config;
    if !config.delivery.enabled {
        println!("  delivery    off (delivery.enabled = false)");
        return Ok(None);
    }
    let mut env =
        carepost_delivery::RunnerEnv::from_config(&config.delivery, &config.hostname, |p| config.in_data_dir(p))?;
    let wkd = if config.secure.wkd {
        let options =
            carepost_secure::wkd::WkdClientConfig { timeout: std::time::Duration::from_secs(5), ..Default::default() };
        Some(carepost_secure::wkd::ReqwestWkdClient::new(&options)?)
    } else {
        None
    };
    env.keys = Some(carepost_secure::directory::KeyDirectory::new(install.store.clone(), install.ring.clone(), wkd));
    env.signers = std::sync::Arc::new(config.secure.signers(|p| config.in_data_dir(p))?);
    match portal {
        Some(portal) => env.portal = Some(portal),
        None => println!("  portal      off (no web.listen and no web.public_url): such copies are held"),
    }
    let runner = carepost_delivery::QueueRunner::new(spool.clone(), config.delivery.clone(), env)?;
    if config.delivery.smart_host.is_empty() {
        println!("  delivery    direct to MX hosts (DANE, MTA-STS, then opportunistic TLS)");
    } else {
        println!(
            "  delivery    via smart host {} (tls {:?})",
            config.delivery.smart_host, config.delivery.smart_host_tls
        );
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(async move { runner.run(stopped).await });
    Ok(Some((stop, handle)))
}

/// Starts the webhook dispatcher unless `webhooks.enabled` is off.
fn start_webhooks(
    install: &Installation,
    spool: &carepost_spool::Spool,
) -> anyhow::Result<Option<(tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)>> {
    let config = &install.config.webhooks;
    if !config.enabled {
        println!("  webhooks    off (webhooks.enabled = false)");
        return Ok(None);
    }
    let dispatcher =
        carepost_delivery::webhooks::Dispatcher::new(spool.clone(), config.clone()).map_err(anyhow::Error::msg)?;
    // One dispatcher across the nodes, so that each event is sent once.
    let lease = carepost::jobs::Singleton::new(install.store.clone(), "webhooks.dispatch", WEBHOOK_LEASE);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(carepost::jobs::while_holding(lease, WEBHOOK_LEASE / 3, stopped, move |stopped| {
        let dispatcher = dispatcher.clone();
        async move { dispatcher.run(stopped).await }
    }));
    Ok(Some((stop, handle)))
}
