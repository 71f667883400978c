//! Portal packaging: keeping a message sealed for one recipient to pick up in the secure
//! portal, instead of sending it.
//!
//! [`Portal::deliver`] seals a copy of the message under its own data key (object
//! `portal/<id>`), makes an unguessable single-purpose link for the recipient and one for the
//! sender, and returns the mail to send: the recipient's notification (no PHI: the
//! organization, a neutral subject, the link, the expiry date) and the sender's receipt (a
//! link to see opens and to retract). The caller queues both through normal delivery, which
//! DKIM-signs them; this crate does not depend on the queue.
//!
//! [`Portal::hand_over`] is the queue runner's way in: it keeps the copy, audits it and
//! returns the notices. [`Portal::expire_due`] is the expiry job the binary schedules.
//!
//! [`Portal::withdraw`] retracts or expires a message: its state changes and its data key is
//! deleted in one transaction (crypto-shredding), then the sealed copy is removed. Who the
//! recipient is and when and from where they opened the message are sealed under a second
//! key (`portal-track/<id>`) that outlives the content, so the sender can still see the opens.

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use carepost_audit::{Audit, Event, Outcome};
use carepost_model::{Address, Envelope, Id, TenantId, Timestamp};
use carepost_store::portal::{self as rows, PortalMessageRow, purpose, state};
use carepost_store::{Store, StoreError, keys};
use carepost_vault::{BlobKey, BlobStore, DataKey, KeyRing, VaultError};
use mail_builder::MessageBuilder;
use serde::{Deserialize, Serialize};

/// The blind-index field recipient addresses are looked up by (portal messages and accounts).
pub const RECIPIENT_INDEX: &str = "portal-rcpt";

/// Why the portal could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing, opening or a blob failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The message was retracted or expired: its content is gone.
    #[error("the message was withdrawn")]
    Withdrawn,
    /// No such portal message.
    #[error("portal message {0} not found")]
    NotFound(String),
    /// Stored data does not read back.
    #[error("portal message {id} is damaged: {reason}")]
    Corrupt {
        /// The portal message.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The notification could not be built.
    #[error("building the notice: {0}")]
    Notice(String),
}

/// Settings of portal packaging, from `[web]`.
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// Where links point (`https://portal.example.org`), without a trailing `/`.
    pub public_url: String,
    /// The organization named in notices; empty: the sender's domain.
    pub organization: String,
    /// How long a message stays available, in seconds.
    pub expiry_secs: i64,
    /// carepost's host name: the notices' domain when the message has no sender.
    pub hostname: String,
}

/// What carepost keeps (sealed) about a portal message beside its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalEnvelope {
    /// The From header as written (display name and address).
    pub from: String,
    /// The From header's address: where a reply goes.
    pub from_address: Option<Address>,
    /// The envelope sender.
    pub sender: Option<Address>,
    /// The Subject header.
    pub subject: String,
    /// The Message-ID header, for In-Reply-To.
    pub message_id: Option<String>,
    /// Everyone else the message was addressed to (To and Cc), for reply-all.
    pub others: Vec<Address>,
    /// The organization as the notice named it.
    pub organization: String,
    /// The argon2id hash of a passphrase the sender set: proof of the address on a first visit,
    /// as good as a one-time code. Shredded with the rest of the envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_hash: Option<String>,
}

/// A message to hand to normal delivery.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Null sender and one recipient.
    pub envelope: Envelope,
    /// The RFC 5322 message.
    pub message: Vec<u8>,
    /// Its Message-ID, with angle brackets, for the queue's duplicate detection.
    pub message_id: String,
}

