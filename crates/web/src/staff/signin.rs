//! Signing in: the password, then the second factor (an authenticator code or a security
//! key), or enrollment when the organization requires one and the account has none.
//! Failures count towards the account's lockout (`[staff]`, shared with SMTP AUTH) and the
//! client's block. Completing the second factor starts a new session id: the id a password
//! alone earned never becomes a full session.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_model::Timestamp;
use carepost_store::accounts::Account;
use carepost_vault as password;
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::PublicKeyCredential;

use super::session::{self, StaffSession, Stage};
use super::webauthn::Ceremony;
use super::{CodeForm, CredentialForm, CsrfOnly, actor, allow_own_script, audit, notice, target};
use crate::csrf::{Csrf, CsrfField, CsrfForm};
use crate::error::WebError;
use crate::portal::{failed_login, refuse_blocked, see_other};
use crate::{ClientIp, WebState, cookies, totp};

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
    crate::portal::page(status, &SigninPage { signed_in: false, csrf, login, error: error.map(str::to_owned) })
}

#[derive(Deserialize)]
pub struct SigninForm {
    csrf: String,
    login: String,
    password: String,
}

impl CsrfField for SigninForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /staff/signin`: the password step. Unknown, disabled, API-only and locked accounts
/// read exactly like a wrong password and take as long: the password is verified (against a
/// dummy hash when there is no account) before the lock is looked at.
pub async fn password(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SigninForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let store = &state.services.store;
    let login = form.login.trim();
    if state.services.guard.login_refused(ip.0, login) {
        audit(
            &state,
            ip,
            "staff",
            "staff.signin",
            "",
            Outcome::Denied,
            &[("reason", "too many failures for this login from this client".into())],
        )
        .await;
        return page_with(StatusCode::UNAUTHORIZED, csrf, form.login, Some(WRONG));
    }
    let creds = if login.len() <= 254 {
        store.account_credentials(&state.services.ring, login).await.map_err(WebError::internal)?
    } else {
        None
    };
    let usable =
        creds.filter(|c| !c.account.disabled && c.account.role.may_sign_in_to_web() && c.password_hash.is_some());
    let Some(creds) = usable else {
        let p = form.password.clone();
        let _ = password::verify_nothing_limited(p).await;
        failed_login(&state, ip, login, "staff-password").await;
        audit(
            &state,
            ip,
            "staff",
            "staff.signin",
            "",
            Outcome::Failure,
            &[("reason", "unknown, disabled or api-only account".into())],
        )
        .await;
        return page_with(StatusCode::UNAUTHORIZED, csrf, form.login, Some(WRONG));
    };
    let account = creds.account;
    let (who, whom) = (actor(&account.id), target(&account.id));
    let auth = store.staff_auth(&account.id).await.map_err(WebError::internal)?.ok_or(WebError::NotFound)?;
    let ok = {
        let (h, p) = (creds.password_hash.unwrap_or_default(), form.password.clone());
        password::verify_password_limited(h, p).await.map_err(WebError::internal)?
    };
    if auth.locked_at(Timestamp::now().as_micros()) {
        // Not counted toward the lock, which already holds (a right password must not
        // extend it); counted toward the client like any other refused attempt.
        failed_login(&state, ip, login, "staff-password").await;
        audit(
            &state,
            ip,
            &who,
            "staff.signin",
            &whom,
            Outcome::Denied,
            &[("reason", "locked".into()), ("password_right", ok.to_string())],
        )
        .await;
        return page_with(StatusCode::UNAUTHORIZED, csrf, form.login, Some(WRONG));
    }
    if !ok {
        let locked = count_failure(&state, ip, &account, "password").await?;
        audit(
            &state,
            ip,
            &who,
            "staff.signin",
            &whom,
            Outcome::Failure,
            &[("reason", "password".into()), ("locked", locked.to_string())],
        )
        .await;
        return page_with(StatusCode::UNAUTHORIZED, csrf, form.login, Some(WRONG));
    }
    state.services.guard.forgive(ip.0, login);
    let stage = if auth.has_mfa() {
        Stage::Mfa
    } else if store.mfa_required(account.tenant.as_str()).await.map_err(WebError::internal)? {
        Stage::Enroll
    } else {
        Stage::Full
    };
    audit(
        &state,
        ip,
        &who,
        "staff.signin",
        &whom,
        Outcome::Success,
        &[("stage", stage.as_str().into()), ("role", account.role.to_string())],
    )
    .await;
    let to = match stage {
        Stage::Full => "/staff/",
        Stage::Mfa => "/staff/signin/mfa",
        Stage::Enroll => "/staff/mfa",
    };
    let mut response = see_other(to);
    session::start(&state, &account, stage, &mut response).await?;
    if stage == Stage::Full {
        completed(&state, ip, &account, user_agent(&headers)).await?;
    }
    Ok(response)
}

pub(crate) fn user_agent(headers: &HeaderMap) -> String {
    headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// Counts a failed step; true when the account is now locked (the lock is audited; the
/// store ends the account's sessions with it).
pub(crate) async fn count_failure(
    state: &WebState,
    ip: ClientIp,
    account: &Account,
    what: &str,
) -> Result<bool, WebError> {
    failed_login(state, ip, &account.login, &format!("staff-{what}")).await;
    let c = &state.staff;
    let count = state
        .services
        .store
        .staff_signin_failed(&account.id, Timestamp::now().as_micros(), c.lockout())
        .await
        .map_err(WebError::internal)?;
    let locked = count.locked_until.is_some();
    if locked {
        let minutes = c.lockout_duration.as_secs().div_ceil(60);
        audit(
            state,
            ip,
            &actor(&account.id),
            "staff.lockout",
            &target(&account.id),
            Outcome::Success,
            &[("after", what.into()), ("minutes", minutes.to_string())],
        )
        .await;
    }
    Ok(locked)
}

/// The end of every successful sign-in: failures forgotten, the client address noted, and
/// the owner told when it is one the account never used.
pub(crate) async fn completed(
    state: &WebState,
    ip: ClientIp,
    account: &Account,
    user_agent: String,
) -> Result<(), WebError> {
    state.services.store.staff_signin_succeeded(&account.id).await.map_err(WebError::internal)?;
    notice::after_signin(state, ip, account, &user_agent).await
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
    let keys = s.auth.security_keys > 0 && state.webauthn.is_some();
    let response = crate::portal::page(
        status,
        &MfaPage { signed_in: false, csrf, totp: s.auth.totp.is_some(), keys, error: error.map(str::to_owned) },
    )?;
    Ok(if keys { allow_own_script(response) } else { response })
}

/// `GET /staff/signin/mfa`: the second step.
pub async fn mfa_page(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    match session::current(&state, ip, &headers).await? {
        Some(s) if s.stage == Stage::Mfa => mfa_page_with(&state, StatusCode::OK, csrf, &s, None),
        Some(s) if s.stage == Stage::Enroll => Ok(see_other("/staff/mfa")),
        Some(_) => Ok(see_other("/staff/")),
        None => Ok(see_other("/staff/signin")),
    }
}

/// Checks a code against a sealed TOTP secret of the account; each time step counts once.
pub(crate) async fn check_totp(
    state: &WebState,
    account: &Account,
    sealed: &[u8],
    code: &str,
) -> Result<bool, WebError> {
    let key = state.services.store.account_key(&state.services.ring, account).await.map_err(WebError::internal)?;
    let secret = key.open_field("totp", sealed).map_err(WebError::internal)?;
    let Some(step) = totp::matching_step_now(&secret, code) else { return Ok(false) };
    let step = i64::try_from(step).map_err(WebError::internal)?;
    state.services.store.use_staff_totp_step(&account.id, step).await.map_err(WebError::internal)
}

/// Refuses a second step on a locked account and ends its session.
async fn refuse_locked(state: &WebState, s: &StaffSession) -> Result<bool, WebError> {
    if s.auth.locked_until.is_some_and(|t| t > Timestamp::now().as_micros()) {
        state.services.store.end_staff_sessions(Some(s.id_hash.clone()), None).await.map_err(WebError::internal)?;
        return Ok(true);
    }
    Ok(false)
}

/// `POST /staff/signin/totp`: the authenticator code.
pub async fn totp(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let Some(s) = session::current(&state, ip, &headers).await?.filter(|s| s.stage == Stage::Mfa) else {
        return Ok(see_other("/staff/signin"));
    };
    let (who, whom) = (actor(&s.account.id), target(&s.account.id));
    if refuse_locked(&state, &s).await? {
        return page_with(StatusCode::FORBIDDEN, csrf, String::new(), Some(LOCKED));
    }
    let Some(sealed) = s.auth.totp.clone() else {
        return mfa_page_with(
            &state,
            StatusCode::BAD_REQUEST,
            csrf,
            &s,
            Some("This account has no authenticator app."),
        );
    };
    if !check_totp(&state, &s.account, &sealed, &form.code).await? {
        let locked = count_failure(&state, ip, &s.account, "totp").await?;
        audit(
            &state,
            ip,
            &who,
            "staff.signin.mfa",
            &whom,
            Outcome::Failure,
            &[("method", "totp".into()), ("locked", locked.to_string())],
        )
        .await;
        if locked {
            return page_with(StatusCode::FORBIDDEN, csrf, String::new(), Some(LOCKED));
        }
        return mfa_page_with(
            &state,
            StatusCode::UNAUTHORIZED,
            csrf,
            &s,
            Some("That code is not right. Enter the code your app shows now."),
        );
    }
    let mut response = see_other("/staff/");
    session::renew(&state, &s, Stage::Full, &mut response).await?;
    audit(&state, ip, &who, "staff.signin.mfa", &whom, Outcome::Success, &[("method", "totp".into())]).await;
    completed(&state, ip, &s.account, user_agent(&headers)).await?;
    Ok(response)
}

/// `POST /staff/signin/key/start`: the challenge for the account's security keys.
pub async fn key_start(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let s = session::require(&state, ip, &headers, &[Stage::Mfa]).await?;
    let Some(webauthn) = state.webauthn.as_ref() else { return Ok(super::keys_unavailable()) };
    let key = state.services.store.account_key(&state.services.ring, &s.account).await.map_err(WebError::internal)?;
    let rows = state.services.store.staff_security_keys(&s.account.id).await.map_err(WebError::internal)?;
    let keys = rows.iter().map(|r| super::webauthn::open(&key, &r.credential)).collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Ok(super::keys_unavailable());
    }
    let (challenge, ceremony) = webauthn.start_securitykey_authentication(&keys).map_err(WebError::internal)?;
    let text = Ceremony::Authenticate(ceremony).to_json()?;
    state.services.store.set_staff_ceremony(&s.id_hash, Some(text)).await.map_err(WebError::internal)?;
    Ok(super::json(StatusCode::OK, serde_json::to_value(challenge).map_err(WebError::internal)?))
}

/// `POST /staff/signin/key/finish`: the key's signature over the challenge, verified by
/// webauthn-rs against the registered public key. A ceremony is used once.
pub async fn key_finish(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CredentialForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let s = session::require(&state, ip, &headers, &[Stage::Mfa]).await?;
    let Some(webauthn) = state.webauthn.as_ref() else { return Ok(super::keys_unavailable()) };
    let store = &state.services.store;
    let (who, whom) = (actor(&s.account.id), target(&s.account.id));
    if refuse_locked(&state, &s).await? {
        return Ok(super::json(StatusCode::FORBIDDEN, json!({ "error": LOCKED, "next": "/staff/signin" })));
    }
    store.set_staff_ceremony(&s.id_hash, None).await.map_err(WebError::internal)?;
    let ceremony = s.row.ceremony.as_deref().and_then(Ceremony::from_json);
    let credential = serde_json::from_str::<PublicKeyCredential>(&form.credential);
    let (Some(Ceremony::Authenticate(ceremony)), Ok(credential)) = (ceremony, credential) else {
        return Ok(super::json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "Start again: the security key's answer did not match a request." }),
        ));
    };
    let result = match webauthn.finish_securitykey_authentication(&credential, &ceremony) {
        Ok(r) => r,
        Err(e) => {
            let locked = count_failure(&state, ip, &s.account, "security-key").await?;
            audit(
                &state,
                ip,
                &who,
                "staff.signin.mfa",
                &whom,
                Outcome::Failure,
                &[("method", "security-key".into()), ("reason", e.to_string()), ("locked", locked.to_string())],
            )
            .await;
            let next = if locked { "/staff/signin" } else { "/staff/signin/mfa" };
            return Ok(super::json(
                StatusCode::UNAUTHORIZED,
                json!({ "error": if locked { LOCKED } else { "The security key was not accepted." }, "next": next }),
            ));
        }
    };
    // Keep the key's new signature counter, so a cloned key shows up.
    let key = store.account_key(&state.services.ring, &s.account).await.map_err(WebError::internal)?;
    let now = Timestamp::now().as_micros();
    let mut used = None;
    for row in store.staff_security_keys(&s.account.id).await.map_err(WebError::internal)? {
        let mut sk = super::webauthn::open(&key, &row.credential)?;
        if sk.cred_id() == result.cred_id() {
            sk.update_credential(&result);
            store
                .used_staff_security_key(&row.id, super::webauthn::seal(&key, &sk)?, now)
                .await
                .map_err(WebError::internal)?;
            used = Some(row.name);
        }
    }
    let mut response = super::json(StatusCode::OK, json!({ "next": "/staff/" }));
    session::renew(&state, &s, Stage::Full, &mut response).await?;
    audit(
        &state,
        ip,
        &who,
        "staff.signin.mfa",
        &whom,
        Outcome::Success,
        &[("method", "security-key".into()), ("key", used.unwrap_or_default())],
    )
    .await;
    completed(&state, ip, &s.account, user_agent(&headers)).await?;
    Ok(response)
}

/// `POST /staff/signout`
pub async fn signout(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    if let Some(s) = session::current(&state, ip, &headers).await? {
        state.services.store.end_staff_sessions(Some(s.id_hash), None).await.map_err(WebError::internal)?;
        audit(
            &state,
            ip,
            &actor(&s.account.id),
            "staff.signout",
            &target(&s.account.id),
            Outcome::Success,
            &[("reason", "signed out".into())],
        )
        .await;
    }
    let mut response = see_other("/staff/signin");
    cookies::append(response.headers_mut(), cookies::clear_cookie(session::COOKIE));
    Ok(response)
}
