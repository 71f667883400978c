use std::process::ExitCode;
use std::time::{Duration, Instant};

use carepost::install::open_blob_store;
use carepost::{Access, Installation};
use carepost_audit::Event;
use carepost_vault::{CopyProgress, copy_blobs};
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum BlobsCommand {
    /// Copy every sealed blob to another blob store, without opening any, and verify each copy
    /// by SHA-256. The current store is only read. Run it with carepost stopped, then set
    /// blobs.url to the target. Safe to rerun: blobs already copied are not sent again.
    Copy {
        /// The target: s3://bucket or s3://bucket/prefix. Its endpoint, region and credentials
        /// are those of the [blobs] table (other than url) or the AWS environment variables.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub async fn run(global: &Global, command: BlobsCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    match command {
        BlobsCommand::Copy { to } => {
            anyhow::ensure!(to != config.blobs.url, "{to} is already the blob store in use");
            // Exclusive: a server running meanwhile would write blobs the copy misses.
            let install = Installation::open(config, Access::Exclusive).await?;
            let target_config = carepost::config::BlobsConfig { url: to.clone(), ..install.config.blobs.clone() };
            let target = open_blob_store(&install.config, &target_config).await?;
            let mut last = Instant::now();
            let mut report = |p: CopyProgress| {
                if p.done == p.total || last.elapsed() >= Duration::from_secs(1) {
                    last = Instant::now();
                    eprintln!("{}/{} blobs, {} MiB", p.done, p.total, p.bytes / (1024 * 1024));
                }
            };
            let done = copy_blobs(install.blobs.as_ref(), target.as_ref(), &mut report).await?;
            println!(
                "copied {} blobs ({} already there, {} deleted meanwhile), {} bytes, each verified by SHA-256, to {to}",
                done.copied, done.already_present, done.vanished, done.bytes
            );
            install
                .audit
                .append(
                    Event::new("cli", "blobs.copy")
                        .target(to.clone())
                        .detail("copied", done.copied)
                        .detail("already_present", done.already_present)
                        .detail("bytes", done.bytes),
                )
                .await?;
            install.close().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
