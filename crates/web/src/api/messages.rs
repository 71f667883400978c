//! `/api/v1/messages`: send one message or a batch, and follow a message's delivery.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use carepost_audit::Event;
use carepost_intake::{IntakeError, SubmitHints};
use carepost_model::{Arrival, Id, Source, Timestamp};
use carepost_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::auth::{Caller, append, authenticate, sending_caller};
use super::compose::{Attachment, Draft, Mailbox, check_header};
use super::error::ProblemDoc;
use super::request::{self, CheckedMessage};
use super::{ApiError, ApiShared};
use crate::{ClientIp, WebState};

/// An address, either `"a@example.org"` or `{"email": "a@example.org", "name": "A"}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MailboxIn {
    Plain(String),
    Named {
        email: String,
        #[serde(default)]
        name: Option<String>,
    },
}

impl MailboxIn {
    pub(crate) fn parse(&self, field: &str) -> Result<Mailbox, ApiError> {
        match self {
            MailboxIn::Plain(e) => Mailbox::parse(field, e, None),
            MailboxIn::Named { email, name } => Mailbox::parse(field, email, name.as_deref()),
        }
    }
}

/// A file to attach, its content in base64.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentIn {
    /// The file's bytes, base64 (standard alphabet, padded).
    pub content: String,
    pub filename: String,
    /// Media type; default `application/octet-stream`.
    #[serde(rename = "type", default)]
    pub content_type: Option<String>,
    /// Makes the part inline, referenced from HTML as `cid:<content_id>`.
    #[serde(default)]
    pub content_id: Option<String>,
}

/// One message to send.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub from: MailboxIn,
    #[serde(default)]
    pub reply_to: Option<MailboxIn>,
    #[serde(default)]
    pub to: Vec<MailboxIn>,
    #[serde(default)]
    pub cc: Vec<MailboxIn>,
    /// Recipients in the envelope only, not in the headers.
    #[serde(default)]
    pub bcc: Vec<MailboxIn>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentIn>,
    /// Extra header fields (`X-...` and the like); carepost sets From, To, Subject and the
    /// MIME structure itself.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deliver every outbound recipient through the secure portal, whatever policy would
    /// choose.
    #[serde(default)]
    pub force_portal: bool,
    /// A passphrase you tell the recipients another way (by phone, in person): a recipient
    /// who reads in the secure portal may prove the address with it on the first visit instead
    /// of a one-time code. 8 to 256 characters; carepost keeps only its hash.
    #[serde(default)]
    pub portal_passphrase: Option<String>,
    /// In a batch: this message's idempotency key (the `Idempotency-Key` header applies to
    /// single sends).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

impl SendRequest {
    pub(crate) fn draft(&self, prefix: &str) -> Result<Draft, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        let list = |name: &str, v: &[MailboxIn]| -> Result<Vec<Mailbox>, ApiError> {
            v.iter().enumerate().map(|(i, m)| m.parse(&format!("{prefix}{name}[{i}]"))).collect()
        };
        let attachments = self
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Attachment::parse(
                    &f(&format!("attachments[{i}]")),
                    &a.content,
                    &a.filename,
                    a.content_type.as_deref(),
                    a.content_id.as_deref(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (name, value) in &self.headers {
            check_header(&f(&format!("headers.{name}")), name, value)?;
        }
        let draft = Draft {
            from: self.from.parse(&f("from"))?,
            reply_to: self.reply_to.as_ref().map(|r| r.parse(&f("reply_to"))).transpose()?,
            to: list("to", &self.to)?,
            cc: list("cc", &self.cc)?,
            bcc: list("bcc", &self.bcc)?,
            subject: self.subject.clone(),
            text: self.text.as_deref().map(Arc::from),
            html: self.html.as_deref().map(Arc::from),
            attachments: attachments.into(),
            headers: self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        draft.check(prefix)?;
        Ok(draft)
    }
}

/// Up to 1,000 messages.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub messages: Vec<SendRequest>,
}

/// A message carepost accepted: it is durable and queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The id to follow the message with (`GET /api/v1/messages/{id}`).
    pub id: String,
    /// `queued`.
    pub status: String,
    /// True when an earlier request with the same idempotency key sent this message.
    pub replayed: bool,
}

