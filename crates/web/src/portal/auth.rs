//! Proving the address, choosing a password, signing in (with TOTP), signing out, over
//! HTTP. Accounts, codes, sessions and lockout are the identity room's; these handlers add
//! the client's block and the audit record, and render the answer.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_identity::{
    AccountRef, CodeEntered, CodeIssued, CodeRules, PasswordStep, PortalAccount, PortalWho, SecondStep, Stage,
};
use carepost_model::{Address, TenantId, Timestamp};
use carepost_secure::portal::masked;
use carepost_store::portal::purpose;
use carepost_vault as password;
use serde::Deserialize;

use super::session::{self, Session};
use super::{audit, failed_attempt, page, refuse_blocked, see_other};
use crate::csrf::csrf_field;
use crate::csrf::{CodeForm as OneCode, Csrf, CsrfForm, CsrfOnly};
use crate::error::WebError;
use crate::signin::{self, Door, SecondFactor, TotpState, Visit};
use crate::{ClientIp, WebState, micros};

/// Whose address a form is about: from a pick-up link's token, or typed in.
struct Who {
    tenant: TenantId,
    address: Address,
    index: Vec<u8>,
    /// Where to go once signed in.
    next: String,
}

impl Who {
    fn portal(&self) -> PortalWho {
        PortalWho { tenant: self.tenant.clone(), address: self.address.clone(), index: self.index.clone() }
    }
}

fn code_rules(state: &WebState) -> CodeRules {
    CodeRules {
        per_hour: i64::from(state.config.codes_per_hour),
        lifetime: micros(state.config.code_lifetime.as_secs()),
        attempts: i64::from(state.config.code_attempts),
    }
}

/// The address a pick-up link's message is for.
fn message_who(message: &carepost_secure::portal::PortalMessage) -> Result<PortalWho, WebError> {
    let tenant = TenantId::new(&message.row.tenant).map_err(WebError::internal)?;
    Ok(PortalWho { tenant, address: message.recipient.clone(), index: message.row.recipient_index.clone() })
}

async fn who(state: &WebState, token: &str, email: &str) -> Result<Option<Who>, WebError> {
    let portal = &state.services.portal;
    if !token.is_empty() {
        let Some((kind, message)) = portal.resolve(token).await.map_err(WebError::internal)? else { return Ok(None) };
        if kind != purpose::PICKUP {
            return Ok(None);
        }
        let tenant = TenantId::new(&message.row.tenant).map_err(WebError::internal)?;
        let next = format!("/p/read/{}", message.row.id);
        return Ok(Some(Who { tenant, address: message.recipient, index: message.row.recipient_index, next }));
    }
    let Ok(address) = Address::parse(email.trim()) else { return Ok(None) };
    let tenant = TenantId::default();
    let index = portal.recipient_index(&tenant, &address).map_err(WebError::internal)?;
    Ok(Some(Who { tenant, address, index, next: "/p/inbox".into() }))
}

fn safe_next(next: &str) -> &str {
    let ok = next.starts_with("/p/")
        && !next.contains("//")
        && next.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b));
    if ok { next } else { "/p/inbox" }
}

#[derive(Template)]
#[template(path = "portal/link.html")]
struct LinkPage {
    signed_in: bool,
    csrf: String,
    token: String,
    masked: String,
    has_password: bool,
    /// The sender set a passphrase: offer it as the proof of address.
    passphrase: bool,
    error: Option<String>,
}

