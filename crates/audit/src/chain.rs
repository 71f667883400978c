//! Appending to the chain and signing checkpoints.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};
use carepost_model::Timestamp;
use carepost_store::audit_log::{self, AuditRow, CheckpointRow};
use carepost_store::keys::SYSTEM_SCOPE;
use carepost_store::{Store, StoreError, Tx};
use carepost_vault::{KeyRing, SecretPurpose, VaultError};

use crate::Event;

pub(crate) const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("audit anchor file {path}: {source}")]
    Anchor { path: PathBuf, source: std::io::Error },
    #[error("writing the export: {0}")]
    Export(std::io::Error),
}

/// The Ed25519 key that signs checkpoints, derived from an installation-wide vault secret so
/// that nobody without the master key can sign.
pub struct CheckpointKey {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl CheckpointKey {
    pub fn from_ring(ring: &KeyRing) -> Result<Self, AuditError> {
        let seed = ring.secret_bytes(SYSTEM_SCOPE, SecretPurpose::AuditSigning)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).map_err(|_| VaultError::Format)?;
        let key_id = hex::encode(&digest::digest(&digest::SHA256, pair.public_key().as_ref()).as_ref()[..8]);
        Ok(CheckpointKey { pair, key_id })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, for verifying exported checkpoints outside carepost.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub(crate) fn sign(&self, seq: i64, hash: &[u8], at: i64) -> Vec<u8> {
        self.pair.sign(&checkpoint_message(seq, hash, at)).as_ref().to_vec()
    }

    pub(crate) fn verifies(&self, c: &CheckpointRow) -> bool {
        c.key_id == self.key_id
            && signature::UnparsedPublicKey::new(&signature::ED25519, self.public_key())
                .verify(&checkpoint_message(c.seq, &c.hash, c.at), &c.signature)
                .is_ok()
    }
}

fn checkpoint_message(seq: i64, hash: &[u8], at: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(80);
    m.extend_from_slice(b"carepost-audit-checkpoint-v1\0");
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at.to_be_bytes());
    m
}

fn put_field(h: &mut digest::Context, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// SHA-256 over the canonical encoding of a record: a domain tag, then every field
/// length-prefixed in a fixed order, then the previous record's hash. Public so that tools
/// outside carepost can check an export (docs/audit.md describes the encoding).
pub fn record_hash(r: &AuditRow) -> [u8; 32] {
    let mut h = digest::Context::new(&digest::SHA256);
    h.update(b"carepost-audit-record-v1\0");
    h.update(&r.seq.to_be_bytes());
    h.update(&r.at.to_be_bytes());
    put_field(&mut h, r.actor.as_bytes());
    put_field(&mut h, r.action.as_bytes());
    put_field(&mut h, r.target.as_bytes());
    put_field(&mut h, r.source_ip.as_deref().unwrap_or("").as_bytes());
    put_field(&mut h, r.outcome.as_bytes());
    put_field(&mut h, r.details.as_bytes());
    put_field(&mut h, &r.prev_hash);
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    out
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) key: CheckpointKey,
    checkpoint_every: i64,
    pub(crate) anchor_path: Option<PathBuf>,
    anchor_lock: tokio::sync::Mutex<()>,
}

/// The audit log of one installation. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Audit(key {})", self.inner.key.key_id)
    }
}

impl Audit {
    /// `anchor_path`: a file outside the database where signed checkpoints are also kept.
    pub fn new(store: Store, key: CheckpointKey, checkpoint_every: u32, anchor_path: Option<PathBuf>) -> Self {
        Audit {
            inner: Arc::new(Inner {
                store,
                key,
                checkpoint_every: i64::from(checkpoint_every.max(1)),
                anchor_path,
                anchor_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn checkpoint_key(&self) -> &CheckpointKey {
        &self.inner.key
    }

    /// Appends one record and returns its sequence number once it is durable.
    pub async fn append(&self, event: Event) -> Result<i64, AuditError> {
        let this = self.clone();
        let seq = self
            .inner
            .store
            .writer()
            .run(move |tx| Box::pin(async move { this.append_in(tx, &event).await.map_err(into_store_error) }))
            .await?;
        Ok(seq)
    }

    /// Appends inside the caller's transaction, for steps that must be durable together with
    /// their audit record (a message accepted and its `accepted` record).
    pub async fn append_in(&self, tx: &mut Tx, event: &Event) -> Result<i64, AuditError> {
        let (prev_seq, prev_hash) = audit_log::head(tx).await?.unwrap_or((0, GENESIS.to_vec()));
        let mut row = AuditRow {
            seq: prev_seq + 1,
            at: Timestamp::now().as_micros(),
            actor: event.actor.clone(),
            action: event.action.clone(),
            target: event.target.clone(),
            source_ip: event.source_ip.map(|ip| ip.to_string()),
            outcome: event.outcome.as_str().to_owned(),
            details: serde_json::to_string(&event.details).unwrap_or_else(|_| "{}".into()),
            prev_hash,
            hash: Vec::new(),
        };
        row.hash = record_hash(&row).to_vec();
        audit_log::insert(tx, &row).await?;
        if row.seq % self.inner.checkpoint_every == 0 {
            self.sign_in(tx, row.seq, &row.hash).await?;
        }
        Ok(row.seq)
    }

    async fn sign_in(&self, tx: &mut Tx, seq: i64, hash: &[u8]) -> Result<(), AuditError> {
        let at = Timestamp::now().as_micros();
        let c = CheckpointRow {
            seq,
            hash: hash.to_vec(),
            at,
            key_id: self.inner.key.key_id.clone(),
            signature: self.inner.key.sign(seq, hash, at),
        };
        audit_log::insert_checkpoint(tx, &c).await?;
        Ok(())
    }

    /// Signs the head of the chain if it is not signed yet (at shutdown), and brings the
    /// anchor file up to date. Returns the sequence number signed.
    pub async fn checkpoint(&self) -> Result<Option<i64>, AuditError> {
        let this = self.clone();
        let signed = self
            .inner
            .store
            .writer()
            .run(move |tx| {
                Box::pin(async move {
                    let Some((seq, hash)) = audit_log::head(tx).await? else { return Ok(None) };
                    if audit_log::last_checkpoint(tx).await? == Some(seq) {
                        return Ok(Some(seq));
                    }
                    this.sign_in(tx, seq, &hash).await.map_err(into_store_error)?;
                    Ok(Some(seq))
                })
            })
            .await?;
        self.sync_anchors().await?;
        Ok(signed)
    }

    /// Appends to the anchor file every checkpoint the database has that the file lacks.
    pub async fn sync_anchors(&self) -> Result<(), AuditError> {
        let Some(path) = self.inner.anchor_path.clone() else { return Ok(()) };
        let _guard = self.inner.anchor_lock.lock().await;
        let anchored = crate::verify::read_anchors(&path)?.last().map(|a| a.seq).unwrap_or(0);
        let fresh: Vec<_> = self
            .inner
            .store
            .audit_checkpoints()
            .await?
            .into_iter()
            .filter(|c| c.seq > anchored)
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let err = |source| AuditError::Anchor { path: path.clone(), source };
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(err)?;
        let mut text = String::new();
        for c in &fresh {
            text.push_str(&crate::verify::anchor_line(c));
            text.push('\n');
        }
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
        Ok(())
    }
}

fn into_store_error(e: AuditError) -> StoreError {
    match e {
        AuditError::Store(s) => s,
        other => StoreError::Corrupt(other.to_string()),
    }
}