/// The outcome of one message in a batch: `id` when accepted, `error` when not.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<crate::problem::Problem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

/// One step in a recipient's delivery, as recorded when it happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusEvent {
    /// queued, quarantined, held, released, deferred, delivered, bounced, opened (in the
    /// secure portal), retracted or expired (the portal copy).
    pub status: String,
    /// RFC 3339.
    pub at: String,
    /// How it was delivered: tls, smtp, smime, pgp or portal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Delivery attempts so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// For deferred: when the next attempt is due (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The enhanced status code (RFC 3463), e.g. 2.0.0, 4.4.1, 5.1.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The event id, as webhooks carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl StatusEvent {
    fn from_row(e: &carepost_store::events::EventRow) -> Self {
        StatusEvent {
            status: e.kind.clone(),
            at: Timestamp::from_micros(e.at).to_rfc3339(),
            method: e.method.clone(),
            attempt: e.attempt,
            next_attempt_at: e.next_attempt_at.map(|t| Timestamp::from_micros(t).to_rfc3339()),
            code: e.status.clone(),
            event_id: Some(e.id.clone()),
        }
    }

    fn synthesized(status: &str, at: String, method: Option<String>) -> Self {
        StatusEvent {
            status: status.to_owned(),
            at,
            method,
            attempt: None,
            next_attempt_at: None,
            code: None,
            event_id: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientStatus {
    pub index: i64,
    pub address: String,
    /// queued, sending, held, quarantined, delivered, bounced.
    pub status: String,
    /// How it was (or is to be) delivered: tls_verified, smime, pgp, portal...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub attempts: i64,
    /// The receiving server's last reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<String>,
    /// Every recorded step, oldest first.
    pub history: Vec<StatusEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageStatus {
    pub id: String,
    /// RFC 3339.
    pub received_at: String,
    /// active (some recipient still in progress) or done.
    pub state: String,
    pub recipients: Vec<RecipientStatus>,
}

/// The bytes of a JSON request body, with size and media type checked.
pub(crate) fn json_bytes(
    state: &WebState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(state.config.max_upload_bytes)
        } else {
            ApiError::Invalid { field: None, detail: "the request body could not be read".into() }
        }
    })?;
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(body)
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?;
            Ok(Some(text.to_owned()))
        }
    }
}

fn idempotency_hash(caller: &Caller, key: &str, field: &str) -> Result<Vec<u8>, ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ApiError::invalid(field, "an idempotency key is 1 to 255 printable ASCII characters"));
    }
    Ok(super::keys::hash(&format!("{}\0{key}", caller.key.id)))
}

/// A message that passed every check, ready for intake.
struct Ready {
    draft: Draft,
    hints: SubmitHints,
    idempotency: Option<Vec<u8>>,
}

/// What single and batch sends check after parsing, before anything is sent: each
/// message's From against the key's allowed senders, and its idempotency key (its own, else
/// the header's; in a batch the header's as `<key>#<index>`).
async fn ready(
    state: &WebState,
    caller: &Caller,
    messages: Vec<CheckedMessage>,
    header_key: Option<String>,
    batch: bool,
) -> Result<Vec<Ready>, ApiError> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        caller.require_sender(state, &m.draft.from.email, &format!("{}from", m.prefix)).await?;
        let idempotency = match (&m.idempotency_key, &header_key) {
            (Some(k), _) => Some(idempotency_hash(caller, k, &format!("{}idempotency_key", m.prefix))?),
            (None, Some(k)) if batch => Some(idempotency_hash(caller, &format!("{k}#{i}"), "Idempotency-Key")?),
            (None, Some(k)) => Some(idempotency_hash(caller, k, "Idempotency-Key")?),
            (None, None) => None,
        };
        out.push(Ready { draft: m.draft, hints: m.hints, idempotency });
    }
    Ok(out)
}

