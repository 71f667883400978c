use std::process::ExitCode;

use carepost::install::{Access, Installation};
use carepost_audit::Event;

use super::Global;

pub async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    let (config, origin) = global.load_config()?;
    let install = Installation::open(config, Access::Exclusive).await?;
    let tls = carepost::tls::ensure_identity(&install.config)?;
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
    println!("ready; Ctrl-C or SIGTERM stops carepost");

    let anchors = {
        let audit = install.audit.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tick.tick().await;
                if let Err(e) = audit.sync_anchors().await {
                    tracing::warn!(error = %e, "cannot update the audit anchor file");
                }
            }
        })
    };

    shutdown_signal().await;
    println!("stopping");
    anchors.abort();
    install.audit.append(Event::new("system", "system.stop")).await?;
    install.close().await?;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
