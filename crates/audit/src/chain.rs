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

use crate::{Event, Outcome};

pub(crate) const GENESIS: [u8; 32] = [0u8; 32];

/// How far the signed head may fall behind the newest record while carepost serves. The
/// server signs on this tick (see [`Audit::sign_head`]) and at shutdown; docs/audit.md
/// promises this bound.
pub const HEAD_SIGN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The action of the record a starting server writes when it finds records no signed head
/// covers (the previous process stopped without signing: a crash or a kill).
pub const UNANCHORED_ACTION: &str = "audit.unanchored";

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
    /// Held while appending to the anchor file; holds the newest checkpoint known to be in
    /// it (read from the file once, then kept here so the file is not re-read every tick).
    anchored: tokio::sync::Mutex<Option<i64>>,
    head: std::sync::Mutex<Head>,
}

/// What this process knows about the head of the chain, kept outside the database. The
/// records a process committed are the ones it can vouch for: it signs exactly those, and
/// never a head it merely read, so a tail deleted or rewritten in the database between two
/// signatures is named by the next one instead of being signed over.
#[derive(Default)]
struct Head {
    /// The newest record this process committed: sequence number and hash.
    written: Option<(i64, Vec<u8>)>,
    /// The newest sequence number this process has signed.
    signed: i64,
}

