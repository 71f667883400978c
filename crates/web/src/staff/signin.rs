//! Signing in over HTTP: the password page, the second-factor page (an authenticator code
//! or a security key), signing out. The rules (lockout, stages, a new session id after the
//! second factor) are the identity room's; these handlers add the client's block and the
//! audit record, and render the answer.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_identity::webauthn::KeyStep;
use carepost_identity::{Account, AccountRef, PasswordStep, SecondStep, Stage};
use serde::Deserialize;
use serde_json::json;

use super::session::{self, StaffSession};
use super::{CredentialForm, allow_own_script, audit, notice};
use crate::csrf::csrf_field;
use crate::csrf::{CodeForm, Csrf, CsrfForm, CsrfOnly};
use crate::error::WebError;
use crate::pages::{failed_login, refuse_blocked, see_other};
use crate::signin::{self, Door, SecondFactor, Visit};
use crate::{ClientIp, WebState};

/// The one answer to every refused password step: unknown account, wrong password, locked
/// account (even with the right password) read alike.
const WRONG: &str =
    "The user name or password is not right, or the account is locked for a while after too many failed sign-ins.";
const LOCKED: &str = "This account is locked for a while after too many failed sign-ins. Try again later, or ask an administrator to unlock it.";

#[derive(Template)]
#[template(path = "staff/signin.html")]
struct SigninPage {
    signed_in: bool,
    csrf: String,
    login: String,
    error: Option<String>,
}

/// `GET /staff/signin`
pub async fn page(Csrf(csrf): Csrf) -> Result<Response, WebError> {
    page_with(StatusCode::OK, csrf, String::new(), None)
}

fn page_with(status: StatusCode, csrf: String, login: String, error: Option<&str>) -> Result<Response, WebError> {
    crate::pages::page(status, &SigninPage { signed_in: false, csrf, login, error: error.map(str::to_owned) })
}

#[derive(Deserialize)]
pub struct SigninForm {
    csrf: String,
    login: String,
    password: String,
}

csrf_field!(SigninForm);

/// `POST /staff/signin`: the password step. Unknown, disabled, API-only and locked accounts
/// read exactly like a wrong password and take as long.
pub async fn password(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SigninForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let login = form.login.trim();
    let refused = |csrf: String| page_with(StatusCode::UNAUTHORIZED, csrf, form.login.clone(), Some(WRONG));
    if state.services.guard.login_refused(ip.0, login) {
        let reason = "too many failures for this login from this client";
        audit(&state, ip, "staff", "staff.signin", "", Outcome::Denied, &[("reason", reason.into())]).await;
        return refused(csrf);
    }
    let step = state.services.identity.staff_password(login, &form.password, ip.0).await.map_err(WebError::internal)?;
    let (account, token, stage, notice) = match step {
        PasswordStep::Unknown => {
            failed_login(&state, ip, login, "staff-password").await;
            let reason = "unknown, disabled or api-only account";
            audit(&state, ip, "staff", "staff.signin", "", Outcome::Failure, &[("reason", reason.into())]).await;
            return refused(csrf);
        }
        PasswordStep::Locked { account, password_right } => {
            // Not counted toward the lock, which already holds (a right password must not
            // extend it); counted toward the client like any other refused attempt.
            failed_login(&state, ip, login, "staff-password").await;
            let details = [("reason", "locked".into()), ("password_right", password_right.to_string())];
            signin_audit(&state, ip, &account, Outcome::Denied, &details).await;
            return refused(csrf);
        }
        PasswordStep::Wrong { account, locked_now } => {
            failed(&state, ip, &account, "password", locked_now).await;
            let details = [("reason", "password".into()), ("locked", locked_now.to_string())];
            signin_audit(&state, ip, &account, Outcome::Failure, &details).await;
            return refused(csrf);
        }
        PasswordStep::Passed { account, token, session, notice } => (account, token, session.stage, notice),
    };
    state.services.guard.forgive(ip.0, login);
    let details = [("stage", stage.stored(carepost_identity::Kind::Staff)), ("role", account.role.to_string())];
    signin_audit(&state, ip, &account, Outcome::Success, &details).await;
    let mut response = see_other(StaffSession::place(&stage));
    StaffSession::set_cookie(&mut response, &token);
    if notice {
        notice::after_signin(&state, ip, &account, &user_agent(&headers)).await;
    }
    Ok(response)
}

async fn signin_audit(state: &WebState, ip: ClientIp, account: &Account, outcome: Outcome, details: &[(&str, String)]) {
    let who = AccountRef::staff(account);
    audit(state, ip, &who.actor(), "staff.signin", &who.target(), outcome, details).await;
}

