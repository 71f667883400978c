//! Secure reply and reply-all: the reply enters carepost through intake like any other mail
//! (source `portal`): inspected, decided by policy, sealed in the spool, audited, delivered.

use askama::Template;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use carepost_audit::Outcome;
use carepost_intake::IntakeError;
use carepost_model::{Address, Arrival, Envelope, Recipient, Source};
use carepost_secure::portal::{PortalEnvelope, PortalMessage};
use serde::Deserialize;

use super::session;
use super::{audit, notice, page};
use crate::csrf::{self, Csrf};
use crate::error::WebError;
use crate::{ClientIp, WebState};

/// Who a reply goes to: the original sender, and with `all` the other original recipients.
/// Never anyone else.
fn participants(envelope: &PortalEnvelope, all: bool) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    let first = envelope.from_address.clone().or_else(|| envelope.sender.clone());
    let mut add = |a: &Address| {
        if out.iter().all(|o| o.canonical() != a.canonical()) {
            out.push(a.clone());
        }
    };
    if let Some(a) = &first {
        add(a);
    }
    if all {
        for a in &envelope.others {
            add(a);
        }
    }
    out
}

fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) { s.to_owned() } else { format!("Re: {s}") }
}

#[derive(Template)]
#[template(path = "portal/reply.html")]
struct ReplyPage {
    signed_in: bool,
    csrf: String,
    id: String,
    to: String,
    subject: String,
    all: bool,
}

#[derive(Deserialize)]
pub struct AllQuery {
    #[serde(default)]
    all: String,
}

async fn active(
    state: &WebState,
    s: &session::Session,
    id: &str,
) -> Result<Option<(PortalMessage, PortalEnvelope)>, WebError> {
    let m = super::read::owned(state, s, id).await?;
    if !m.is_active() || m.row.expires_at <= carepost_model::Timestamp::now().as_micros() {
        return Ok(None);
    }
    let Some(envelope) = m.envelope.clone() else { return Ok(None) };
    Ok(Some((m, envelope)))
}

/// `GET /p/read/{id}/reply[?all=1]`
pub async fn form(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<AllQuery>,
) -> Result<Response, WebError> {
    let s = session::require_for(&state, &headers, &id).await?;
    let Some((m, envelope)) = active(&state, &s, &id).await? else { return super::withdrawn(csrf, true) };
    let all = q.all == "1";
    let to = participants(&envelope, all).iter().map(Address::as_str).collect::<Vec<_>>().join(", ");
    if to.is_empty() {
        return notice(
            StatusCode::OK,
            csrf,
            true,
            "No reply possible",
            "This message does not say who sent it, so it cannot be answered here.",
            None,
        );
    }
    page(
        StatusCode::OK,
        &ReplyPage { signed_in: true, csrf, id: m.row.id, to, subject: reply_subject(&envelope.subject), all },
    )
}

struct Upload {
    name: String,
    content_type: String,
    data: Bytes,
}

