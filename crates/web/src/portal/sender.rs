//! The sender's status link: when and from where the recipient opened the message, and a
//! button to withdraw it (crypto-shredding its content).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_secure::portal::{PortalMessage, Withdrawal, masked};
use carepost_store::portal::{purpose, state as pstate};

use super::{audit, date, page, see_other};
use crate::csrf::{Csrf, CsrfForm, CsrfOnly};
use crate::error::WebError;
use crate::{ClientIp, WebState};

#[derive(Template)]
#[template(path = "portal/status.html")]
struct StatusPage {
    signed_in: bool,
    csrf: String,
    token: String,
    id: String,
    recipient: String,
    created: String,
    state: String,
    active: bool,
    opens: Vec<(String, String, String)>,
    message: Option<String>,
}

async fn by_token(state: &WebState, token: &str) -> Result<PortalMessage, WebError> {
    match state.services.portal.resolve(token).await.map_err(WebError::internal)? {
        Some((kind, m)) if kind == purpose::SENDER => Ok(m),
        _ => Err(WebError::NotFound),
    }
}

fn state_text(m: &PortalMessage) -> (String, bool) {
    let now = carepost_model::Timestamp::now().as_micros();
    match m.row.state.as_str() {
        pstate::ACTIVE if m.row.expires_at > now => (format!("available until {}", date(m.row.expires_at)), true),
        pstate::ACTIVE => ("expired".into(), false),
        pstate::RETRACTED => {
            (format!("withdrawn on {}; its content was deleted", date(m.row.withdrawn_at.unwrap_or(0))), false)
        }
        _ => (
            format!("expired on {}; its content was deleted", date(m.row.withdrawn_at.unwrap_or(m.row.expires_at))),
            false,
        ),
    }
}

/// `GET /p/s/{token}`
pub async fn status(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let m = by_token(&state, &token).await?;
    let opens = state
        .services
        .portal
        .opens(&m)
        .await
        .map_err(WebError::internal)?
        .into_iter()
        .map(|o| {
            (
                o.at.map(|t| date(t.as_micros())).unwrap_or_default(),
                o.ip.map(|i| i.to_string()).unwrap_or_else(|| "unknown".into()),
                o.agent,
            )
        })
        .collect();
    let (text, active) = state_text(&m);
    let withdrawn = m.row.state == pstate::RETRACTED;
    page(
        StatusCode::OK,
        &StatusPage {
            signed_in: false,
            csrf,
            token,
            id: m.row.id.clone(),
            recipient: masked(&m.recipient),
            created: date(m.row.created_at),
            state: text,
            active,
            opens,
            message: withdrawn.then(|| "The message is withdrawn.".to_owned()),
        },
    )
}

/// `POST /p/s/{token}/retract`
pub async fn retract(
    State(state): State<WebState>,
    ip: ClientIp,
    Path(token): Path<String>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let m = by_token(&state, &token).await?;
    let changed =
        state.services.portal.withdraw(&m.row.id, Withdrawal::Retracted, "sender").await.map_err(WebError::internal)?;
    audit(
        &state,
        ip,
        "portal-sender",
        "portal.retract",
        &format!("portal:{}", m.row.id),
        Outcome::Success,
        &[("changed", changed.to_string()), ("by", "sender link".into())],
    )
    .await;
    Ok(see_other(&format!("/p/s/{token}")))
}
