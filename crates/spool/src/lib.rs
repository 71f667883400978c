//! The spool: the durable queue's way in and out.
//!
//! [`Spool::accept`] makes a message durable (sealed body, queue rows and audit record
//! committed) before anyone may say 250 or 202; [`Spool::open`] reads it back for delivery,
//! the portal and the operator's tools. It sits below intake (which decides what to queue)
//! and delivery (which sends it, and queues its own DSNs), so neither depends on the other.
//! Policy's decisions cross it as typed values; JSON exists only in the queue rows.

use std::sync::Arc;

use bytes::Bytes;
use carepost_audit::{Audit, Event};
use carepost_model::{Arrival, Envelope, MessageId, Recipient, TenantId, Timestamp};
use carepost_policy::Decision;
use carepost_store::queue::{self, MessageRow, RecipientRow, state};
use carepost_store::{Store, StoreError, keys};
use carepost_vault::{BlobKey, BlobStore, DataKey, KeyRing, VaultError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("message {0} not found")]
    NotFound(String),
    #[error("stored message {id} is damaged: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("a message needs at least one recipient")]
    NoRecipients,
}

/// A message handed to carepost, with what ingress learned about it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub tenant: TenantId,
    pub envelope: Envelope,
    pub arrival: Arrival,
    /// The whole message as it will be delivered (with carepost's Received header).
    pub body: Bytes,
    /// The Message-ID header, for duplicate detection (stored as a blind index).
    pub message_id_header: Option<String>,
    /// Inspection summary (JSON): verdict, entity types and counts; never values.
    pub inspection: Option<String>,
    /// Policy's decision for each recipient, in envelope order; none for carepost's own
    /// notices, which go as the transport says.
    pub decisions: Vec<Option<Decision>>,
    /// Recipients policy quarantines instead of queueing.
    pub quarantined: Vec<bool>,
    /// Value-free facts for the `message.accepted` audit record (verdict, rules, methods).
    pub audit_details: Vec<(String, String)>,
    /// The argon2id hash (PHC string) of a passphrase the sender set: recipients who read in
    /// the portal may prove their address with it instead of a one-time code. Sealed with the
    /// envelope.
    pub portal_passphrase: Option<String>,
}

impl Submission {
    pub fn new(tenant: TenantId, envelope: Envelope, arrival: Arrival, body: Bytes) -> Self {
        Submission {
            tenant,
            envelope,
            arrival,
            body,
            message_id_header: None,
            inspection: None,
            decisions: Vec::new(),
            quarantined: Vec::new(),
            audit_details: Vec::new(),
            portal_passphrase: None,
        }
    }
}

/// The sealed part of the envelope stored on the message row (recipients have their own rows).
#[derive(Serialize, Deserialize)]
struct SealedEnvelope {
    #[serde(flatten)]
    envelope: Envelope,
    /// See [`Submission::portal_passphrase`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    portal_passphrase: Option<String>,
}

/// The data-key object name of a message: body, envelope and recipients are all sealed under it.
pub fn message_object(id: &str) -> String {
    format!("msg/{id}")
}

/// Sealed bodies up to this size are kept in the database ([`queue::INLINE_BODY`]); larger
/// ones are blobs. At 64 KiB nearly all clinical mail without attachments, and much with a
/// small one, shares the queue's commit, while the database does not carry the attachments
/// that make up most of the bytes.
pub const INLINE_BODY_MAX: usize = 64 * 1024;

fn body_blob(id: &MessageId) -> Result<BlobKey, VaultError> {
    BlobKey::new("msg", &id.to_string())
}

fn recipient_field(idx: i64) -> String {
    format!("rcpt/{idx}")
}

/// A stored message opened with its keys.
pub struct OpenedMessage {
    pub row: MessageRow,
    pub tenant: TenantId,
    pub envelope: Envelope,
    pub arrival: Arrival,
    pub recipients: Vec<OpenedRecipient>,
    /// See [`Submission::portal_passphrase`].
    pub portal_passphrase: Option<String>,
    key: DataKey,
}

pub struct OpenedRecipient {
    pub row: RecipientRow,
    pub recipient: Recipient,
    /// Policy's decision, read back from the row; one that no longer reads is the strictest
    /// ([`Decision::strictest`]).
    pub decision: Option<Decision>,
    /// The last remote reply or local reason, opened.
    pub last_reply: Option<String>,
}

impl OpenedMessage {
    /// Seals a recipient's reply text under this message's key, for [`queue::RecipientUpdate`].
    pub fn seal_reply(&self, idx: i64, text: &str) -> Result<Vec<u8>, VaultError> {
        self.key.seal_field(&format!("reply/{idx}"), text.as_bytes())
    }

    pub fn data_key(&self) -> &DataKey {
        &self.key
    }
}

