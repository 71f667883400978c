//! Reading: the inbox, a message (sanitized HTML or plain text), attachments.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use carepost_audit::Outcome;
use carepost_secure::portal::{PortalError, PortalMessage};
use mail_parser::{Message, MessageParser, MimeHeaders};
use serde::Deserialize;

use super::session::{self, Session};
use super::{audit, date, page, portal_error, sanitize};
use crate::csrf::Csrf;
use crate::error::{Rendered, WebError};
use crate::{ClientIp, WebState, security};

pub(crate) struct Item {
    id: String,
    active: bool,
    subject: String,
    from: String,
    date: String,
}

#[derive(Template)]
#[template(path = "portal/inbox.html")]
struct InboxPage {
    signed_in: bool,
    csrf: String,
    items: Vec<Item>,
}

/// `GET /p/inbox`
pub async fn inbox(State(state): State<WebState>, Csrf(csrf): Csrf, headers: HeaderMap) -> Result<Response, WebError> {
    let s = session::require(&state, &headers).await?;
    let rows = state
        .services
        .store
        .portal_messages_for(s.tenant.as_str(), &s.account.address_index)
        .await
        .map_err(WebError::internal)?;
    let now = carepost_model::Timestamp::now().as_micros();
    let mut items = Vec::new();
    for row in rows {
        let m = state.services.portal.message(&row.id).await.map_err(portal_error)?;
        let active = m.is_active() && m.row.expires_at > now;
        let (subject, from) = match (&m.envelope, active) {
            (Some(e), true) => {
                (if e.subject.is_empty() { "(no subject)".into() } else { e.subject.clone() }, e.from.clone())
            }
            _ => (String::new(), String::new()),
        };
        items.push(Item { id: m.row.id.clone(), active, subject, from, date: date(m.row.created_at) });
    }
    page(StatusCode::OK, &InboxPage { signed_in: true, csrf, items })
}

/// The message if it belongs to the signed-in recipient (else not found: ids of others'
/// messages are not confirmed).
pub(crate) async fn owned(state: &WebState, s: &Session, id: &str) -> Result<PortalMessage, WebError> {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(WebError::NotFound);
    }
    let m = state.services.portal.message(id).await.map_err(portal_error)?;
    if m.row.tenant != s.account.tenant || m.row.recipient_index != s.account.address_index {
        return Err(WebError::NotFound);
    }
    Ok(m)
}

/// The stored message's bytes, or `None` once withdrawn.
pub(crate) async fn body(state: &WebState, m: &PortalMessage) -> Result<Option<Vec<u8>>, WebError> {
    match state.services.portal.body(m).await {
        Ok(b) => Ok(Some(b)),
        Err(PortalError::Withdrawn) => Ok(None),
        Err(e) => Err(WebError::internal(e)),
    }
}

/// Parses a stored message; mail-parser can reach a debug assertion on some malformed
/// nesting, which must not take a request down.
pub(crate) fn parse(bytes: &[u8]) -> Option<Message<'_>> {
    std::panic::catch_unwind(|| MessageParser::default().parse(bytes)).ok().flatten()
}

pub(crate) struct Attachment {
    index: usize,
    name: String,
    content_type: String,
    size: String,
}

fn human_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{} KB", n.div_ceil(1 << 10)),
        n => format!("{n} bytes"),
    }
}