/// `GET /p/m/{token}`: the pick-up link.
pub async fn link(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some((kind, message)) = state.services.portal.resolve(&token).await.map_err(WebError::internal)? else {
        return Err(WebError::NotFound);
    };
    if kind != purpose::PICKUP {
        return Err(WebError::NotFound);
    }
    let current = session::current(&state, &headers).await?;
    let signed_in = current.as_ref().is_some_and(Session::is_full);
    if !message.is_active() || message.row.expires_at <= Timestamp::now().as_micros() {
        return super::withdrawn(csrf, signed_in);
    }
    if let Some(s) = current.filter(|s| s.allows(&message.row.id))
        && s.account.address_index == message.row.recipient_index
        && s.account.tenant == message.row.tenant
    {
        return Ok(see_other(&format!("/p/read/{}", message.row.id)));
    }
    let account = state.services.identity.portal_account(&message_who(&message)?).await.map_err(WebError::internal)?;
    let has_password = account.is_some_and(|a| a.password_hash.is_some());
    let passphrase = message.envelope.as_ref().is_some_and(|e| e.passphrase_hash.is_some());
    page(
        StatusCode::OK,
        &LinkPage { signed_in, csrf, token, masked: masked(&message.recipient), has_password, passphrase, error: None },
    )
}

#[derive(Deserialize)]
pub struct PassphraseForm {
    csrf: String,
    token: String,
    passphrase: String,
}

csrf_field!(PassphraseForm, CodeForm, VerifyForm, SigninForm);

/// `POST /p/passphrase`: proves the address with the passphrase the sender set for this
/// message. It opens this one message only: a passphrase is the sender's secret, weaker than
/// control of the address, so the inbox, other senders' messages and a password still need
/// the one-time code. Wrong passphrases change nothing; they count against the client's
/// address and the message (after `web.code_attempts` of them the passphrase no longer works
/// for it).
pub async fn passphrase(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    CsrfForm(form): CsrfForm<PassphraseForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let Some((kind, message)) = state.services.portal.resolve(&form.token).await.map_err(WebError::internal)? else {
        return Err(WebError::NotFound);
    };
    if kind != purpose::PICKUP {
        return Err(WebError::NotFound);
    }
    if !message.is_active() || message.row.expires_at <= Timestamp::now().as_micros() {
        return super::withdrawn(csrf, false);
    }
    let Some(expected) = message.envelope.as_ref().and_then(|e| e.passphrase_hash.clone()) else {
        return Err(WebError::NotFound);
    };
    let id = message.row.id.clone();
    let again = |status: StatusCode, error: &str| {
        let masked = masked(&message.recipient);
        page(
            status,
            &LinkPage {
                signed_in: false,
                csrf: csrf.clone(),
                token: form.token.clone(),
                masked,
                has_password: false,
                passphrase: true,
                error: Some(error.into()),
            },
        )
    };
    let store = &state.services.store;
    let recipient = message_who(&message)?;
    let account = state.services.identity.portal_account(&recipient).await.map_err(WebError::internal)?;
    if account.as_ref().is_some_and(|a| a.password_hash.is_some()) {
        return again(
            StatusCode::BAD_REQUEST,
            "This address already has a password. Sign in with it, or ask for a code if you forgot it.",
        );
    }
    let address_tag = carepost_model::redaction_tag(message.recipient.canonical().as_bytes());
    let target = format!("portal:{id}");
    // A slot is reserved in the store before the comparison (and given back when right), so
    // parallel guesses and restarts cannot stretch the limit.
    if !store
        .reserve_portal_passphrase_attempt(&id, i64::from(state.config.code_attempts))
        .await
        .map_err(WebError::internal)?
    {
        failed_attempt(&state, ip, "portal-passphrase").await;
        audit(
            &state,
            ip,
            "portal",
            "portal.passphrase.verify",
            &target,
            Outcome::Denied,
            &[("address", address_tag), ("reason", "attempts".into())],
        )
        .await;
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passphrases were tried for this message. Ask for a code instead.",
        );
    }
    let given = form.passphrase.trim().to_owned();
    let matched = match password::verify_password_limited(expected, given).await {
        Ok(matched) => matched,
        Err(e) => {
            // Nothing was compared: the reserved attempt is not the recipient's to lose.
            let _ = store.release_portal_passphrase_attempt(&id).await;
            return Err(WebError::internal(e));
        }
    };
    if matched {
        store.release_portal_passphrase_attempt(&id).await.map_err(WebError::internal)?;
    } else {
        failed_attempt(&state, ip, "portal-passphrase").await;
        audit(&state, ip, "portal", "portal.passphrase.verify", &target, Outcome::Failure, &[("address", address_tag)])
            .await;
        return again(
            StatusCode::BAD_REQUEST,
            "That passphrase is not right. Check it with the sender, or ask for a code instead.",
        );
    }
    let account = match account {
        Some(a) => a,
        None => state.services.identity.portal_account_for(&recipient).await.map_err(WebError::internal)?,
    };
    audit(
        &state,
        ip,
        &format!("portal:{}", account.id),
        "portal.passphrase.verify",
        &target,
        Outcome::Success,
        &[("address", address_tag)],
    )
    .await;
    let token = state.services.identity.portal_message_session(&account, &id).await.map_err(WebError::internal)?;
    let mut response = see_other(&format!("/p/read/{id}"));
    Session::set_cookie(&mut response, &token);
    Ok(response)
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
}