/// The way into the queue. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    store: Store,
    ring: Arc<KeyRing>,
    blobs: Arc<dyn BlobStore>,
    audit: Audit,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spool")
    }
}

impl Spool {
    pub fn new(store: Store, ring: Arc<KeyRing>, blobs: Arc<dyn BlobStore>, audit: Audit) -> Self {
        Spool { store, ring, blobs, audit, wake: Arc::new(Notify::new()) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Woken whenever new work is queued.
    pub fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    /// Makes `s` durable and returns its id: the body is sealed, then its data key, queue rows,
    /// `message.accepted` audit record and (up to [`INLINE_BODY_MAX`]) the sealed body commit
    /// in one group transaction; a larger body is a blob, written and fsynced first. Only
    /// after this returns may ingress say 250 (or the API 202).
    pub async fn accept(&self, s: Submission) -> Result<MessageId, SpoolError> {
        if s.envelope.recipients.is_empty() {
            return Err(SpoolError::NoRecipients);
        }
        let id = MessageId::new();
        let id_text = id.to_string();
        let object = message_object(&id_text);
        let (key, wrapped) = self.ring.new_data_key(&s.tenant, &object)?;
        let key = Arc::new(key);

        let sealed_body = {
            let (key, body) = (key.clone(), s.body.clone());
            if body.len() > 256 * 1024 {
                tokio::task::spawn_blocking(move || key.seal(&body))
                    .await
                    .map_err(|e| SpoolError::Corrupt { id: id_text.clone(), reason: e.to_string() })??
            } else {
                key.seal(&body)?
            }
        };
        // A small body goes into the database with the queue rows and shares their commit; a
        // large one is a blob, durable before the rows that name it commit.
        let (blob, inline_body) = if sealed_body.len() <= INLINE_BODY_MAX {
            (None, Some(sealed_body))
        } else {
            let blob = body_blob(&id)?;
            self.blobs.put(&blob, Bytes::from(sealed_body)).await?;
            (Some(blob), None)
        };

        let now = Timestamp::now().as_micros();
        let envelope_json = serde_json::to_vec(&SealedEnvelope {
            envelope: Envelope { recipients: Vec::new(), ..s.envelope.clone() },
            portal_passphrase: s.portal_passphrase.clone(),
        })
        .map_err(|e| SpoolError::Corrupt { id: id_text.clone(), reason: e.to_string() })?;
        let arrival_json = serde_json::to_vec(&s.arrival)
            .map_err(|e| SpoolError::Corrupt { id: id_text.clone(), reason: e.to_string() })?;
        let message = MessageRow {
            id: id_text.clone(),
            tenant: s.tenant.to_string(),
            received_at: now,
            source: s.arrival.source.as_str().to_owned(),
            size: s.body.len() as i64,
            body_blob: blob.as_ref().map_or_else(|| queue::INLINE_BODY.to_owned(), BlobKey::to_string),
            envelope: key.seal_field("envelope", &envelope_json)?,
            arrival: key.seal_field("arrival", &arrival_json)?,
            message_id_index: s
                .message_id_header
                .as_deref()
                .map(|m| self.ring.blind_index(&s.tenant, "message-id", m.trim().as_bytes()))
                .transpose()?,
            inspection: s.inspection.clone(),
            state: state::ACTIVE.into(),
            done_at: None,
        };
        let mut recipients = Vec::with_capacity(s.envelope.recipients.len());
        for (i, r) in s.envelope.recipients.iter().enumerate() {
            let idx = i as i64;
            let json = serde_json::to_vec(r)
                .map_err(|e| SpoolError::Corrupt { id: id_text.clone(), reason: e.to_string() })?;
            let quarantined = s.quarantined.get(i).copied().unwrap_or(false);
            recipients.push(RecipientRow {
                message_id: id_text.clone(),
                idx,
                tenant: s.tenant.to_string(),
                address: key.seal_field(&recipient_field(idx), &json)?,
                address_index: self.ring.blind_index(&s.tenant, "rcpt", r.address.canonical().as_bytes())?,
                domain_index: self.ring.blind_index(&s.tenant, "domain", r.address.domain().as_bytes())?,
                decision: s.decisions.get(i).and_then(Option::as_ref).map(Decision::to_json),
                state: if quarantined { state::QUARANTINED } else { state::QUEUED }.into(),
                attempts: 0,
                next_attempt_at: now,
                lease_until: None,
                last_reply: None,
                method: None,
                delay_notified: false,
                updated_at: now,
            });
        }

        let mut event = Event::new(actor_of(&s.arrival), "message.accepted")
            .target(format!("msg:{id_text}"))
            .ip(s.arrival.client_ip)
            .detail("source", s.arrival.source.as_str())
            .detail("recipients", recipients.len())
            .detail("quarantined", recipients.iter().filter(|r| r.state == state::QUARANTINED).count())
            .detail("size", s.body.len());
        for (key, value) in &s.audit_details {
            event = event.detail(key.clone(), value);
        }
        let (tenant, audit) = (s.tenant.clone(), self.audit.clone());
        let committed = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    keys::put_data_key(tx, &tenant, &object, &wrapped).await?;
                    queue::insert_message(tx, &message, &recipients).await?;
                    if let Some(sealed) = &inline_body {
                        queue::insert_inline_body(tx, &message.id, sealed).await?;
                    }
                    audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok(())
                })
            })
            .await;
        if let Err(e) = committed {
            // Nothing references the blob; removing it keeps the store tidy. The client gets a
            // temporary failure and will retry.
            if let Some(blob) = &blob {
                let _ = self.blobs.delete(blob).await;
            }
            return Err(e.into());
        }
        self.wake.notify_one();
        Ok(id)
    }

    /// Opens a stored message's envelope, arrival and recipients (not its body).
    pub async fn open(&self, id: &str) -> Result<OpenedMessage, SpoolError> {
        let row = self.store.message(id).await?.ok_or_else(|| SpoolError::NotFound(id.to_owned()))?;
        let corrupt = |reason: String| SpoolError::Corrupt { id: id.to_owned(), reason };
        let tenant = TenantId::new(&row.tenant).map_err(|e| corrupt(e.to_string()))?;
        let key = self.store.data_key(&self.ring, &tenant, &message_object(id)).await?;
        let envelope: SealedEnvelope =
            serde_json::from_slice(&key.open_field("envelope", &row.envelope)?).map_err(|e| corrupt(e.to_string()))?;
        let arrival: Arrival =
            serde_json::from_slice(&key.open_field("arrival", &row.arrival)?).map_err(|e| corrupt(e.to_string()))?;
        let mut recipients = Vec::new();
        for r in self.store.recipients(id).await? {
            let recipient: Recipient = serde_json::from_slice(&key.open_field(&recipient_field(r.idx), &r.address)?)
                .map_err(|e| corrupt(e.to_string()))?;
            let last_reply = r
                .last_reply
                .as_ref()
                .map(|sealed| key.open_field(&format!("reply/{}", r.idx), sealed))
                .transpose()?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let decision = r.decision.as_deref().map(Decision::read_stored);
            recipients.push(OpenedRecipient { row: r, recipient, decision, last_reply });
        }
        let SealedEnvelope { mut envelope, portal_passphrase } = envelope;
        envelope.recipients = recipients.iter().map(|r| r.recipient.clone()).collect();
        Ok(OpenedMessage { row, tenant, envelope, arrival, recipients, portal_passphrase, key })
    }

    /// The message as it will be delivered.
    pub async fn body(&self, message: &OpenedMessage) -> Result<Bytes, SpoolError> {
        let sealed = if message.row.body_blob == queue::INLINE_BODY {
            let id = &message.row.id;
            let sealed = self.store.inline_body(id).await?;
            Bytes::from(
                sealed.ok_or_else(|| SpoolError::Corrupt { id: id.clone(), reason: "its body is missing".into() })?,
            )
        } else {
            self.blobs.get(&BlobKey::parse(&message.row.body_blob)?).await?
        };
        let key = &message.key;
        let plain = if sealed.len() > 256 * 1024 {
            // Opening is CPU work proportional to the size; keep it off the reactor.
            let sealed = sealed.clone();
            let opened = tokio::task::block_in_place(|| key.open(&sealed));
            opened?
        } else {
            key.open(&sealed)?
        };
        Ok(Bytes::from(plain))
    }
}

