//! Command implementations. Each returns the process exit code.

pub mod apikey;
pub mod audit;
pub mod blobs;
pub mod block;
pub mod config;
pub mod dkim;
pub mod dlp;
pub mod dns;
pub mod key;
pub mod keys;
pub mod policy;
pub mod portal;
pub mod quarantine;
pub mod queue;
pub mod serve;
pub mod store;
pub mod suppress;
pub mod user;
pub mod webhook;

use std::path::{Path, PathBuf};

use carepost::{Config, Installation};
use carepost_spool::Spool;

/// Options every command accepts.
pub struct Global {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl Global {
    /// The configuration in effect and where it came from.
    pub fn load_config(&self) -> anyhow::Result<(Config, String)> {
        let local = Path::new("carepost.toml");
        let (mut config, origin) = match &self.config {
            Some(path) => (Config::load(path)?, path.display().to_string()),
            None if local.exists() => (Config::load(local)?, local.display().to_string()),
            None => (Config::default(), "built-in defaults".to_owned()),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        carepost::logging::init(&config.log)?;
        Ok((config, origin))
    }
}

/// The spool (queue, sealed bodies, audit) of an opened installation.
pub fn spool_of(install: &Installation) -> Spool {
    Spool::new(install.store.clone(), install.ring.clone(), install.blobs.clone(), install.audit.clone())
}