/// `POST /p/read/{id}/reply` (multipart: csrf, body, all, files).
pub async fn send(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, WebError> {
    let (parts, body) = request.into_parts();
    let s = session::require_for(&state, &parts.headers, &id).await?;
    let mut multipart = Multipart::from_request(Request::from_parts(parts.clone(), body), &state)
        .await
        .map_err(|_| WebError::BadRequest("The form was incomplete. Go back and try again.".into()))?;
    let (mut token, mut text, mut all, mut files) = (String::new(), String::new(), false, Vec::new());
    let bad = |_| WebError::BadRequest("The form could not be read. Go back and try again.".into());
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "csrf" => token = field.text().await.map_err(bad)?,
            "body" => text = field.text().await.map_err(bad)?,
            "all" => all = field.text().await.map_err(bad)? == "1",
            "files" => {
                let file_name: String = field
                    .file_name()
                    .unwrap_or("")
                    .chars()
                    .filter(|c| !c.is_control() && !matches!(c, '/' | '\\' | '"'))
                    .take(150)
                    .collect();
                let content_type = field.content_type().unwrap_or("application/octet-stream").to_owned();
                let data = field.bytes().await.map_err(bad)?;
                if !file_name.is_empty() || !data.is_empty() {
                    files.push(Upload {
                        name: if file_name.is_empty() { "attachment".into() } else { file_name },
                        content_type,
                        data,
                    });
                }
            }
            _ => {}
        }
    }
    csrf::check(&parts, &state, &token)?;
    let Some((m, envelope)) = active(&state, &s, &id).await? else { return super::withdrawn(csrf, true) };
    if text.trim().is_empty() && files.is_empty() {
        return Err(WebError::BadRequest("The reply is empty. Go back and write something.".into()));
    }
    let to = participants(&envelope, all);
    if to.is_empty() {
        return Err(WebError::BadRequest(
            "This message does not say who sent it, so it cannot be answered here.".into(),
        ));
    }
    let actor = format!("portal:{}", s.account.id);
    let target = format!("portal:{}", m.row.id);
    if crate::api::compose::has_bare_cr(&text) {
        // Browsers send CRLF; a lone CR comes from a crafted request trying to end the
        // message early at the next mail server (SMTP smuggling).
        audit(&state, ip, &actor, "portal.reply", &target, Outcome::Denied, &[("reason", "bare CR".into())]).await;
        return Err(WebError::BadRequest(
            "The reply has a carriage return that does not end a line. Remove it (or paste the text again) and send once more.".into(),
        ));
    }
    let me = m.recipient.clone();
    let mut builder = mail_builder::MessageBuilder::new()
        .from(me.as_str())
        .to(to.iter().map(Address::as_str).collect::<Vec<_>>())
        .subject(reply_subject(&envelope.subject))
        .text_body(text.replace("\r\n", "\n").replace('\n', "\r\n"));
    if let Some(mid) = &envelope.message_id {
        let bare = mid.trim().trim_start_matches('<').trim_end_matches('>').to_owned();
        builder = builder.in_reply_to(bare.clone()).references(bare);
    }
    for f in files {
        let ct = if f.content_type.bytes().all(|b| b.is_ascii_graphic()) && f.content_type.contains('/') {
            f.content_type
        } else {
            "application/octet-stream".into()
        };
        builder = builder.attachment(ct, f.name, f.data.to_vec());
    }
    let message = builder.write_to_vec().map_err(WebError::internal)?;
    let envelope_out = Envelope {
        mail_from: Some(me.clone()),
        recipients: to.iter().cloned().map(Recipient::new).collect(),
        dsn_ret: None,
        dsn_envid: None,
        require_tls: false,
        smtputf8: me.is_utf8() || to.iter().any(Address::is_utf8),
        body: Default::default(),
    };
    let arrival = Arrival {
        source: Source::Portal,
        client_ip: Some(ip.0),
        helo: None,
        authenticated_as: Some(actor.clone()),
        tls: None,
        sender_auth: None,
    };
    match state.services.intake.submit(s.tenant.clone(), envelope_out, arrival, Bytes::from(message)).await {
        Ok(accepted) => {
            audit(
                &state,
                ip,
                &actor,
                "portal.reply",
                &target,
                Outcome::Success,
                &[("message", accepted.id.to_string()), ("recipients", to.len().to_string()), ("all", all.to_string())],
            )
            .await;
            notice(
                StatusCode::OK,
                csrf,
                true,
                "Reply sent",
                "Your reply was sent securely.",
                Some((&format!("/p/read/{}", m.row.id), "Back to the message")),
            )
        }
        Err(IntakeError::Blocked(reason)) => {
            audit(&state, ip, &actor, "portal.reply", &target, Outcome::Denied, &[]).await;
            Err(WebError::Forbidden(format!("Your reply was not sent: {reason}")))
        }
        Err(e) => {
            audit(&state, ip, &actor, "portal.reply", &target, Outcome::Failure, &[]).await;
            Err(WebError::internal(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_go_only_to_the_original_participants() {
        let a = |s: &str| Address::parse(s).unwrap();
        let env = PortalEnvelope {
            from: "Dr A <a@clinic.example>".into(),
            from_address: Some(a("a@clinic.example")),
            sender: Some(a("bounce@clinic.example")),
            subject: "Results".into(),
            message_id: None,
            others: vec![a("b@clinic.example"), a("A@clinic.example")],
            organization: "Clinic".into(),
            passphrase_hash: None,
        };
        assert_eq!(participants(&env, false), vec![a("a@clinic.example")]);
        assert_eq!(participants(&env, true), vec![a("a@clinic.example"), a("b@clinic.example")]);
        assert_eq!(reply_subject("RE: x"), "RE: x");
        assert_eq!(reply_subject("x"), "Re: x");
    }
}