/// One recipient's copy to keep.
#[derive(Debug, Clone, Copy)]
pub struct PickupRequest<'a> {
    /// The tenant whose keys seal the copy.
    pub tenant: &'a TenantId,
    /// The queue message it comes from.
    pub source_message: &'a str,
    /// The queue recipient (idx) the copy is for: opens, retraction and expiry are recorded
    /// in that recipient's history.
    pub source_recipient: Option<i64>,
    /// The envelope sender: gets the receipt.
    pub sender: Option<&'a Address>,
    /// The recipient who picks it up.
    pub recipient: &'a Address,
    /// The whole message.
    pub message: &'a [u8],
    /// Policy allows the real subject in the notification.
    pub reveal_subject: bool,
    /// The argon2id hash of the sender's passphrase for this message, if one was set.
    pub passphrase_hash: Option<&'a str>,
}

/// What [`Portal::deliver`] made.
#[derive(Debug, Clone)]
pub struct Pickup {
    /// The portal message id (`carepost portal status ID`).
    pub id: Id,
    /// When it expires.
    pub expires_at: Timestamp,
    /// To the recipient.
    pub notification: Notice,
    /// To the sender, when there is one.
    pub receipt: Option<Notice>,
}

/// Why a message is no longer readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// The sender or an administrator took it back.
    Retracted,
    /// Its time ran out.
    Expired,
}

/// A portal message with its sealed fields opened.
#[derive(Debug, Clone)]
pub struct PortalMessage {
    /// The stored row.
    pub row: PortalMessageRow,
    /// The recipient.
    pub recipient: Address,
    /// Sender, subject, participants; `None` once withdrawn (shredded).
    pub envelope: Option<PortalEnvelope>,
}

impl PortalMessage {
    /// Whether the content is still there.
    pub fn is_active(&self) -> bool {
        self.row.state == state::ACTIVE
    }
}

/// One time a recipient opened a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    /// When.
    #[serde(skip)]
    pub at: Option<Timestamp>,
    /// From which client address.
    pub ip: Option<IpAddr>,
    /// The browser, as it named itself (shortened).
    pub agent: String,
}

/// The SHA-256 under which a link token is stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

fn new_token() -> Result<String, VaultError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| VaultError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The data-key object of a portal message's content.
pub fn content_object(id: &str) -> String {
    format!("portal/{id}")
}

fn track_object(id: &str) -> String {
    format!("portal-track/{id}")
}

/// `p•••@example.net`: enough for a sender to recognise, not enough to read in a log.
pub fn masked(address: &Address) -> String {
    let first = address.local().chars().next().unwrap_or('?');
    format!("{first}•••@{}", address.domain())
}

/// The facts of a message the portal keeps. A message the parser cannot take keeps no
/// subject or participants; it is still stored whole.
fn envelope_of(message: &[u8], sender: Option<&Address>, recipient: &Address, organization: String) -> PortalEnvelope {
    // mail-parser can reach a debug assertion on some malformed nesting (see intake).
    let parsed =
        std::panic::catch_unwind(|| mail_parser::MessageParser::default().parse_headers(message)).ok().flatten();
    let mut env = PortalEnvelope {
        from: String::new(),
        from_address: None,
        sender: sender.cloned(),
        subject: String::new(),
        message_id: None,
        others: Vec::new(),
        organization,
        passphrase_hash: None,
    };
    let Some(m) = parsed else { return env };
    env.subject = m.subject().unwrap_or("").to_owned();
    env.message_id = m.message_id().map(|id| format!("<{id}>"));
    if let Some(from) = m.from().and_then(|a| a.first()) {
        env.from_address = from.address().and_then(|a| Address::parse(a).ok());
        env.from = match (from.name(), from.address()) {
            (Some(name), Some(addr)) => format!("{name} <{addr}>"),
            (None, Some(addr)) => addr.to_owned(),
            (Some(name), None) => name.to_owned(),
            (None, None) => String::new(),
        };
    }
    let me = recipient.canonical();
    let from = env.from_address.as_ref().map(Address::canonical);
    for list in [m.to(), m.cc()].into_iter().flatten() {
        for a in list.iter() {
            let Some(addr) = a.address().and_then(|t| Address::parse(t).ok()) else { continue };
            let c = addr.canonical();
            if c != me && Some(&c) != from.as_ref() && env.others.iter().all(|o| o.canonical() != c) {
                env.others.push(addr);
            }
        }
    }
    env
}

