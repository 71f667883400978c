//! Enrolling second factors: an authenticator app (TOTP, confirmed with a code before it
//! counts) and WebAuthn security keys. A session in the `enroll` stage (the organization
//! requires a second factor and the account has none) reaches only these pages, and becomes
//! a complete sign-in once a factor is enrolled.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_model::{Id, Timestamp};
use carepost_store::StoreError;
use carepost_store::staff::SecurityKeyRow;
use serde_json::json;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::session::{self, StaffSession, Stage};
use super::signin::{check_totp, completed, user_agent};
use super::webauthn::{self, Ceremony};
use super::{CodeForm, CredentialForm, CsrfOnly, KeyNameForm, actor, allow_own_script, audit, target};
use crate::csrf::{Csrf, CsrfForm};
use crate::error::WebError;
use crate::portal::see_other;
use crate::{ClientIp, WebState, totp};

const STAGES: &[Stage] = &[Stage::Full, Stage::Enroll];

#[derive(Template)]
#[template(path = "staff/mfa.html")]
struct MfaPage {
    signed_in: bool,
    csrf: String,
    must_enroll: bool,
    totp_on: bool,
    secret: Option<String>,
    uri: String,
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
    let store = &state.services.store;
    let auth = store.staff_auth(&s.account.id).await.map_err(WebError::internal)?.ok_or(WebError::NotFound)?;
    let (mut secret, mut uri) = (None, String::new());
    if auth.totp.is_none()
        && let Some(sealed) = &auth.totp_pending
    {
        let key = store.account_key(&state.services.ring, &s.account).await.map_err(WebError::internal)?;
        let raw = key.open_field("totp", sealed).map_err(WebError::internal)?;
        let issuer = if state.config.organization.is_empty() { "carepost" } else { state.config.organization.as_str() };
        uri = totp::uri(&raw, issuer, &s.account.login);
        secret = Some(totp::encoded(&raw));
    }
    let keys = store
        .staff_security_keys(&s.account.id)
        .await
        .map_err(WebError::internal)?
        .into_iter()
        .map(|k| (k.name, crate::portal::date(k.created_at)))
        .collect();
    let page = MfaPage {
        signed_in: s.stage == Stage::Full,
        csrf,
        must_enroll: s.stage == Stage::Enroll,
        totp_on: auth.totp.is_some(),
        secret,
        uri,
        keys,
        keys_available: state.webauthn.is_some(),
        message: message.map(str::to_owned),
        error: error.map(str::to_owned),
    };
    let response = crate::portal::page(status, &page)?;
    Ok(if page.keys_available { allow_own_script(response) } else { response })
}

/// `GET /staff/mfa`
pub async fn page(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    match session::current(&state, ip, &headers).await? {
        Some(s) if STAGES.contains(&s.stage) => render(&state, &s, csrf, StatusCode::OK, None, None).await,
        Some(_) => Ok(see_other("/staff/signin/mfa")),
        None => Ok(see_other("/staff/signin")),
    }
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
    if s.auth.totp.is_some() {
        return render(&state, &s, csrf, StatusCode::OK, None, Some("An authenticator app is set up already.")).await;
    }
    let secret = totp::new_secret().ok_or_else(|| WebError::internal("the system random number generator failed"))?;
    let key = state.services.store.account_key(&state.services.ring, &s.account).await.map_err(WebError::internal)?;
    let sealed = key.seal_field("totp", &secret).map_err(WebError::internal)?;
    state
        .services
        .store
        .set_staff_totp(&s.account.id, Some(sealed), false, Timestamp::now().as_micros())
        .await
        .map_err(WebError::internal)?;
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
    if s.stage != Stage::Enroll {
        return Ok(false);
    }
    session::renew(state, s, Stage::Full, response).await?;
    completed(state, ip, &s.account, user_agent(headers)).await?;
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
    let (who, whom) = (actor(&s.account.id), target(&s.account.id));
    let Some(pending) = s.auth.totp_pending.clone() else {
        return render(&state, &s, csrf, StatusCode::BAD_REQUEST, None, Some("Set up an authenticator app first."))
            .await;
    };
    if !check_totp(&state, &s.account, &pending, &form.code).await? {
        audit(&state, ip, &who, "staff.mfa.enroll", &whom, Outcome::Failure, &[("method", "totp".into())]).await;
        return render(
            &state,
            &s,
            csrf,
            StatusCode::BAD_REQUEST,
            None,
            Some("That code is not right. Enter the code the app shows now."),
        )
        .await;
    }
    state
        .services
        .store
        .set_staff_totp(&s.account.id, None, true, Timestamp::now().as_micros())
        .await
        .map_err(WebError::internal)?;
    audit(&state, ip, &who, "staff.mfa.enroll", &whom, Outcome::Success, &[("method", "totp".into())]).await;
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
    let name: String = form.name.trim().chars().filter(|c| !c.is_control()).take(60).collect();
    let name = if name.is_empty() { "Security key".to_owned() } else { name };
    let existing = state.services.store.staff_security_keys(&s.account.id).await.map_err(WebError::internal)?;
    let exclude = existing.into_iter().map(|k| k.credential_id).collect::<Vec<_>>();
    let (options, registration) = relying_party
        .start_securitykey_registration(
            webauthn::user_handle(&s.account.id),
            &s.account.login,
            &s.account.login,
            Some(exclude),
            None,
            None,
        )
        .map_err(WebError::internal)?;
    let text = Ceremony::Register { name, state: registration }.to_json()?;
    state.services.store.set_staff_ceremony(&s.id_hash, Some(text)).await.map_err(WebError::internal)?;
    Ok(super::json(StatusCode::OK, serde_json::to_value(options).map_err(WebError::internal)?))
}

