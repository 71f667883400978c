//! Enrolling second factors over HTTP: an authenticator app (TOTP, confirmed with a code
//! before it counts) and WebAuthn security keys. A session in the `enroll` stage reaches
//! only these pages; the identity room makes it a complete sign-in once a factor is enrolled.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_identity::Stage;
use carepost_identity::webauthn::Registered;
use serde_json::json;

use super::session::{self, StaffSession};
use super::signin::user_agent;
use super::{CredentialForm, KeyNameForm, allow_own_script, audit, notice};
use crate::csrf::{CodeForm, Csrf, CsrfForm, CsrfOnly};
use crate::error::WebError;
use crate::pages::see_other;
use crate::signin::{self, Door, FullOrEnroll, Stages, TotpState, Visit};
use crate::{ClientIp, WebState};

const STAGES: &[Stage] = FullOrEnroll::STAGES;

#[derive(Template)]
#[template(path = "staff/mfa.html")]
struct MfaPage {
    signed_in: bool,
    csrf: String,
    must_enroll: bool,
    totp: TotpState,
    keys: Vec<(String, String)>,
    keys_available: bool,
    message: Option<String>,
    error: Option<String>,
}

async fn render(
    state: &WebState,
    s: &StaffSession,
    csrf: String,
    status: StatusCode,
    message: Option<&str>,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let totp = signin::totp_state(state, &s.who(), &s.account.login).await?;
    let keys = state
        .services
        .identity
        .security_keys(&s.account)
        .await
        .map_err(WebError::internal)?
        .into_iter()
        .map(|(name, at)| (name, crate::pages::date(at)))
        .collect();
    let page = MfaPage {
        signed_in: s.session.stage == Stage::Full,
        csrf,
        must_enroll: s.session.stage == Stage::Enroll,
        totp,
        keys,
        keys_available: state.webauthn.is_some(),
        message: message.map(str::to_owned),
        error: error.map(str::to_owned),
    };
    let response = crate::pages::page(status, &page)?;
    Ok(if page.keys_available { allow_own_script(response) } else { response })
}

/// `GET /staff/mfa`
pub async fn page(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    Visit(s, _): Visit<StaffSession, FullOrEnroll>,
) -> Result<Response, WebError> {
    render(&state, &s, csrf, StatusCode::OK, None, None).await
}

/// `POST /staff/mfa/totp`: a new secret to confirm with a code.
pub async fn totp_setup(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let s = session::require(&state, ip, &headers, STAGES).await?;
    if state.services.identity.begin_totp(&s.who()).await.map_err(WebError::internal)?.is_none() {
        return render(&state, &s, csrf, StatusCode::OK, None, Some("An authenticator app is set up already.")).await;
    }
    render(&state, &s, csrf, StatusCode::OK, None, None).await
}

/// After a factor is enrolled: an `enroll` session becomes a complete sign-in, under a new
/// session id set on `response`.
async fn enrolled(
    state: &WebState,
    ip: ClientIp,
    s: &StaffSession,
    headers: &HeaderMap,
    response: &mut Response,
) -> Result<bool, WebError> {
    let Some((token, notice)) =
        state.services.identity.enrolled(&s.who(), &s.session, ip.0).await.map_err(WebError::internal)?
    else {
        return Ok(false);
    };
    StaffSession::set_cookie(response, &token);
    if notice {
        notice::after_signin(state, ip, &s.account, &user_agent(headers)).await;
    }
    Ok(true)
}

/// `POST /staff/mfa/totp/confirm`: turns the app on once its code matches.
pub async fn totp_confirm(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, WebError> {
    let s = session::require(&state, ip, &headers, STAGES).await?;
    if s.factors.totp_pending.is_none() {
        return render(&state, &s, csrf, StatusCode::BAD_REQUEST, None, Some("Set up an authenticator app first."))
            .await;
    }
    if !signin::confirm_totp(&state, ip, &s.who(), &form.code, ("staff.mfa.enroll", &[("method", "totp".into())]))
        .await?
    {
        return render(&state, &s, csrf, StatusCode::BAD_REQUEST, None, Some(signin::WRONG_SETUP_CODE)).await;
    }
    let mut response = see_other("/staff/");
    if enrolled(&state, ip, &s, &headers, &mut response).await? {
        return Ok(response);
    }
    render(&state, &s, csrf, StatusCode::OK, Some("Your authenticator app is set up."), None).await
}

/// `POST /staff/mfa/key/start`: the options for registering a new security key.
pub async fn key_start(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<KeyNameForm>,
) -> Result<Response, WebError> {
    let s = session::require(&state, ip, &headers, STAGES).await?;
    let Some(relying_party) = state.webauthn.as_ref() else { return Ok(super::keys_unavailable()) };
    let options = state
        .services
        .identity
        .start_key_registration(relying_party, &s.session, &s.account, &form.name)
        .await
        .map_err(WebError::internal)?;
    Ok(super::json(StatusCode::OK, options))
}

/// `POST /staff/mfa/key/finish`: the new key's attestation, verified and kept by the
/// identity room.
pub async fn key_finish(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CredentialForm>,
) -> Result<Response, WebError> {
    let s = session::require(&state, ip, &headers, STAGES).await?;
    let Some(relying_party) = state.webauthn.as_ref() else { return Ok(super::keys_unavailable()) };
    let who = s.who();
    let (actor, target) = (who.actor(), who.target());
    let registered = state
        .services
        .identity
        .finish_key_registration(relying_party, &s.session, &s.account, &form.credential)
        .await
        .map_err(WebError::internal)?;
    let name = match registered {
        Registered::NoCeremony => {
            return Ok(super::json(
                StatusCode::BAD_REQUEST,
                json!({ "error": "Start again: the security key's answer did not match a request." }),
            ));
        }
        Registered::Refused { reason } => {
            let details = [("method", "security-key".into()), ("reason", reason)];
            audit(&state, ip, &actor, "staff.mfa.enroll", &target, Outcome::Failure, &details).await;
            return Ok(super::json(
                StatusCode::BAD_REQUEST,
                json!({ "error": "The security key could not be registered. Try again." }),
            ));
        }
        Registered::Duplicate => {
            let details = [("method", "security-key".into()), ("reason", "registered already".into())];
            audit(&state, ip, &actor, "staff.mfa.enroll", &target, Outcome::Denied, &details).await;
            return Ok(super::json(
                StatusCode::CONFLICT,
                json!({ "error": "This security key is registered already." }),
            ));
        }
        Registered::Added { name } => name,
    };
    let details = [("method", "security-key".into()), ("key", name)];
    audit(&state, ip, &actor, "staff.mfa.enroll", &target, Outcome::Success, &details).await;
    let mut response = super::json(StatusCode::OK, json!({ "next": "/staff/" }));
    if enrolled(&state, ip, &s, &headers, &mut response).await? {
        return Ok(response);
    }
    Ok(super::json(StatusCode::OK, json!({ "next": "/staff/mfa" })))
}