#[derive(Template)]
#[template(path = "portal/code.html")]
struct CodePage {
    signed_in: bool,
    csrf: String,
    token: String,
    email: String,
    minutes: u64,
    error: Option<String>,
}

fn code_page(
    state: &WebState,
    status: StatusCode,
    csrf: String,
    token: &str,
    email: &str,
    error: Option<String>,
) -> Result<Response, WebError> {
    let minutes = state.config.code_lifetime.as_secs().div_ceil(60);
    page(status, &CodePage { signed_in: false, csrf, token: token.into(), email: email.into(), minutes, error })
}

/// `POST /p/code`: sends a one-time code to the address. The page is the same whether or
/// not the address has anything here.
pub async fn send_code(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let Some(who) = who(&state, &form.token, &form.email).await? else {
        if form.token.is_empty() {
            return Err(WebError::BadRequest(
                "That does not look like an e-mail address. Go back and check it.".into(),
            ));
        }
        return Err(WebError::NotFound);
    };
    let (kind, account) =
        state.services.identity.portal_code_purpose(&who.portal()).await.map_err(WebError::internal)?;
    let store = &state.services.store;
    let eligible = account.is_some()
        || !store.portal_messages_for(who.tenant.as_str(), &who.index).await.map_err(WebError::internal)?.is_empty();
    let address_tag = carepost_model::redaction_tag(who.address.canonical().as_bytes());
    if !eligible {
        code_refused(&state, ip, address_tag, "no messages").await;
        return code_page(&state, StatusCode::OK, csrf, &form.token, &form.email, None);
    }
    let issued = state
        .services
        .identity
        .issue_portal_code(&who.portal(), kind, code_rules(&state))
        .await
        .map_err(WebError::internal)?;
    let CodeIssued::Issued { id, code } = issued else {
        code_refused(&state, ip, address_tag, "codes per hour").await;
        return code_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            csrf,
            &form.token,
            &form.email,
            Some(
                "Several codes were sent to this address in the last hour. Use the latest one, or wait and try again."
                    .into(),
            ),
        );
    };
    let queued = send_code_mail(&state, &who, &code).await;
    let outcome = if queued.is_ok() { Outcome::Success } else { Outcome::Failure };
    audit(
        &state,
        ip,
        "portal",
        "portal.code.send",
        &format!("code:{id}"),
        outcome,
        &[("address", address_tag), ("purpose", kind.into())],
    )
    .await;
    queued?;
    code_page(&state, StatusCode::OK, csrf, &form.token, &form.email, None)
}

/// Audits a code request refused without telling the visitor (the page reads the same).
async fn code_refused(state: &WebState, ip: ClientIp, address_tag: String, reason: &str) {
    let details = [("address", address_tag), ("reason", reason.to_owned())];
    audit(state, ip, "portal", "portal.code.send", "", Outcome::Denied, &details).await;
}