fn notice_date(t: Timestamp) -> String {
    let d = t.to_datetime();
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute())
}

/// Keeps messages for pick-up. Cheap to clone.
#[derive(Clone)]
pub struct Portal {
    store: Store,
    ring: Arc<KeyRing>,
    blobs: Arc<dyn BlobStore>,
    settings: Arc<PortalSettings>,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal").field("settings", &self.settings).finish()
    }
}

impl Portal {
    /// A portal over carepost's store, keys and blobs.
    pub fn new(store: Store, ring: Arc<KeyRing>, blobs: Arc<dyn BlobStore>, settings: PortalSettings) -> Self {
        Portal { store, ring, blobs, settings: Arc::new(settings) }
    }

    /// The settings in force.
    pub fn settings(&self) -> &PortalSettings {
        &self.settings
    }

    /// The blind index recipient addresses are found by.
    pub fn recipient_index(&self, tenant: &TenantId, address: &Address) -> Result<Vec<u8>, VaultError> {
        self.ring.blind_index(tenant, RECIPIENT_INDEX, address.canonical().as_bytes())
    }

    /// The organization named for a message from `sender`.
    fn organization_for(&self, sender: Option<&Address>) -> String {
        if !self.settings.organization.is_empty() {
            return self.settings.organization.clone();
        }
        sender.map(|s| s.domain().to_owned()).unwrap_or_else(|| self.settings.hostname.clone())
    }

