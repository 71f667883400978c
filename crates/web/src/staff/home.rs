//! The signed-in staff pages: home (the role and what it allows), the password, the
//! organization's require-MFA switch (administrators) and the audit log, read-only
//! (administrators and compliance officers).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_model::Timestamp;
use carepost_store::accounts::Role;
use carepost_store::staff::REQUIRE_MFA;
use carepost_vault as password;
use serde::Deserialize;

use super::session::{self, StaffSession, Stage};
use super::signin::count_failure;
use super::{actor, audit, target};
use crate::csrf::{Csrf, CsrfField, CsrfForm};
use crate::error::WebError;
use crate::portal::see_other;
use crate::{ClientIp, WebState};

/// What each role may do, as the home page lists it.
fn allowances(role: Role) -> &'static [&'static str] {
    match role {
        Role::Admin => &[
            "Send mail through SMTP submission with your password or app passwords.",
            "Read the audit log and reports.",
            "Change organization settings, such as requiring two-step sign-in for everyone.",
        ],
        Role::Compliance => {
            &["Read the audit log and reports.", "Send mail through SMTP submission.", "Change no settings."]
        }
        Role::Sender => &["Send mail through SMTP submission with your password or app passwords."],
        Role::ApiOnly => &["Send through the REST API with API keys only."],
    }
}

#[derive(Template)]
#[template(path = "staff/home.html")]
struct HomePage {
    signed_in: bool,
    csrf: String,
    login: String,
    role: String,
    allowances: &'static [&'static str],
    mfa_on: bool,
    may_read_audit: bool,
    may_change_settings: bool,
    require_mfa: bool,
    idle_minutes: u64,
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
    let role = s.role();
    let require_mfa = state.services.store.mfa_required(s.account.tenant.as_str()).await.map_err(WebError::internal)?;
    let page = HomePage {
        signed_in: true,
        csrf,
        login: s.account.login.clone(),
        role: role.to_string(),
        allowances: allowances(role),
        mfa_on: s.auth.has_mfa(),
        may_read_audit: role.may_read_audit(),
        may_change_settings: role.may_change_settings(),
        require_mfa,
        idle_minutes: state.staff.session_idle.as_secs().div_ceil(60),
        message: message.map(str::to_owned),
        error: error.map(str::to_owned),
    };
    crate::portal::page(status, &page)
}

/// `GET /staff`
pub async fn redirect() -> Response {
    see_other("/staff/")
}

