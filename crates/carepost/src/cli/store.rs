use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use carepost::install::{lock_data_dir, open_blob_store, store_options};
use carepost::{Access, Installation};
use carepost_audit::Event;
use carepost_store::migrate::{CopyProgress, Phase};
use carepost_store::{Backend, Store, StoreOptions};
use carepost_vault::copy_blobs;
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy this installation's SQLite database into an empty PostgreSQL database: every
    /// table's rows as stored (sealed columns stay sealed), then each table checked by row
    /// count and SHA-256 on both sides. The SQLite file is only read. Run it with carepost
    /// stopped, then set store.url (and blobs.url) to the targets.
    Migrate {
        /// The target: postgres://user@host/database (TLS through sslmode=). carepost creates
        /// its tables there; the database must hold none of their rows.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Also copy the sealed blobs to s3://bucket or s3://bucket/prefix, as `carepost blobs
        /// copy --to` does.
        #[arg(long, value_name = "URL")]
        blobs_to: Option<String>,
    },
}

pub async fn run(global: &Global, command: StoreCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    match command {
        StoreCommand::Migrate { to, blobs_to } => {
            let source_options = store_options(&config);
            anyhow::ensure!(
                source_options.backend() == Backend::Sqlite,
                "this installation already uses {}: store migrate copies a SQLite installation",
                source_options.display()
            );
            let target_options = StoreOptions { url: to.trim().to_owned(), pool_size: config.store.pool_size };
            anyhow::ensure!(
                target_options.backend() == Backend::Postgres,
                "--to takes a postgres:// URL, not {}",
                target_options.display()
            );
            if let Some(blobs) = &blobs_to {
                anyhow::ensure!(blobs.starts_with("s3://"), "--blobs-to takes an s3:// URL, not {blobs}");
                anyhow::ensure!(*blobs != config.blobs.url, "{blobs} is already the blob store in use");
            }
            // Exclusive: a server writing meanwhile would make the copy miss rows.
            let lock = lock_data_dir(&config.data_dir)?;
            let source = Store::open_read_only(&source_options.url)
                .await
                .with_context(|| format!("opening the SQLite database {}", source_options.display()))?;
            let target = Store::connect(&target_options)
                .await
                .with_context(|| format!("opening the target database {}", target_options.display()))?;

            let mut last = Instant::now();
            let mut shown = None;
            let mut report_rows = |p: &CopyProgress| {
                let finished = p.done == p.total;
                let new_phase = shown != Some(p.phase);
                if new_phase || finished || last.elapsed() >= Duration::from_secs(1) {
                    last = Instant::now();
                    shown = Some(p.phase);
                    let what = match p.phase {
                        Phase::Copying => "copying",
                        Phase::Verifying => "verifying",
                    };
                    eprintln!("{what}: {}/{} rows ({})", p.done, p.total, p.table);
                }
            };
            let copied = source.copy_into(&target, &mut report_rows).await;
            source.close().await;
            target.close().await;
            let copied = copied?;
            for table in &copied.tables {
                let hash: String = table.sha256.iter().map(|b| format!("{b:02x}")).collect();
                println!("{:<24} {:>10} rows  sha256 {hash}", table.table, table.rows);
            }
            println!(
                "copied {} rows of {} tables to {}, each table verified by row count and SHA-256; {} was only read",
                copied.rows(),
                copied.tables.len(),
                target_options.display(),
                source_options.display()
            );

            // The record goes on the copied chain, where the installation continues.
            let install = Installation::open_on(config.clone(), target_options.clone(), Access::Shared).await?;
            install
                .audit
                .append(
                    Event::new("cli", "store.migrate")
                        .target(target_options.display())
                        .detail("tables", copied.tables.len())
                        .detail("rows", copied.rows()),
                )
                .await?;

            if let Some(blobs) = blobs_to {
                let target_config = carepost::config::BlobsConfig { url: blobs.clone(), ..config.blobs.clone() };
                let to_blobs = open_blob_store(&config, &target_config).await?;
                let mut last = Instant::now();
                let mut report_blobs = |p: carepost_vault::CopyProgress| {
                    if p.done == p.total || last.elapsed() >= Duration::from_secs(1) {
                        last = Instant::now();
                        eprintln!("{}/{} blobs, {} MiB", p.done, p.total, p.bytes / (1024 * 1024));
                    }
                };
                let done = copy_blobs(install.blobs.as_ref(), to_blobs.as_ref(), &mut report_blobs)
                    .await
                    .with_context(|| {
                        format!(
                            "copying the blobs (the rows are copied; finish with `carepost blobs copy --to {blobs}`)"
                        )
                    })?;
                println!(
                    "copied {} blobs ({} already there), {} bytes, each verified by SHA-256, to {blobs}",
                    done.copied, done.already_present, done.bytes
                );
                install
                    .audit
                    .append(
                        Event::new("cli", "blobs.copy")
                            .target(blobs)
                            .detail("copied", done.copied)
                            .detail("already_present", done.already_present)
                            .detail("bytes", done.bytes),
                    )
                    .await?;
            }
            install.close().await?;
            drop(lock);
            println!("now set store.url (and blobs.url) in the configuration to the targets and start carepost");
            Ok(ExitCode::SUCCESS)
        }
    }
}