/// Queues the code mail like carepost's other notices: straight to the spool, DKIM-signed
/// by delivery. It carries no PHI.
async fn send_code_mail(state: &WebState, who: &Who, code: &str) -> Result<(), WebError> {
    let settings = state.services.portal.settings();
    let org = state.organization_name();
    let minutes = state.config.code_lifetime.as_secs().div_ceil(60);
    let text = format!(
        "Your code for the secure message portal of {org} is:\r\n\r\n    {code}\r\n\r\nIt is valid for {minutes} minutes. \
         If you did not ask for it, you can ignore this e-mail: nobody can read your messages without it.\r\n"
    );
    let message = mail_builder::MessageBuilder::new()
        .from((org.as_str(), format!("no-reply@{}", settings.hostname).as_str()))
        .to(who.address.as_str())
        .subject(format!("Your code: {code}"))
        .header("Auto-Submitted", mail_builder::headers::raw::Raw::new("auto-generated"))
        .text_body(text)
        .write_to_vec()
        .map_err(WebError::internal)?;
    state.services.intake.queue_own_mail(&who.tenant, None, &who.address, message).await.map_err(WebError::internal)?;
    Ok(())
}

#[derive(Deserialize)]
pub struct VerifyForm {
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    code: String,
    password: String,
    password2: String,
}

/// Recipients' passwords follow the staff rules (no common passwords, not the address),
/// with a shorter minimum: a patient signs in rarely and from a phone.
fn password_problem(state: &WebState, password: &str, again: &str, address: &Address) -> Option<String> {
    let policy = state.services.identity.password_rules(carepost_identity::Kind::Portal);
    match policy.check(password, address.as_str()) {
        Err(password::PasswordRejected::TooShort(n)) => {
            return Some(format!("Choose a password of at least {n} characters."));
        }
        Err(password::PasswordRejected::TooLong) => {
            return Some("That password is too long.".into());
        }
        Err(password::PasswordRejected::Common) => {
            return Some("That password is one of the most common ones. Choose another.".into());
        }
        Err(password::PasswordRejected::ContainsName) => {
            return Some("Choose a password that does not contain your address.".into());
        }
        Ok(()) => {}
    }
    if password != again {
        return Some("The two passwords are not the same.".into());
    }
    None
}

/// `POST /p/verify`: the code from the e-mail and a new password. A wrong code changes
/// nothing but its attempt count.
pub async fn verify(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    CsrfForm(form): CsrfForm<VerifyForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let Some(who) = who(&state, &form.token, &form.email).await? else { return Err(WebError::NotFound) };
    if let Some(problem) = password_problem(&state, &form.password, &form.password2, &who.address) {
        return code_page(&state, StatusCode::BAD_REQUEST, csrf, &form.token, &form.email, Some(problem));
    }
    let (kind, _) = state.services.identity.portal_code_purpose(&who.portal()).await.map_err(WebError::internal)?;
    let address_tag = carepost_model::redaction_tag(who.address.canonical().as_bytes());
    // The attempt is counted before the comparison, so parallel guesses get no more than
    // `code_attempts` comparisons between them.
    let entered = state
        .services
        .identity
        .enter_portal_code(&who.portal(), kind, &form.code, code_rules(&state))
        .await
        .map_err(WebError::internal)?;
    if matches!(entered, CodeEntered::NoCode | CodeEntered::Exhausted) {
        failed_attempt(&state, ip, "portal-code").await;
        let reason = if entered == CodeEntered::Exhausted { "attempts" } else { "no code" };
        audit(
            &state,
            ip,
            "portal",
            "portal.code.verify",
            "",
            Outcome::Denied,
            &[("address", address_tag), ("purpose", kind.into()), ("reason", reason.into())],
        )
        .await;
        return code_page(
            &state,
            StatusCode::BAD_REQUEST,
            csrf,
            &form.token,
            &form.email,
            Some("That code is no longer valid. Ask for a new one.".into()),
        );
    }
    if entered == CodeEntered::Wrong {
        failed_attempt(&state, ip, "portal-code").await;
        audit(
            &state,
            ip,
            "portal",
            "portal.code.verify",
            "",
            Outcome::Failure,
            &[("address", address_tag), ("purpose", kind.into())],
        )
        .await;
        let text = "That code is not right. Check the latest e-mail and try again.";
        return code_page(&state, StatusCode::BAD_REQUEST, csrf, &form.token, &form.email, Some(text.into()));
    }
    // A reset signs out every other browser (the identity room's rule for every new password).
    let (account, token, session) =
        state.services.identity.portal_set_password(&who.portal(), &form.password).await.map_err(WebError::internal)?;
    let account_id = account.id;
    audit(
        &state,
        ip,
        &format!("portal:{account_id}"),
        "portal.password.set",
        &format!("portal-account:{account_id}"),
        Outcome::Success,
        &[("purpose", kind.into())],
    )
    .await;
    Ok(signed_in(&session.stage, &token, &who.next))
}