pub(crate) fn user_agent(headers: &HeaderMap) -> String {
    headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// A failed step counted by the identity room: counted against the client too, and the
/// lock it caused audited.
pub(crate) async fn failed(state: &WebState, ip: ClientIp, account: &Account, what: &str, locked_now: bool) {
    failed_login(state, ip, &account.login, &format!("staff-{what}")).await;
    if locked_now {
        let who = AccountRef::staff(account);
        let minutes = state.staff.lockout_duration.as_secs().div_ceil(60);
        let details = [("after", what.into()), ("minutes", minutes.to_string())];
        audit(state, ip, &who.actor(), "staff.lockout", &who.target(), Outcome::Success, &details).await;
    }
}

#[derive(Template)]
#[template(path = "staff/mfa_signin.html")]
struct MfaPage {
    signed_in: bool,
    csrf: String,
    totp: bool,
    keys: bool,
    error: Option<String>,
}

fn mfa_page_with(
    state: &WebState,
    status: StatusCode,
    csrf: String,
    s: &StaffSession,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let keys = s.factors.security_keys > 0 && state.webauthn.is_some();
    let response = crate::pages::page(
        status,
        &MfaPage { signed_in: false, csrf, totp: s.factors.totp.is_some(), keys, error: error.map(str::to_owned) },
    )?;
    Ok(if keys { allow_own_script(response) } else { response })
}

/// `GET /staff/signin/mfa`: the second step.
pub async fn mfa_page(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    Visit(s, _): Visit<StaffSession, SecondFactor>,
) -> Result<Response, WebError> {
    mfa_page_with(&state, StatusCode::OK, csrf, &s, None)
}

/// `POST /staff/signin/totp`: the authenticator code.
pub async fn totp(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, WebError> {
    let method = [("method", String::from("totp"))];
    let Some((s, step)) =
        signin::totp_step::<StaffSession>(&state, ip, &headers, &form.code, ("staff.signin.mfa", &method)).await?
    else {
        return Ok(see_other("/staff/signin"));
    };
    match step {
        SecondStep::Locked | SecondStep::Wrong { locked_now: true } => {
            page_with(StatusCode::FORBIDDEN, csrf, String::new(), Some(LOCKED))
        }
        SecondStep::NoFactor => {
            mfa_page_with(&state, StatusCode::BAD_REQUEST, csrf, &s, Some("This account has no authenticator app."))
        }
        SecondStep::Wrong { locked_now: false } => {
            mfa_page_with(&state, StatusCode::UNAUTHORIZED, csrf, &s, Some(signin::WRONG_CODE))
        }
        SecondStep::Passed { token, notice } => {
            let mut response = see_other("/staff/");
            StaffSession::set_cookie(&mut response, &token);
            if notice {
                notice::after_signin(&state, ip, &s.account, &user_agent(&headers)).await;
            }
            Ok(response)
        }
    }
}

/// `POST /staff/signin/key/start`: the challenge for the account's security keys.
pub async fn key_start(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let s = session::require(&state, ip, &headers, &[Stage::SecondFactor]).await?;
    let Some(webauthn) = state.webauthn.as_ref() else { return Ok(super::keys_unavailable()) };
    let challenge = state
        .services
        .identity
        .start_key_sign_in(webauthn, &s.session, &s.account)
        .await
        .map_err(WebError::internal)?;
    match challenge {
        Some(challenge) => Ok(super::json(StatusCode::OK, challenge)),
        None => Ok(super::keys_unavailable()),
    }
}

/// `POST /staff/signin/key/finish`: the key's signature over the challenge.
pub async fn key_finish(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CredentialForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let s = session::require(&state, ip, &headers, &[Stage::SecondFactor]).await?;
    let Some(webauthn) = state.webauthn.as_ref() else { return Ok(super::keys_unavailable()) };
    let who = s.who();
    let step = state
        .services
        .identity
        .finish_key_sign_in(webauthn, &s.session, &s.account, &form.credential, ip.0)
        .await
        .map_err(WebError::internal)?;
    let locked_answer = || super::json(StatusCode::FORBIDDEN, json!({ "error": LOCKED, "next": "/staff/signin" }));
    let (key, token, notice) = match step {
        KeyStep::Step(SecondStep::Locked) => return Ok(locked_answer()),
        KeyStep::NoCeremony | KeyStep::Step(_) => {
            return Ok(super::json(
                StatusCode::BAD_REQUEST,
                json!({ "error": "Start again: the security key's answer did not match a request." }),
            ));
        }
        KeyStep::Refused { reason, step } => {
            let locked = matches!(step, SecondStep::Wrong { locked_now: true });
            failed(&state, ip, &s.account, "security-key", locked).await;
            let details = [("method", "security-key".into()), ("reason", reason), ("locked", locked.to_string())];
            audit(&state, ip, &who.actor(), "staff.signin.mfa", &who.target(), Outcome::Failure, &details).await;
            let next = if locked { "/staff/signin" } else { "/staff/signin/mfa" };
            return Ok(super::json(
                StatusCode::UNAUTHORIZED,
                json!({ "error": if locked { LOCKED } else { "The security key was not accepted." }, "next": next }),
            ));
        }
        KeyStep::Passed { key, step: SecondStep::Passed { token, notice } } => (key, token, notice),
        KeyStep::Passed { .. } => return Err(WebError::internal("a passed key step without a session")),
    };
    let mut response = super::json(StatusCode::OK, json!({ "next": "/staff/" }));
    StaffSession::set_cookie(&mut response, &token);
    let details = [("method", "security-key".into()), ("key", key)];
    audit(&state, ip, &who.actor(), "staff.signin.mfa", &who.target(), Outcome::Success, &details).await;
    if notice {
        notice::after_signin(&state, ip, &s.account, &user_agent(&headers)).await;
    }
    Ok(response)
}
