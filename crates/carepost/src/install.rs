//! An installation: the data directory and the services opened on it (store, key ring,
//! audit log, blob store). `serve` and every CLI command start here.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use carepost_audit::{Audit, CheckpointKey};
use carepost_model::TenantId;
use carepost_store::keys::SYSTEM_SCOPE;
use carepost_store::{Store, StoreOptions};
use carepost_vault::{BlobStore, KeyRing, LocalDirBlobStore, MasterKey, MasterKeySource, S3BlobStore, SecretPurpose};

use crate::Config;
use crate::config::{BlobsConfig, MasterKeyKind};

/// Whether the caller needs the installation to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `serve` and key rotation: no other process may hold keys in memory meanwhile.
    Exclusive,
    /// Read-mostly administration while the server runs.
    Shared,
}

pub struct Installation {
    pub config: Config,
    pub store: Store,
    pub ring: Arc<KeyRing>,
    pub audit: Audit,
    pub blobs: Arc<dyn BlobStore>,
    _lock: Option<File>,
}

/// Creates a directory (and its parents) that only the owner can enter.
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).with_context(|| format!("creating {}", path.display()))
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        create_private_dir(dir)?;
        return Ok(());
    }
    anyhow::ensure!(dir.is_dir(), "data_dir {} is not a directory", dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        anyhow::ensure!(
            mode & 0o077 == 0,
            "data_dir {} is open to other users (mode {mode:o}); run chmod 700 on it",
            dir.display()
        );
    }
    Ok(())
}

/// Holds the data directory's `.lock` until the file is dropped: no `carepost serve` (or
/// other exclusive command) can start on it meanwhile, and none may be running.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("another carepost process (carepost serve?) is using {}; stop it first", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

pub fn master_key_source(config: &Config) -> MasterKeySource {
    match config.vault.master_key_source {
        MasterKeyKind::File => MasterKeySource::File(config.in_data_dir(&config.vault.master_key_file)),
        MasterKeyKind::Env => MasterKeySource::Env(config.vault.master_key_env.clone()),
        MasterKeyKind::Command => MasterKeySource::Command(config.vault.master_key_command.clone()),
    }
}

/// Where a master key rotation stages the new key file before the database commits to it.
pub fn staged_master_key_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".new");
    path.with_file_name(name)
}

/// Loads the master key the stored data was sealed under. Finishes a master key rotation that
/// was interrupted between the database commit and the rename of the new key file.
fn load_master_key(config: &Config, stored_id: Option<&str>) -> anyhow::Result<MasterKey> {
    let source = master_key_source(config);
    if let MasterKeySource::File(path) = &source {
        let staged = staged_master_key_path(path);
        if staged.exists() {
            let staged_key = MasterKey::load(&MasterKeySource::File(staged.clone()), false)?;
            if Some(staged_key.key_id().as_str()) == stored_id {
                std::fs::rename(&staged, path).with_context(|| format!("installing {}", staged.display()))?;
            } else {
                std::fs::remove_file(&staged).with_context(|| format!("removing {}", staged.display()))?;
            }
        }
        if stored_id.is_some() && !path.exists() {
            bail!(
                "the master key file {} is missing, but the database holds data sealed under master key {}; restore the key from backup",
                path.display(),
                stored_id.unwrap_or_default()
            );
        }
    }
    let key = MasterKey::load(&source, stored_id.is_none())?;
    if let Some(expected) = stored_id {
        anyhow::ensure!(
            key.key_id() == expected,
            "the master key ({}) is not the one this data was sealed under ({expected}); check [vault] in the config",
            key.key_id()
        );
    }
    Ok(key)
}

/// The blob store `blobs` names: its S3 bucket, or (with no url) the local directory
/// `store.blob_dir`. A bucket is checked with one request, so that a wrong setting stops the
/// command at once.
pub async fn open_blob_store(config: &Config, blobs: &BlobsConfig) -> anyhow::Result<Arc<dyn BlobStore>> {
    if blobs.url.is_empty() {
        return Ok(Arc::new(LocalDirBlobStore::open(config.in_data_dir(&config.store.blob_dir))?));
    }
    let store = S3BlobStore::open(&blobs.s3_settings()).context("blobs")?;
    store.check().await.with_context(|| format!("reaching the blob store {}", store.location()))?;
    Ok(Arc::new(store))
}

/// Where the store is: `CAREPOST_STORE_URL`, else `store.url`, else the SQLite file in the
/// data directory.
pub fn store_options(config: &Config) -> StoreOptions {
    let env = std::env::var(crate::config::STORE_URL_ENV).ok().filter(|u| !u.trim().is_empty());
    let url = env.unwrap_or_else(|| config.store.url.clone());
    if url.trim().is_empty() {
        StoreOptions {
            pool_size: config.store.pool_size,
            ..StoreOptions::sqlite(&config.in_data_dir(&config.store.database))
        }
    } else {
        StoreOptions { url, pool_size: config.store.pool_size }
    }
}

impl Installation {
    /// The identity room over this installation's store, holding staff and portal accounts
    /// to the configured rules (`[staff]`, `[web]`).
    pub fn identity(&self) -> carepost_identity::Identity {
        let policies =
            carepost_identity::Policies { staff: self.config.staff.policy(), portal: self.config.web.portal_policy() };
        carepost_identity::Identity::new(self.store.clone(), self.ring.clone(), policies)
    }

    /// Opens (on first start: creates) the installation described by `config`.
    pub async fn open(config: Config, access: Access) -> anyhow::Result<Installation> {
        let options = store_options(&config);
        Installation::open_on(config, options, access).await
    }

    /// Opens the installation described by `config` on the store `options` names rather
    /// than the configured one (`carepost store migrate` writes to the store it copied to).
    pub async fn open_on(config: Config, options: StoreOptions, access: Access) -> anyhow::Result<Installation> {
        prepare_data_dir(&config.data_dir)?;
        let lock = match access {
            Access::Exclusive => Some(lock_data_dir(&config.data_dir)?),
            Access::Shared => None,
        };
        let store =
            Store::connect(&options).await.with_context(|| format!("opening the database {}", options.display()))?;
        let stored_id = store.stored_master_key_id().await?;
        let master = load_master_key(&config, stored_id.as_deref())?;
        let ring = Arc::new(KeyRing::new(master));
        store.load_system_keys(&ring).await?;
        store.load_tenant_keys(&ring, &TenantId::default()).await?;
        for tenant in store.tenants_with_keys().await? {
            store.load_tenant_keys(&ring, &tenant).await?;
        }
        carepost_model::install_redaction_key(ring.secret_bytes(SYSTEM_SCOPE, SecretPurpose::LogRedaction)?.as_ref());
        let audit = Audit::new(
            store.clone(),
            CheckpointKey::from_ring(&ring)?,
            config.audit.checkpoint_every,
            Some(config.in_data_dir(&config.audit.anchor_file)),
        );
        let blobs = open_blob_store(&config, &config.blobs).await?;
        Ok(Installation { config, store, ring, audit, blobs, _lock: lock })
    }

    /// Signs the audit head this process wrote (if any) and closes the database.
    pub async fn close(self) -> anyhow::Result<()> {
        self.audit.checkpoint().await?;
        self.store.close().await;
        Ok(())
    }
}