/// Sends the browser on with its new session: to the TOTP step when the account has one.
fn signed_in(stage: &Stage, token: &str, next: &str) -> Response {
    let next = safe_next(next);
    let to = if *stage == Stage::SecondFactor { format!("/p/signin/totp?next={next}") } else { next.to_owned() };
    let mut response = see_other(&to);
    Session::set_cookie(&mut response, token);
    response
}

#[derive(Template)]
#[template(path = "portal/signin.html")]
struct SigninPage {
    signed_in: bool,
    csrf: String,
    email: String,
    error: Option<String>,
}

/// `GET /p/signin`
pub async fn signin_page(Csrf(csrf): Csrf) -> Result<Response, WebError> {
    page(StatusCode::OK, &SigninPage { signed_in: false, csrf, email: String::new(), error: None })
}

#[derive(Deserialize)]
pub struct SigninForm {
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    password: String,
}

const WRONG: &str = "The address or password is not right.";

/// `POST /p/signin`: password sign-in; wrong passwords count towards the account's lockout
/// and the client address's block.
pub async fn signin(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    CsrfForm(form): CsrfForm<SigninForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let email = form.email.clone();
    let wrong = |csrf: String, status: StatusCode, text: &str| {
        page(status, &SigninPage { signed_in: false, csrf, email: email.clone(), error: Some(text.into()) })
    };
    let who = who(&state, &form.token, &form.email).await?;
    let account = match &who {
        Some(w) => state.services.identity.portal_account(&w.portal()).await.map_err(WebError::internal)?,
        None => None,
    };
    let account = account.filter(|a| a.password_hash.is_some());
    let step =
        state.services.identity.portal_password(account, &form.password, ip.0).await.map_err(WebError::internal)?;
    let signin_audit = |account: &PortalAccount, outcome: Outcome, details: Vec<(&'static str, String)>| {
        let (state, who) = (state.clone(), AccountRef::portal(account));
        async move {
            let who = who.map_err(WebError::internal)?;
            audit(&state, ip, &who.actor(), "portal.signin", &who.target(), outcome, &details).await;
            Ok::<(), WebError>(())
        }
    };
    match (step, who) {
        (PasswordStep::Passed { account, token, session, .. }, Some(who)) => {
            let stage = if session.stage == Stage::SecondFactor { "password" } else { "complete" };
            signin_audit(&account, Outcome::Success, vec![("stage", stage.into())]).await?;
            Ok(signed_in(&session.stage, &token, &who.next))
        }
        (PasswordStep::Locked { account, .. }, _) => {
            signin_audit(&account, Outcome::Denied, vec![("reason", "locked".into())]).await?;
            wrong(csrf, StatusCode::FORBIDDEN, LOCKED)
        }
        (PasswordStep::Wrong { account, locked_now }, _) => {
            failed_attempt(&state, ip, "portal-password").await;
            let details = vec![("reason", "password".into()), ("locked", locked_now.to_string())];
            signin_audit(&account, Outcome::Failure, details).await?;
            let status = if locked_now { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
            wrong(csrf, status, if locked_now { LOCKED } else { WRONG })
        }
        _ => {
            failed_attempt(&state, ip, "portal-password").await;
            audit(&state, ip, "portal", "portal.signin", "", Outcome::Failure, &[("reason", "unknown account".into())])
                .await;
            wrong(csrf, StatusCode::UNAUTHORIZED, WRONG)
        }
    }
}

const LOCKED: &str = "This account is locked for a while after too many failed sign-ins. You can unlock it now by resetting your password with a code sent to your address.";

#[derive(Template)]
#[template(path = "portal/totp_signin.html")]
struct TotpSigninPage {
    signed_in: bool,
    csrf: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

/// `GET /p/signin/totp`
pub async fn totp_page(Csrf(csrf): Csrf, _: Visit<Session, SecondFactor>) -> Result<Response, WebError> {
    page(StatusCode::OK, &TotpSigninPage { signed_in: false, csrf, error: None })
}

/// `POST /p/signin/totp?next=`: the second step.
pub async fn totp_signin(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
    CsrfForm(form): CsrfForm<OneCode>,
) -> Result<Response, WebError> {
    let Some((_, step)) =
        signin::totp_step::<Session>(&state, ip, &headers, &form.code, ("portal.signin.totp", &[])).await?
    else {
        return Ok(see_other("/p/signin"));
    };
    let again = |status: StatusCode, text: &str| {
        page(status, &TotpSigninPage { signed_in: false, csrf: csrf.clone(), error: Some(text.into()) })
    };
    match step {
        SecondStep::NoFactor => Ok(see_other("/p/signin")),
        SecondStep::Locked => again(StatusCode::FORBIDDEN, LOCKED),
        SecondStep::Wrong { locked_now } => {
            again(StatusCode::UNAUTHORIZED, if locked_now { LOCKED } else { signin::WRONG_CODE })
        }
        SecondStep::Passed { token, .. } => {
            let mut response = see_other(safe_next(&q.next));
            Session::set_cookie(&mut response, &token);
            Ok(response)
        }
    }
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    signed_in: bool,
    csrf: String,
    address: String,
    totp: TotpState,
    message: Option<String>,
    error: Option<String>,
}

async fn account_page(
    state: &WebState,
    s: &Session,
    csrf: String,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let who = s.who();
    let address = state.services.identity.portal_address(&who, &s.account).await.map_err(WebError::internal)?;
    let totp = signin::totp_state(state, &who, &address).await?;
    page(StatusCode::OK, &AccountPage { signed_in: true, csrf, address, totp, message, error })
}

/// `GET /p/account`
pub async fn account(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let s = session::require(&state, &headers).await?;
    account_page(&state, &s, csrf, None, None).await
}

/// `POST /p/account/totp`: a new secret to confirm.
pub async fn totp_setup(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let s = session::require(&state, &headers).await?;
    // With an app on already, nothing changes: the page shows it on.
    state.services.identity.begin_totp(&s.who()).await.map_err(WebError::internal)?;
    account_page(&state, &s, csrf, None, None).await
}

/// `POST /p/account/totp/confirm`: turns TOTP on once the app's code matches.
pub async fn totp_confirm(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<OneCode>,
) -> Result<Response, WebError> {
    let s = session::require(&state, &headers).await?;
    if s.account.totp_pending.is_none() {
        return account_page(&state, &s, csrf, None, None).await;
    }
    if !signin::confirm_totp(&state, ip, &s.who(), &form.code, ("portal.totp.enable", &[])).await? {
        return account_page(&state, &s, csrf, None, Some(signin::WRONG_SETUP_CODE.into())).await;
    }
    account_page(&state, &s, csrf, Some("Two-step sign-in is on.".into()), None).await
}
