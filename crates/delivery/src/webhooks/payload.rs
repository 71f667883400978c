//! What a webhook POST carries: ids, the event type, delivery facts and a keyed hash of the
//! recipient. Never an address, a subject or any content.

use carepost_model::{TenantId, Timestamp};
use carepost_store::events::EventRow;
use carepost_vault::{KeyRing, VaultError};
use serde::Serialize;

/// The blind-index field of the recipient hash: its own, so the hash webhooks show matches
/// no index carepost looks things up by.
const RECIPIENT_HASH_FIELD: &str = "webhook-recipient";

/// The recipient an event is about, without naming them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientRef {
    /// Position in the message's recipients (to, cc, bcc in request order, duplicates
    /// removed), as in `GET /api/v1/messages/{id}`.
    pub index: i64,
    /// HMAC-SHA256 under a tenant secret of the recipient's address, hex: equal for the same
    /// address within a tenant, meaningless without the secret.
    pub hash: String,
}

/// The JSON body of one webhook POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// The event id: the same event may be delivered more than once; drop repeats by id.
    pub id: String,
    /// delivered, deferred, bounced, opened, retracted, ... or `test`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339).
    pub created_at: String,
    /// The carepost message id (`GET /api/v1/messages/{id}`); none for `test`.
    pub message_id: Option<String>,
    pub recipient: Option<RecipientRef>,
    /// How it was delivered: tls, smtp, smime, pgp, portal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// For deferred: when carepost tries again (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The enhanced status code (RFC 3463), e.g. 2.0.0, 4.4.1, 5.1.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Payload {
    pub fn from_event(ring: &KeyRing, e: &EventRow) -> Result<Payload, VaultError> {
        let tenant = TenantId::new(&e.tenant).map_err(|_| VaultError::Format)?;
        let hash = ring.blind_index(&tenant, RECIPIENT_HASH_FIELD, &e.address_index)?;
        Ok(Payload {
            id: e.id.clone(),
            kind: e.kind.clone(),
            created_at: Timestamp::from_micros(e.at).to_rfc3339(),
            message_id: Some(e.message_id.clone()),
            recipient: Some(RecipientRef { index: e.recipient, hash: hex::encode(hash) }),
            method: e.method.clone(),
            attempt: e.attempt,
            next_attempt_at: e.next_attempt_at.map(|t| Timestamp::from_micros(t).to_rfc3339()),
            status: e.status.clone(),
        })
    }

    /// The event `carepost webhook test` sends.
    pub fn test(id: String) -> Payload {
        Payload {
            id,
            kind: "test".into(),
            created_at: Timestamp::now().to_rfc3339(),
            message_id: None,
            recipient: None,
            method: None,
            attempt: None,
            next_attempt_at: None,
            status: None,
        }
    }
}