fn actor_of(arrival: &Arrival) -> String {
    match &arrival.authenticated_as {
        Some(account) => format!("account:{}", carepost_model::redaction_tag(account.as_bytes())),
        None => arrival.source.as_str().to_owned(),
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;
    use carepost_audit::CheckpointKey;
    use carepost_vault::{LocalDirBlobStore, MasterKey};

    /// A spool with its own store, keys and blobs in `dir`.
    pub async fn spool(dir: &std::path::Path) -> Spool {
        let store = Store::open(&dir.join("q.db")).await.unwrap();
        let ring = Arc::new(KeyRing::new(MasterKey::generate().unwrap()));
        store.load_system_keys(&ring).await.unwrap();
        store.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
        let audit = Audit::new(store.clone(), CheckpointKey::from_ring(&ring).unwrap(), 100, None);
        let blobs = Arc::new(LocalDirBlobStore::open(dir.join("blobs")).unwrap());
        Spool::new(store, ring, blobs, audit)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::spool;
    use super::*;
    use carepost_model::{Address, Source};

    fn submission(body: &str) -> Submission {
        let envelope = Envelope {
            mail_from: Some(Address::parse("clinic@example.org").unwrap()),
            recipients: vec![
                Recipient::new(Address::parse("patient@example.net").unwrap()),
                Recipient::new(Address::parse("Other@Example.com").unwrap()),
            ],
            dsn_ret: None,
            dsn_envid: Some("env-1".into()),
            require_tls: true,
            smtputf8: false,
            body: Default::default(),
        };
        let arrival = Arrival {
            source: Source::Relay,
            client_ip: Some("127.0.0.1".parse().unwrap()),
            helo: Some("relay.example.org".into()),
            authenticated_as: None,
            tls: None,
            sender_auth: None,
        };
        let mut s = Submission::new(TenantId::default(), envelope, arrival, Bytes::from(body.to_owned()));
        s.message_id_header = Some("<abc@example.org>".into());
        s.quarantined = vec![false, true];
        s
    }

    #[tokio::test]
    async fn accepted_messages_are_sealed_queued_audited_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path()).await;
        let marker = "Subject: MARKER-7f3a\r\n\r\nSSN 123-45-6789\r\n";
        let id = spool.accept(submission(marker)).await.unwrap();

        let opened = spool.open(&id.to_string()).await.unwrap();
        assert_eq!(opened.envelope.mail_from.as_ref().unwrap().as_str(), "clinic@example.org");
        assert_eq!(opened.envelope.dsn_envid.as_deref(), Some("env-1"));
        assert!(opened.envelope.require_tls);
        assert_eq!(opened.recipients.len(), 2);
        assert_eq!(opened.recipients[1].recipient.address.as_str(), "Other@example.com");
        assert_eq!(opened.recipients[0].row.state, "queued");
        assert_eq!(opened.recipients[1].row.state, "quarantined");
        assert_eq!(&spool.body(&opened).await.unwrap()[..], marker.as_bytes());

        let index = spool.ring().blind_index(&TenantId::default(), "message-id", b"<abc@example.org>").unwrap();
        assert_eq!(spool.store().messages_with_message_id("default", &index).await.unwrap(), vec![id.to_string()]);
        let v = spool.audit().verify().await.unwrap();
        assert!(v.is_ok() && v.records == 1);

        spool.store().close().await;
        for needle in ["MARKER-7f3a", "patient@example.net", "example.net", "123-45-6789", "clinic@example.org"] {
            let found = carepost_testkit::files_containing(dir.path(), needle.as_bytes());
            assert!(found.is_empty(), "{needle} readable in {found:?}");
        }
    }

    #[tokio::test]
    async fn small_bodies_share_the_commit_and_large_ones_are_blobs() {
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path()).await;
        let small = format!("Subject: small\r\n\r\n{}\r\n", "s".repeat(1000));
        let large = format!("Subject: large\r\n\r\n{}\r\n", "l".repeat(INLINE_BODY_MAX));
        let (small_id, large_id) =
            (spool.accept(submission(&small)).await.unwrap(), spool.accept(submission(&large)).await.unwrap());

        let blobs: Vec<BlobKey> = spool.blobs().list().try_collect().await.unwrap();
        assert_eq!(blobs.len(), 1, "only the large body is a blob: {blobs:?}");
        let small_opened = spool.open(&small_id.to_string()).await.unwrap();
        assert_eq!(small_opened.row.body_blob, queue::INLINE_BODY);
        assert_eq!(&spool.body(&small_opened).await.unwrap()[..], small.as_bytes());
        let large_opened = spool.open(&large_id.to_string()).await.unwrap();
        assert_eq!(large_opened.row.body_blob, blobs[0].to_string());
        assert_eq!(&spool.body(&large_opened).await.unwrap()[..], large.as_bytes());
    }

    #[tokio::test]
    async fn decisions_go_in_typed_and_come_back_typed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path()).await;
        let decision = Decision {
            method: Some(carepost_policy::Method::Portal),
            reveal_subject: true,
            matched_rules: vec!["phi".into()],
            ..Decision::default()
        };
        let mut s = submission("Subject: x\r\n\r\nbody");
        s.decisions = vec![Some(decision.clone()), None];
        let id = spool.accept(s).await.unwrap();
        let opened = spool.open(&id.to_string()).await.unwrap();
        assert_eq!(opened.recipients[0].decision.as_ref(), Some(&decision));
        assert_eq!(opened.recipients[1].decision, None, "no decision: the transport decides");
    }

    #[tokio::test]
    async fn concurrent_acceptance_shares_commits() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path()).await;
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let spool = spool.clone();
                tokio::spawn(async move { spool.accept(submission(&format!("Subject: {i}\r\n\r\nbody"))).await })
            })
            .collect();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let counts = spool.store().queue_counts().await.unwrap();
        assert_eq!(counts, vec![("quarantined".to_owned(), 100), ("queued".to_owned(), 100)]);
        assert!(spool.audit().verify().await.unwrap().is_ok());
    }
}