/// `POST /staff/mfa/key/finish`: verifies the new key's attestation and keeps its
/// credential, sealed.
pub async fn key_finish(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CredentialForm>,
) -> Result<Response, WebError> {
    let s = session::require(&state, ip, &headers, STAGES).await?;
    let Some(relying_party) = state.webauthn.as_ref() else { return Ok(super::keys_unavailable()) };
    let store = &state.services.store;
    let (who, whom) = (actor(&s.account.id), target(&s.account.id));
    store.set_staff_ceremony(&s.id_hash, None).await.map_err(WebError::internal)?;
    let ceremony = s.row.ceremony.as_deref().and_then(Ceremony::from_json);
    let credential = serde_json::from_str::<RegisterPublicKeyCredential>(&form.credential);
    let (Some(Ceremony::Register { name, state: registration }), Ok(credential)) = (ceremony, credential) else {
        return Ok(super::json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "Start again: the security key's answer did not match a request." }),
        ));
    };
    let security_key = match relying_party.finish_securitykey_registration(&credential, &registration) {
        Ok(k) => k,
        Err(e) => {
            audit(
                &state,
                ip,
                &who,
                "staff.mfa.enroll",
                &whom,
                Outcome::Failure,
                &[("method", "security-key".into()), ("reason", e.to_string())],
            )
            .await;
            return Ok(super::json(
                StatusCode::BAD_REQUEST,
                json!({ "error": "The security key could not be registered. Try again." }),
            ));
        }
    };
    let key = store.account_key(&state.services.ring, &s.account).await.map_err(WebError::internal)?;
    let row = SecurityKeyRow {
        id: Id::new().to_string(),
        name: name.clone(),
        credential_id: AsRef::<[u8]>::as_ref(security_key.cred_id()).to_vec(),
        credential: webauthn::seal(&key, &security_key)?,
        created_at: Timestamp::now().as_micros(),
        last_used_at: None,
    };
    match store.add_staff_security_key(&s.account.id, row).await {
        Err(StoreError::Conflict(_)) => {
            audit(
                &state,
                ip,
                &who,
                "staff.mfa.enroll",
                &whom,
                Outcome::Denied,
                &[("method", "security-key".into()), ("reason", "registered already".into())],
            )
            .await;
            return Ok(super::json(
                StatusCode::CONFLICT,
                json!({ "error": "This security key is registered already." }),
            ));
        }
        other => other.map_err(WebError::internal)?,
    }
    audit(
        &state,
        ip,
        &who,
        "staff.mfa.enroll",
        &whom,
        Outcome::Success,
        &[("method", "security-key".into()), ("key", name)],
    )
    .await;
    let mut response = super::json(StatusCode::OK, json!({ "next": "/staff/" }));
    if enrolled(&state, ip, &s, &headers, &mut response).await? {
        return Ok(response);
    }
    Ok(super::json(StatusCode::OK, json!({ "next": "/staff/mfa" })))
}