    /// Keeps `request.message` sealed for its recipient and returns the notices to queue.
    pub async fn deliver(&self, request: PickupRequest<'_>) -> Result<Pickup, PortalError> {
        let id = Id::new();
        let id_text = id.to_string();
        let tenant = request.tenant;
        let organization = self.organization_for(request.sender);
        let mut envelope = envelope_of(request.message, request.sender, request.recipient, organization.clone());
        envelope.passphrase_hash = request.passphrase_hash.map(str::to_owned);
        let (content_key, content_wrapped) = self.ring.new_data_key(tenant, &content_object(&id_text))?;
        let (track_key, track_wrapped) = self.ring.new_data_key(tenant, &track_object(&id_text))?;

        let blob = BlobKey::new("portal", &id_text)?;
        self.blobs.put(&blob, Bytes::from(content_key.seal(request.message)?)).await?;

        let now = Timestamp::now();
        let expires_at = now.plus_seconds(self.settings.expiry_secs);
        let envelope_json = serde_json::to_vec(&envelope).map_err(|e| PortalError::Notice(e.to_string()))?;
        let row = PortalMessageRow {
            id: id_text.clone(),
            tenant: tenant.to_string(),
            source_message: request.source_message.to_owned(),
            source_recipient: request.source_recipient,
            recipient_index: self.recipient_index(tenant, request.recipient)?,
            recipient: track_key.seal_field("recipient", request.recipient.as_str().as_bytes())?,
            envelope: content_key.seal_field("envelope", &envelope_json)?,
            body_blob: blob.to_string(),
            size: request.message.len() as i64,
            created_at: now.as_micros(),
            expires_at: expires_at.as_micros(),
            state: state::ACTIVE.into(),
            withdrawn_at: None,
            withdrawn_by: None,
        };
        let pickup_token = new_token()?;
        let sender_token = new_token()?;
        let mut tokens = vec![(token_hash(&pickup_token), purpose::PICKUP)];
        if request.sender.is_some() {
            tokens.push((token_hash(&sender_token), purpose::SENDER));
        }
        let tenant_owned = tenant.clone();
        let stored = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    keys::put_data_key(tx, &tenant_owned, &content_object(&row.id), &content_wrapped).await?;
                    keys::put_data_key(tx, &tenant_owned, &track_object(&row.id), &track_wrapped).await?;
                    rows::insert_message(tx, &row, &tokens).await
                })
            })
            .await;
        if let Err(e) = stored {
            let _ = self.blobs.delete(&blob).await;
            return Err(e.into());
        }

        let notification = self.notification(&request, &envelope, &pickup_token, expires_at)?;
        let receipt = match request.sender {
            Some(sender) => Some(self.receipt(&request, sender, &organization, &id_text, &sender_token, expires_at)?),
            None => None,
        };
        Ok(Pickup { id, expires_at, notification, receipt })
    }

    fn notice_from(&self, sender: Option<&Address>) -> String {
        let domain = sender.map(Address::domain).unwrap_or(&self.settings.hostname);
        format!("no-reply@{domain}")
    }

    fn build(
        &self,
        from_name: &str,
        from: &str,
        to: &Address,
        subject: &str,
        text: String,
    ) -> Result<Notice, PortalError> {
        let id = format!("{}.portal@{}", Id::new(), self.settings.hostname);
        let message = MessageBuilder::new()
            .message_id(id.as_str())
            .from((from_name, from))
            .to(to.as_str())
            .subject(subject)
            .header("Auto-Submitted", mail_builder::headers::raw::Raw::new("auto-generated"))
            .text_body(text)
            .write_to_vec()
            .map_err(|e| PortalError::Notice(e.to_string()))?;
        let envelope = Envelope::to_one(None, to.clone());
        Ok(Notice { envelope, message, message_id: format!("<{id}>") })
    }

    fn notification(
        &self,
        request: &PickupRequest<'_>,
        envelope: &PortalEnvelope,
        token: &str,
        expires_at: Timestamp,
    ) -> Result<Notice, PortalError> {
        let org = &envelope.organization;
        let subject = if request.reveal_subject && !envelope.subject.is_empty() {
            envelope.subject.clone()
        } else {
            format!("Secure message from {org}")
        };
        let link = format!("{}/p/m/{token}", self.settings.public_url);
        let first_visit = if envelope.passphrase_hash.is_some() {
            "You can open it with the passphrase the sender gave you, or confirm your e-mail address with a code we send you and choose a password for all your secure messages."
        } else {
            "The first time, you confirm your e-mail address with a code we send you, then choose a password."
        };
        let text = format!(
            "{org} has sent you a secure message.\r\n\r\n\
             Read it here:\r\n{link}\r\n\r\n\
             {first_visit}\r\n\
             The message can be read until {}.\r\n\r\n\
             This link is for you alone: do not forward this e-mail. If you did not expect a message from {org}, you can ignore it.\r\n",
            notice_date(expires_at)
        );
        self.build(org, &self.notice_from(request.sender), request.recipient, &subject, text)
    }

    fn receipt(
        &self,
        request: &PickupRequest<'_>,
        sender: &Address,
        org: &str,
        id: &str,
        token: &str,
        expires_at: Timestamp,
    ) -> Result<Notice, PortalError> {
        let link = format!("{}/p/s/{token}", self.settings.public_url);
        let text = format!(
            "Your message (carepost id {}) was kept in the secure portal for {}, who was sent a link to read it.\r\n\r\n\
             Portal id: {id}\r\nAvailable until: {}\r\n\r\n\
             See when and from where it was opened, or withdraw it:\r\n{link}\r\n",
            request.source_message,
            masked(request.recipient),
            notice_date(expires_at)
        );
        self.build(org, &self.notice_from(Some(sender)), sender, "Your message is in the secure portal", text)
    }

    /// The message and purpose a link stands for; `None` for an unknown token.
    pub async fn resolve(&self, token: &str) -> Result<Option<(String, PortalMessage)>, PortalError> {
        if token.len() != 43 {
            return Ok(None);
        }
        let Some((purpose, id)) = self.store.portal_token(&token_hash(token)).await? else { return Ok(None) };
        Ok(Some((purpose, self.message(&id).await?)))
    }

    /// A portal message with its sealed fields opened (the envelope only while active).
    pub async fn message(&self, id: &str) -> Result<PortalMessage, PortalError> {
        let row = self.store.portal_message(id).await?.ok_or_else(|| PortalError::NotFound(id.to_owned()))?;
        let corrupt = |reason: String| PortalError::Corrupt { id: id.to_owned(), reason };
        let tenant = TenantId::new(&row.tenant).map_err(|e| corrupt(e.to_string()))?;
        let track = self.store.data_key(&self.ring, &tenant, &track_object(id)).await?;
        let recipient =
            String::from_utf8(track.open_field("recipient", &row.recipient)?).map_err(|e| corrupt(e.to_string()))?;
        let recipient = Address::parse(&recipient).map_err(|e| corrupt(e.to_string()))?;
        let envelope = if row.state == state::ACTIVE {
            let key = self.content_key(&tenant, id).await?;
            let json = key.open_field("envelope", &row.envelope)?;
            Some(serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?)
        } else {
            None
        };
        Ok(PortalMessage { row, recipient, envelope })
    }

    async fn content_key(&self, tenant: &TenantId, id: &str) -> Result<DataKey, PortalError> {
        match self.store.data_key(&self.ring, tenant, &content_object(id)).await {
            Ok(k) => Ok(k),
            Err(StoreError::NotFound(_)) => Err(PortalError::Withdrawn),
            Err(e) => Err(e.into()),
        }
    }

    /// A recipient's messages, newest first.
    pub async fn messages_for(
        &self,
        tenant: &TenantId,
        recipient: &Address,
    ) -> Result<Vec<PortalMessage>, PortalError> {
        let index = self.recipient_index(tenant, recipient)?;
        let mut out = Vec::new();
        for row in self.store.portal_messages_for(tenant.as_str(), &index).await? {
            out.push(self.message(&row.id).await?);
        }
        Ok(out)
    }

    /// The stored message itself, for reading. Fails with [`PortalError::Withdrawn`] once
    /// retracted or expired (also when the expiry passed but the sweep has not run yet).
    pub async fn body(&self, message: &PortalMessage) -> Result<Vec<u8>, PortalError> {
        if !message.is_active() || message.row.expires_at <= Timestamp::now().as_micros() {
            return Err(PortalError::Withdrawn);
        }
        let tenant = TenantId::new(&message.row.tenant)
            .map_err(|e| PortalError::Corrupt { id: message.row.id.clone(), reason: e.to_string() })?;
        let key = self.content_key(&tenant, &message.row.id).await?;
        let blob = BlobKey::parse(&message.row.body_blob)?;
        let sealed = match self.blobs.get(&blob).await {
            Ok(b) => b,
            Err(VaultError::BlobMissing(_)) => return Err(PortalError::Withdrawn),
            Err(e) => return Err(e.into()),
        };
        Ok(key.open(&sealed)?)
    }

    /// Records that the recipient opened the message, sealed.
    pub async fn record_open(
        &self,
        message: &PortalMessage,
        ip: Option<IpAddr>,
        agent: &str,
    ) -> Result<(), PortalError> {
        let tenant = TenantId::new(&message.row.tenant)
            .map_err(|e| PortalError::Corrupt { id: message.row.id.clone(), reason: e.to_string() })?;
        let track = self.store.data_key(&self.ring, &tenant, &track_object(&message.row.id)).await?;
        let agent: String = agent.chars().filter(|c| !c.is_control()).take(200).collect();
        let json = serde_json::to_vec(&Open { at: None, ip, agent }).map_err(|e| PortalError::Notice(e.to_string()))?;
        self.store
            .add_portal_open(&message.row.id, Timestamp::now().as_micros(), track.seal_field("open", &json)?)
            .await?;
        Ok(())
    }

    /// When and from where the recipient opened a message, oldest first.
    pub async fn opens(&self, message: &PortalMessage) -> Result<Vec<Open>, PortalError> {
        let tenant = TenantId::new(&message.row.tenant)
            .map_err(|e| PortalError::Corrupt { id: message.row.id.clone(), reason: e.to_string() })?;
        let track = self.store.data_key(&self.ring, &tenant, &track_object(&message.row.id)).await?;
        let mut out = Vec::new();
        for row in self.store.portal_opens(&message.row.id).await? {
            let mut open: Open = serde_json::from_slice(&track.open_field("open", &row.detail)?)
                .map_err(|e| PortalError::Corrupt { id: message.row.id.clone(), reason: e.to_string() })?;
            open.at = Some(Timestamp::from_micros(row.at));
            out.push(open);
        }
        Ok(out)
    }

    /// Retracts or expires a message: the state changes and the content's data key is
    /// deleted in one transaction, then the sealed copy is removed. Returns false when it was
    /// already withdrawn.
    pub async fn withdraw(&self, id: &str, why: Withdrawal, by: &str) -> Result<bool, PortalError> {
        let row = self.store.portal_message(id).await?.ok_or_else(|| PortalError::NotFound(id.to_owned()))?;
        let tenant = TenantId::new(&row.tenant)
            .map_err(|e| PortalError::Corrupt { id: id.to_owned(), reason: e.to_string() })?;
        let new_state = match why {
            Withdrawal::Retracted => state::RETRACTED,
            Withdrawal::Expired => state::EXPIRED,
        };
        let (id_owned, by) = (id.to_owned(), by.to_owned());
        let changed = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let changed = rows::withdraw(tx, &id_owned, new_state, Timestamp::now().as_micros(), &by).await?;
                    if changed {
                        keys::shred_data_key(tx, &tenant, &content_object(&id_owned)).await?;
                    }
                    Ok(changed)
                })
            })
            .await?;
        if changed {
            // The key is gone, so the ciphertext is already unreadable; removing it is tidiness.
            if let Err(e) = self.blobs.delete(&BlobKey::parse(&row.body_blob)?).await {
                tracing::warn!(portal = %id, error = %e, "cannot remove a shredded portal copy");
            }
        }
        Ok(changed)
    }

    /// Keeps a copy for one queue recipient whose plan reached the portal, audits it
    /// (`portal.store`), and returns the notices to queue: the recipient's notification, then
    /// the sender's receipt when there is a sender.
    pub async fn hand_over(&self, request: PickupRequest<'_>, audit: &Audit) -> Result<Vec<Notice>, PortalError> {
        let pickup = self.deliver(request).await?;
        let event = Event::new("system", "portal.store")
            .target(pickup.id.to_string())
            .detail("message", request.source_message)
            .detail("expires_at", pickup.expires_at.as_micros());
        if let Err(e) = audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a message kept in the portal");
        }
        Ok(std::iter::once(pickup.notification).chain(pickup.receipt).collect())
    }

    /// The expiry job: shreds every message whose time has run out and audits each
    /// (`portal.expire`), or the failure. Idempotent; the binary runs it on a timer.
    pub async fn expire_due(&self, audit: &Audit) {
        match self.sweep_expired().await {
            Ok(ids) => {
                for id in ids {
                    let _ = audit.append(Event::new("system", "portal.expire").target(id)).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "portal expiry sweep failed");
                let _ = audit.append(Event::new("system", "portal.expire").outcome(Outcome::Failure)).await;
            }
        }
    }

    /// Expires every message whose time has run out; returns their ids.
    pub async fn sweep_expired(&self) -> Result<Vec<String>, PortalError> {
        let mut done = Vec::new();
        loop {
            let due = self.store.portal_expired(Timestamp::now().as_micros(), 100).await?;
            if due.is_empty() {
                return Ok(done);
            }
            for row in due {
                if self.withdraw(&row.id, Withdrawal::Expired, "expiry").await? {
                    done.push(row.id);
                }
            }
        }
    }
}