/// Sends one checked draft: builds it, hands it to intake (DLP, policy, sealing, fsync) and
/// records which key sent it. Returns the message id and whether it was a replay.
pub(crate) async fn submit(
    state: &WebState,
    shared: &Arc<ApiShared>,
    caller: &Caller,
    draft: &Draft,
    hints: SubmitHints,
    idempotency: Option<Vec<u8>>,
) -> Result<(String, bool), ApiError> {
    let _guard = match &idempotency {
        Some(hash) => {
            if let Some(id) = state.services.store.api_message_by_idempotency(&caller.key.id, hash).await? {
                return Ok((id, true));
            }
            Some(shared.begin(hash.clone()).ok_or_else(|| {
                ApiError::Conflict("a request with this idempotency key is still being processed; retry shortly".into())
            })?)
        }
        None => None,
    };
    // A request that finished while this one waited for the guard.
    if let Some(hash) = &idempotency
        && let Some(id) = state.services.store.api_message_by_idempotency(&caller.key.id, hash).await?
    {
        return Ok((id, true));
    }
    let intake = &state.services.intake;
    let header_id = format!("{}@{}", Id::new(), intake.settings().notices_from.domain());
    let body = draft.build(&header_id)?;
    let arrival = Arrival {
        source: Source::Api,
        client_ip: Some(caller.ip),
        helo: None,
        authenticated_as: Some(caller.actor()),
        tls: None,
        sender_auth: None,
    };
    let accepted = intake
        .submit_with(caller.key.tenant.clone(), draft.envelope(), arrival, Bytes::from(body), hints)
        .await
        .map_err(|e| match e {
            IntakeError::Blocked(text) => ApiError::Blocked(text),
            IntakeError::Invalid(text) => ApiError::Invalid { field: None, detail: text },
            other => ApiError::internal(other),
        })?;
    let id = accepted.id.to_string();
    // The message is durable: from here on the answer is 202 whatever happens, or the client
    // would send it again.
    if let Err(e) = state.services.store.record_api_message(&caller.key.id, &caller.key.tenant, &id, idempotency).await
    {
        tracing::error!(message = %id, error = %e, "cannot record the API key of an accepted message");
    }
    Ok((id, false))
}

fn accepted_response(id: String, replayed: bool) -> Response {
    let location = HeaderValue::from_str(&format!("/api/v1/messages/{id}")).ok();
    let mut r = (StatusCode::ACCEPTED, axum::Json(Accepted { id, status: "queued".into(), replayed })).into_response();
    if let Some(l) = location {
        r.headers_mut().insert(LOCATION, l);
    }
    r
}

/// The problems both send endpoints answer with, for the OpenAPI document.
pub struct SendProblems;