impl Inner {
    fn head(&self) -> std::sync::MutexGuard<'_, Head> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_written(&self, seq: i64, hash: Vec<u8>) {
        let mut head = self.head();
        if head.written.as_ref().is_none_or(|(w, _)| seq > *w) {
            head.written = Some((seq, hash));
        }
    }

    fn note_signed(&self, seq: i64) {
        let mut head = self.head();
        head.signed = head.signed.max(seq);
    }
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
                anchored: tokio::sync::Mutex::new(None),
                head: std::sync::Mutex::new(Head::default()),
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
            .write(move |tx| {
                Box::pin(async move {
                    this.append_in(tx, &event).await.map_err(|e| match e {
                        AuditError::Store(s) => s,
                        other => StoreError::Corrupt(other.to_string()),
                    })
                })
            })
            .await?;
        Ok(seq)
    }

    /// Appends inside the caller's transaction, for steps that must be durable together with
    /// their audit record (a message accepted and its `accepted` record).
    pub async fn append_in(&self, tx: &mut Tx, event: &Event) -> Result<i64, AuditError> {
        let stored = audit_log::head(tx).await?;
        let known = self.inner.head().written.clone();
        // Chain onto the newest record this process committed unless the database holds a
        // newer one (another process, such as a CLI command, appended since). A stored head
        // behind or different from the known one means records were deleted or rewritten:
        // chaining onto the known record leaves that gap visible to `audit verify` instead
        // of reusing the lost sequence numbers.
        let (prev_seq, prev_hash) = match (stored, known) {
            (Some(s), Some(k)) if s.0 > k.0 => {
                // Records appended since must follow ours unchanged: if ours was rewritten
                // (and a forged record put after it), chaining onto the stored head would
                // have the next signature vouch for the forgery. Chain onto what we wrote
                // instead, so that `audit verify` sees the break after the stored head.
                if audit_log::hash_at(tx, k.0).await?.as_deref() == Some(&k.1[..]) {
                    s
                } else {
                    tracing::error!(
                        seq = k.0,
                        "an audit record this process wrote was rewritten or deleted in the database"
                    );
                    (s.0, k.1)
                }
            }
            (stored, Some(k)) => {
                if stored.as_ref() != Some(&k) {
                    tracing::error!(
                        seq = k.0,
                        stored = stored.as_ref().map(|s| s.0),
                        "audit records this process wrote were deleted or rewritten in the database"
                    );
                }
                k
            }
            (Some(s), None) => s,
            (None, None) => (0, GENESIS.to_vec()),
        };
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
        let signed = row.seq % self.inner.checkpoint_every == 0;
        if signed {
            audit_log::insert_checkpoint(tx, &self.checkpoint_row(row.seq, &row.hash)).await?;
        }
        let (inner, seq, hash) = (self.inner.clone(), row.seq, row.hash.clone());
        tx.on_commit(move || {
            inner.note_written(seq, hash);
            if signed {
                inner.note_signed(seq);
            }
        });
        Ok(row.seq)
    }

    fn checkpoint_row(&self, seq: i64, hash: &[u8]) -> CheckpointRow {
        let at = Timestamp::now().as_micros();
        CheckpointRow {
            seq,
            hash: hash.to_vec(),
            at,
            key_id: self.inner.key.key_id.clone(),
            signature: self.inner.key.sign(seq, hash, at),
        }
    }

    /// Signs the newest record this process committed, unless it is signed already, and
    /// brings the anchor file up to date. The server calls this every
    /// [`HEAD_SIGN_INTERVAL`]; [`Audit::checkpoint`] at shutdown.
    ///
    /// The signature names the record as this process wrote it, whatever the database holds
    /// now: if the record is gone or different, `audit verify` reports the truncation or the
    /// rewrite by sequence number, and an `audit.tamper` record says when it was noticed.
    /// Returns the sequence number of the newest head this process signed.
    pub async fn sign_head(&self) -> Result<Option<i64>, AuditError> {
        if let Some((seq, how)) = self.sign_written().await? {
            tracing::error!(seq, how, "audit record {seq} was {how} in the database after carepost wrote it");
            self.append(
                Event::new("system", "audit.tamper")
                    .target(format!("audit:{seq}"))
                    .outcome(Outcome::Failure)
                    .detail("seq", seq)
                    .detail("found", how),
            )
            .await?;
            // The record saying so is signed at once too: this may be the last tick.
            self.sign_written().await?;
        }
        let signed = self.inner.head().signed;
        Ok((signed > 0).then_some(signed))
    }

    /// Signs the written head if it is not signed yet and updates the anchor file. Returns
    /// the signed record's sequence number and what happened to it when the database no
    /// longer holds it as written.
    async fn sign_written(&self) -> Result<Option<(i64, &'static str)>, AuditError> {
        let pending = {
            let head = self.inner.head();
            match &head.written {
                // A process that wrote nothing has nothing to vouch for (and a CLI command
                // that only reads leaves the anchor file alone).
                None => return Ok(None),
                Some((seq, hash)) if *seq > head.signed => Some((*seq, hash.clone())),
                Some(_) => None,
            }
        };
        let Some((seq, hash)) = pending else {
            self.write_anchors(None).await?;
            return Ok(None);
        };
        let c = self.checkpoint_row(seq, &hash);
        let row = c.clone();
        let stored = self
            .inner
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let stored = audit_log::hash_at(tx, seq).await?;
                    audit_log::insert_checkpoint(tx, &row).await?;
                    Ok(stored)
                })
            })
            .await?;
        self.inner.note_signed(seq);
        self.write_anchors(Some(c)).await?;
        Ok(match stored {
            Some(h) if h == hash => None,
            Some(_) => Some((seq, "rewritten")),
            None => Some((seq, "deleted")),
        })
    }

    /// Signs the head this process wrote, if it is not signed yet, and brings the anchor
    /// file up to date: at shutdown, and at the end of every CLI command that appends.
    /// Returns the sequence number of the newest head this process signed.
    pub async fn checkpoint(&self) -> Result<Option<i64>, AuditError> {
        self.sign_head().await
    }

    /// Appends to the anchor file every checkpoint the database has that the file lacks.
    pub async fn sync_anchors(&self) -> Result<(), AuditError> {
        self.write_anchors(None).await
    }

    /// Appends to the anchor file the checkpoints newer than its last line: those in the
    /// database, and `own` (just signed) as this process made it, even if the database no
    /// longer holds it by the time the file is written.
    async fn write_anchors(&self, own: Option<CheckpointRow>) -> Result<(), AuditError> {
        let Some(path) = self.inner.anchor_path.clone() else { return Ok(()) };
        let mut anchored = self.inner.anchored.lock().await;
        let last = match *anchored {
            Some(seq) => seq,
            None => crate::verify::read_anchors(&path)?.last().map(|a| a.seq).unwrap_or(0),
        };
        let mut fresh = self.inner.store.audit_checkpoints_after(last).await?;
        if let Some(own) = own.filter(|c| c.seq > last) {
            fresh.retain(|c| c.seq != own.seq);
            fresh.push(own);
            fresh.sort_by_key(|c| c.seq);
        }
        let Some(newest) = fresh.last().map(|c| c.seq) else {
            *anchored = Some(last);
            return Ok(());
        };
        let err = |source| AuditError::Anchor { path: path.clone(), source };
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(err)?;
        let mut text = String::new();
        for c in &fresh {
            text.push_str(&crate::verify::anchor_line(c));
            text.push('\n');
        }
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
        *anchored = Some(newest);
        Ok(())
    }

    /// At start: names the records no signed head covers, which a previous process wrote
    /// and could not sign because it stopped without shutting down. Nobody can vouch for
    /// them (a record deleted from their end before this start leaves no trace), so an
    /// `audit.unanchored` record names their range before this process signs over them, and
    /// `audit verify` keeps reporting it. Returns the range, if any.
    pub async fn recover(&self) -> Result<Option<(i64, i64)>, AuditError> {
        let Some(head) = self.inner.store.audit_head_seq().await? else { return Ok(None) };
        let mut covered = self.inner.store.audit_last_checkpoint().await?.unwrap_or(0);
        if let Some(path) = &self.inner.anchor_path {
            covered = covered.max(crate::verify::read_anchors(path)?.iter().map(|a| a.seq).max().unwrap_or(0));
        }
        if head <= covered {
            return Ok(None);
        }
        let from = covered + 1;
        tracing::warn!(
            from,
            to = head,
            "audit records {from} to {head} were never signed: carepost stopped without shutting down"
        );
        self.append(
            Event::new("system", UNANCHORED_ACTION)
                .target(format!("audit:{from}-{head}"))
                .outcome(Outcome::Failure)
                .detail("from", from)
                .detail("to", head),
        )
        .await?;
        Ok(Some((from, head)))
    }
}
