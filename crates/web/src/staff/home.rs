//! The signed-in staff pages: home (the role and what it allows), the password, the
//! organization's require-MFA switch (administrators) and the audit log, read-only
//! (administrators and compliance officers).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_identity::{PasswordChange, Permission, Role, Stage, allows};
use serde::Deserialize;

use super::audit;
use super::session::{self, StaffSession};
use super::signin::failed;
use crate::csrf::csrf_field;
use crate::csrf::{Csrf, CsrfForm};
use crate::error::WebError;
use crate::pages::see_other;
use crate::signin::{Door, Full, Visit};
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
    let require_mfa = state.services.identity.mfa_required(&s.account.tenant).await.map_err(WebError::internal)?;
    let page = HomePage {
        signed_in: true,
        csrf,
        login: s.account.login.clone(),
        role: role.to_string(),
        allowances: allowances(role),
        mfa_on: s.factors.has_second_factor(),
        may_read_audit: allows(role, Permission::ReadAudit),
        may_change_settings: allows(role, Permission::ChangeSettings),
        require_mfa,
        idle_minutes: state.staff.session_idle.as_secs().div_ceil(60),
        message: message.map(str::to_owned),
        error: error.map(str::to_owned),
    };
    crate::pages::page(status, &page)
}

/// `GET /staff`
pub async fn redirect() -> Response {
    see_other("/staff/")
}

/// `GET /staff/`
pub async fn home(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    Visit(s, _): Visit<StaffSession, Full>,
) -> Result<Response, WebError> {
    render(&state, &s, csrf, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    again: String,
}

csrf_field!(PasswordForm, SwitchForm);

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
    let who = s.who();
    let (actor, target) = (who.actor(), who.target());
    let change = state
        .services
        .identity
        .change_password(&s.account, &form.current, &form.new, &form.again)
        .await
        .map_err(WebError::internal)?;
    let text = match change {
        PasswordChange::WrongCurrent { locked_now } => {
            failed(&state, ip, &s.account, "password", locked_now).await;
            let details = [("reason", "current password".into()), ("locked", locked_now.to_string())];
            audit(&state, ip, &actor, "staff.password.change", &target, Outcome::Failure, &details).await;
            if locked_now {
                return Err(WebError::Unauthorized);
            }
            "Your current password is not right.".to_owned()
        }
        PasswordChange::Rejected(e) => {
            let details = [("reason", e.to_string())];
            audit(&state, ip, &actor, "staff.password.change", &target, Outcome::Denied, &details).await;
            format!("Not changed: {e}.")
        }
        PasswordChange::Mismatch => "Not changed: the two new passwords are not the same.".to_owned(),
        PasswordChange::Changed { token } => {
            audit(&state, ip, &actor, "staff.password.change", &target, Outcome::Success, &[]).await;
            let mut response =
                render(&state, &s, csrf, StatusCode::OK, Some("Your password is changed."), None).await?;
            StaffSession::set_cookie(&mut response, &token);
            return Ok(response);
        }
    };
    render(&state, &s, csrf, StatusCode::BAD_REQUEST, None, Some(&text)).await
}

#[derive(Deserialize)]
pub struct SwitchForm {
    csrf: String,
    value: String,
}

/// `POST /staff/settings/require-mfa` (administrators): on, every account without a second
/// factor must enroll one at its next sign-in.
pub async fn require_mfa(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SwitchForm>,
) -> Result<Response, WebError> {
    let s = session::require_role(&state, ip, &headers, Permission::ChangeSettings).await?;
    let value = match form.value.as_str() {
        "on" | "off" => form.value.as_str(),
        _ => return Err(WebError::BadRequest("The setting is on or off.".into())),
    };
    let actor = s.who().actor();
    state
        .services
        .identity
        .set_mfa_required(&s.account.tenant, value == "on", &actor)
        .await
        .map_err(WebError::internal)?;
    audit(
        &state,
        ip,
        &actor,
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
    let s = session::require_role(&state, ip, &headers, Permission::ReadAudit).await?;
    let actor = s.who().actor();
    // The audit log is the installation's, every tenant's records in one chain: only the
    // operator's own organization (the default tenant) may read it here.
    if s.account.tenant != carepost_model::TenantId::default() {
        audit(&state, ip, &actor, "staff.audit.view", "audit", Outcome::Denied, &[("reason", "tenant".into())]).await;
        return Err(WebError::Forbidden(
            "The audit log covers the whole installation; ask its operator for your organization's records.".into(),
        ));
    }
    let records = state.services.store.audit_records_latest(200).await.map_err(WebError::internal)?;
    audit(&state, ip, &actor, "staff.audit.view", "audit", Outcome::Success, &[("records", records.len().to_string())])
        .await;
    let rows = records
        .into_iter()
        .map(|r| AuditLine {
            at: crate::pages::date(r.at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            ip: r.source_ip.unwrap_or_default(),
            outcome: r.outcome,
        })
        .collect();
    crate::pages::page(StatusCode::OK, &AuditPage { signed_in: true, csrf, rows })
}