impl utoipa::IntoResponses for SendProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        [
            (400, "Invalid request; nothing was sent"),
            (401, "No valid API key"),
            (403, "The key lacks the send scope, is used from a network it may not be, or may not send from this From address"),
            (413, "Too large"),
            (415, "Not JSON"),
            (429, "Rate limit of the key; see Retry-After"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
            let response = ResponseBuilder::new().description(description).content("application/problem+json", content).build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}

/// Send a message.
#[utoipa::path(
    post, path = "/api/v1/messages", tag = "messages",
    request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key returns the first message instead of sending again")),
    responses(
        (status = 202, description = "Accepted: the message is durable and queued", body = Accepted),
        SendProblems,
        (status = 409, description = "The same idempotency key is in progress", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Refused by policy", body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn send(
    State(state): State<WebState>,
    Extension(shared): Extension<Arc<ApiShared>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = sending_caller(&state, &shared, &headers, ip).await?;
    let message = caller.audit_refused(&state, request::parse_message(&json_bytes(&state, &headers, body)?)).await?;
    let checked = ready(&state, &caller, vec![message], idempotency_header(&headers)?, false).await?;
    let Some(m) = checked.into_iter().next() else {
        return Err(ApiError::internal("a single send checked no message"));
    };
    let (id, replayed) = submit(&state, &shared, &caller, &m.draft, m.hints, m.idempotency).await?;
    Ok(accepted_response(id, replayed))
}

/// Send up to 1,000 messages. Every message is checked before any is sent: one invalid
/// message refuses the whole batch and sends nothing.
#[utoipa::path(
    post, path = "/api/v1/messages/batch", tag = "messages",
    request_body = BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Applies to each message as `<key>#<index>` unless the message has its own idempotency_key")),
    responses(
        (status = 202, description = "Each message accepted or refused by policy", body = BatchResponse),
        SendProblems,
    ),
    security(("bearer" = []))
)]
pub async fn send_batch(
    State(state): State<WebState>,
    Extension(shared): Extension<Arc<ApiShared>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = sending_caller(&state, &shared, &headers, ip).await?;
    let messages = caller.audit_refused(&state, request::parse_batch(&json_bytes(&state, &headers, body)?)).await?;
    let checked = ready(&state, &caller, messages, idempotency_header(&headers)?, true).await?;
    let mut results = Vec::with_capacity(checked.len());
    let (mut accepted, mut rejected) = (0, 0);
    for (index, m) in checked.into_iter().enumerate() {
        match submit(&state, &shared, &caller, &m.draft, m.hints, m.idempotency).await {
            Ok((id, replayed)) => {
                accepted += 1;
                results.push(BatchItem { index, id: Some(id), replayed: Some(replayed), error: None });
            }
            Err(e) => {
                rejected += 1;
                results.push(BatchItem { index, id: None, replayed: None, error: Some(e.problem()) });
            }
        }
    }
    Ok((StatusCode::ACCEPTED, axum::Json(BatchResponse { accepted, rejected, results })).into_response())
}

fn public_status(state: &str) -> &str {
    match state {
        "inflight" => "sending",
        other => other,
    }
}

/// A message's delivery, recipient by recipient.
#[utoipa::path(
    get, path = "/api/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The id returned when the message was accepted")),
    responses(
        (status = 200, description = "Where delivery stands", body = MessageStatus),
        (status = 401, description = "No valid API key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the status scope", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No message with this id was sent by this tenant's keys", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit of the key", body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<WebState>,
    Extension(shared): Extension<Arc<ApiShared>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &shared, &headers, ip).await?;
    caller.require("status")?;
    if id.len() != 26 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound);
    }
    let tenant = state.services.store.api_message_tenant(&id).await?;
    if tenant.as_deref() != Some(caller.key.tenant.as_str()) {
        return Err(ApiError::NotFound);
    }
    let spool = state.services.intake.spool();
    let opened = match spool.open(&id).await {
        Ok(o) => o,
        Err(carepost_spool::SpoolError::NotFound(_))
        | Err(carepost_spool::SpoolError::Store(StoreError::NotFound(_))) => {
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let events = state.services.store.message_events(&id).await?;
    append(&state, Event::new(caller.actor(), "api.message.status").target(format!("msg:{id}")).ip(Some(caller.ip)))
        .await;
    let received = Timestamp::from_micros(opened.row.received_at).to_rfc3339();
    let recipients = opened
        .recipients
        .iter()
        .map(|r| {
            let status = public_status(&r.row.state).to_owned();
            let mut history: Vec<StatusEvent> =
                events.iter().filter(|e| e.recipient == r.row.idx).map(StatusEvent::from_row).collect();
            if history.is_empty() {
                // Accepted before carepost kept events: the arrival and the latest state.
                history.push(StatusEvent::synthesized("queued", received.clone(), None));
                if status != "queued" {
                    let at = Timestamp::from_micros(r.row.updated_at).to_rfc3339();
                    history.push(StatusEvent::synthesized(&status, at, r.row.method.clone()));
                }
            }
            RecipientStatus {
                index: r.row.idx,
                address: r.recipient.address.as_str().to_owned(),
                status,
                method: r.row.method.clone(),
                attempts: r.row.attempts,
                last_reply: r.last_reply.clone(),
                history,
            }
        })
        .collect();
    let body =
        MessageStatus { id: opened.row.id.clone(), received_at: received, state: opened.row.state.clone(), recipients };
    Ok(axum::Json(body).into_response())
}
