use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use carepost::Config;
use carepost::config::EXAMPLE;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Parse and validate a configuration file; name the file, line and key of any error.
    Check {
        /// The configuration file to check.
        file: PathBuf,
    },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check { file } => {
            let checked = Config::load(&file).map_err(|e| e.to_string()).and_then(|config| {
                // What the file cannot say wrongly in TOML but can in meaning.
                if !config.blobs.url.is_empty() {
                    carepost_vault::S3BlobStore::open(&config.blobs.s3_settings())
                        .map_err(|e| format!("{}: blobs: {e}", file.display()))?;
                }
                carepost_policy::Policy::new(config.policy).map(drop).map_err(|e| format!("{}: {e}", file.display()))
            });
            match checked {
                Ok(()) => {
                    println!("{}: ok", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

pub fn init(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("carepost.toml");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("{} (it is never overwritten)", path.display()))?;
    std::io::Write::write_all(&mut file, EXAMPLE.as_bytes())?;
    println!("wrote {}", path.display());
    println!("edit it, check it with `carepost config check {}`, then run `carepost serve`", path.display());
    Ok(ExitCode::SUCCESS)
}