/// `GET /staff/`
pub async fn home(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    match session::current(&state, ip, &headers).await? {
        Some(s) if s.stage == Stage::Full => render(&state, &s, csrf, StatusCode::OK, None, None).await,
        Some(s) if s.stage == Stage::Enroll => Ok(see_other("/staff/mfa")),
        Some(_) => Ok(see_other("/staff/signin/mfa")),
        None => Ok(see_other("/staff/signin")),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    again: String,
}

impl CsrfField for PasswordForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /staff/password`: a new password, held to the password policy. A wrong current
/// password counts as a failed sign-in.
pub async fn change_password(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, WebError> {
    let s = session::require(&state, ip, &headers, &[Stage::Full]).await?;
    let (who, whom) = (actor(&s.account.id), target(&s.account.id));
    let store = &state.services.store;
    let creds = store
        .account_credentials(&state.services.ring, &s.account.login)
        .await
        .map_err(WebError::internal)?
        .ok_or(WebError::Unauthorized)?;
    let ok = {
        let (h, p) = (creds.password_hash.unwrap_or_default(), form.current.clone());
        password::verify_password_limited(h, p).await.map_err(WebError::internal)?
    };
    if !ok {
        let locked = count_failure(&state, ip, &s.account, "password").await?;
        audit(
            &state,
            ip,
            &who,
            "staff.password.change",
            &whom,
            Outcome::Failure,
            &[("reason", "current password".into()), ("locked", locked.to_string())],
        )
        .await;
        if locked {
            return Err(WebError::Unauthorized);
        }
        return render(&state, &s, csrf, StatusCode::BAD_REQUEST, None, Some("Your current password is not right."))
            .await;
    }
    if let Err(e) = state.staff.password_policy().check(&form.new, &s.account.login) {
        audit(&state, ip, &who, "staff.password.change", &whom, Outcome::Denied, &[("reason", e.to_string())]).await;
        return render(&state, &s, csrf, StatusCode::BAD_REQUEST, None, Some(&format!("Not changed: {e}."))).await;
    }
    if form.new != form.again {
        return render(
            &state,
            &s,
            csrf,
            StatusCode::BAD_REQUEST,
            None,
            Some("Not changed: the two new passwords are not the same."),
        )
        .await;
    }
    let hash = {
        let p = form.new.clone();
        password::hash_password_limited(p).await.map_err(WebError::internal)?
    };
    store.set_password_hash(&s.account.id, Some(hash)).await.map_err(WebError::internal)?;
    // Whoever else holds a session of this account (a stolen one, say) is signed out; this
    // browser goes on in a new session.
    store.end_staff_sessions(None, Some(s.account.id.clone())).await.map_err(WebError::internal)?;
    audit(&state, ip, &who, "staff.password.change", &whom, Outcome::Success, &[]).await;
    let mut response = render(&state, &s, csrf, StatusCode::OK, Some("Your password is changed."), None).await?;
    session::start(&state, &s.account, Stage::Full, &mut response).await?;
    Ok(response)
}

#[derive(Deserialize)]
pub struct SwitchForm {
    csrf: String,
    value: String,
}

impl CsrfField for SwitchForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /staff/settings/require-mfa` (administrators): on, every account without a second
/// factor must enroll one at its next sign-in.
pub async fn require_mfa(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SwitchForm>,
) -> Result<Response, WebError> {
    let s = session::require_role(&state, ip, &headers, Role::may_change_settings).await?;
    let value = match form.value.as_str() {
        "on" | "off" => form.value.as_str(),
        _ => return Err(WebError::BadRequest("The setting is on or off.".into())),
    };
    let now = Timestamp::now().as_micros();
    state
        .services
        .store
        .set_org_setting(s.account.tenant.as_str(), REQUIRE_MFA, value, &actor(&s.account.id), now)
        .await
        .map_err(WebError::internal)?;
    audit(
        &state,
        ip,
        &actor(&s.account.id),
        "staff.require_mfa",
        &format!("tenant:{}", s.account.tenant),
        Outcome::Success,
        &[("value", value.into())],
    )
    .await;
    Ok(see_other("/staff/"))
}

#[derive(Template)]
#[template(path = "staff/audit.html")]
struct AuditPage {
    signed_in: bool,
    csrf: String,
    rows: Vec<AuditLine>,
}

struct AuditLine {
    at: String,
    actor: String,
    action: String,
    target: String,
    ip: String,
    outcome: String,
}

/// `GET /staff/audit` (administrators and compliance officers): the newest records,
/// read-only. Records hold no PHI (addresses appear as keyed hashes).
pub async fn audit_view(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let s = session::require_role(&state, ip, &headers, Role::may_read_audit).await?;
    // The audit log is the installation's, every tenant's records in one chain: only the
    // operator's own organization (the default tenant) may read it here.
    if s.account.tenant != carepost_model::TenantId::default() {
        audit(
            &state,
            ip,
            &actor(&s.account.id),
            "staff.audit.view",
            "audit",
            Outcome::Denied,
            &[("reason", "tenant".into())],
        )
        .await;
        return Err(WebError::Forbidden(
            "The audit log covers the whole installation; ask its operator for your organization's records.".into(),
        ));
    }
    let records = state.services.store.audit_records_latest(200).await.map_err(WebError::internal)?;
    audit(
        &state,
        ip,
        &actor(&s.account.id),
        "staff.audit.view",
        "audit",
        Outcome::Success,
        &[("records", records.len().to_string())],
    )
    .await;
    let rows = records
        .into_iter()
        .map(|r| AuditLine {
            at: crate::portal::date(r.at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            ip: r.source_ip.unwrap_or_default(),
            outcome: r.outcome,
        })
        .collect();
    crate::portal::page(StatusCode::OK, &AuditPage { signed_in: true, csrf, rows })
}