fn content_type_of(part: &mail_parser::MessagePart<'_>) -> String {
    let t = part
        .content_type()
        .map(|c| match c.subtype() {
            Some(sub) => format!("{}/{}", c.ctype(), sub),
            None => c.ctype().to_owned(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
        .to_ascii_lowercase();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    match t.split_once('/') {
        Some((a, b)) if token(a) && token(b) => t,
        _ => "application/octet-stream".into(),
    }
}

fn attachment_name(part: &mail_parser::MessagePart<'_>, index: usize) -> String {
    let name: String = part
        .attachment_name()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '/' | '\\' | '"'))
        .take(150)
        .collect();
    if name.trim().is_empty() { format!("attachment-{}", index + 1) } else { name }
}

#[derive(Template)]
#[template(path = "portal/message.html")]
struct MessagePage {
    signed_in: bool,
    csrf: String,
    id: String,
    subject: String,
    from_name: String,
    from_address: String,
    to: String,
    others: String,
    date: String,
    expires: String,
    has_html: bool,
    text_view: bool,
    html: String,
    text: String,
    blocked_images: usize,
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
pub struct ViewQuery {
    #[serde(default)]
    view: String,
    #[serde(default)]
    remote: String,
}

fn agent(headers: &HeaderMap) -> String {
    headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(200).collect()
}

/// `GET /p/read/{id}[?view=text][&remote=1]`: records the open.
pub async fn message(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Response, WebError> {
    let s = session::require_for(&state, &headers, &id).await?;
    let m = owned(&state, &s, &id).await?;
    let Some(bytes) = body(&state, &m).await? else { return super::withdrawn(csrf, true) };
    let Some(envelope) = m.envelope.clone() else { return super::withdrawn(csrf, true) };
    let parsed = parse(&bytes);
    let allow_remote = q.remote == "1";
    let (mut html, mut has_html, mut blocked_images, mut attachments) = (String::new(), false, 0, Vec::new());
    let text = match &parsed {
        Some(p) => p.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    };
    if let Some(p) = &parsed {
        if let Some(h) = p.html_bodies().next().filter(|part| part.is_text_html()).and_then(|part| part.text_contents())
        {
            let clean = sanitize::html(h, allow_remote);
            has_html = true;
            html = clean.html;
            blocked_images = clean.blocked_images;
        }
        for (index, part) in p.attachments().enumerate() {
            attachments.push(Attachment {
                index,
                name: attachment_name(part, index),
                content_type: content_type_of(part),
                size: human_size(part.contents().len()),
            });
        }
    }
    let text_view = q.view == "text" || !has_html;
    state.services.portal.record_open(&m, Some(ip.0), &agent(&headers)).await.map_err(WebError::internal)?;
    audit(
        &state,
        ip,
        &format!("portal:{}", s.account.id),
        "portal.open",
        &format!("portal:{}", m.row.id),
        Outcome::Success,
        &[
            ("view", if text_view { "text".into() } else { "html".into() }),
            ("remote_content", allow_remote.to_string()),
        ],
    )
    .await;
    let (from_name, from_address) = match &envelope.from_address {
        Some(a) => {
            (envelope.from.split('<').next().unwrap_or("").trim().trim_matches('"').to_owned(), a.as_str().to_owned())
        }
        None => (envelope.from.clone(), envelope.sender.as_ref().map(|a| a.as_str().to_owned()).unwrap_or_default()),
    };
    let others = envelope.others.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
    let pg = MessagePage {
        signed_in: true,
        csrf,
        id: m.row.id.clone(),
        subject: if envelope.subject.is_empty() { "(no subject)".into() } else { envelope.subject.clone() },
        from_name,
        from_address,
        to: m.recipient.as_str().to_owned(),
        others,
        date: date(m.row.created_at),
        expires: date(m.row.expires_at),
        has_html,
        text_view,
        html,
        text,
        blocked_images,
        attachments,
    };
    let mut response = page(StatusCode::OK, &pg)?;
    if allow_remote && !text_view {
        response.headers_mut().insert(CONTENT_SECURITY_POLICY, security::csp_allowing_remote_images());
    }
    Ok(response)
}

/// `GET /p/read/{id}/part/{n}`: one attachment, always as a download.
pub async fn attachment(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    Path((id, n)): Path<(String, usize)>,
) -> Result<Response, WebError> {
    let s = session::require_for(&state, &headers, &id).await?;
    let m = owned(&state, &s, &id).await?;
    let Some(bytes) = body(&state, &m).await? else { return super::withdrawn(csrf, true) };
    let parsed = parse(&bytes).ok_or(WebError::NotFound)?;
    let part = parsed.attachments().nth(n).ok_or(WebError::NotFound)?;
    let name = attachment_name(part, n);
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    let content_type = content_type_of(part);
    audit(
        &state,
        ip,
        &format!("portal:{}", s.account.id),
        "portal.download",
        &format!("portal:{}", m.row.id),
        Outcome::Success,
        &[("part", n.to_string())],
    )
    .await;
    let mut response = part.contents().to_vec().into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
    );
    response.extensions_mut().insert(Rendered);
    Ok(response)
}
