//! Proving the address, choosing a password, signing in (with TOTP), signing out.

use askama::Template;
use aws_lc_rs::constant_time;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use carepost_audit::Outcome;
use carepost_model::{Address, Arrival, Envelope, Id, Recipient, Source, TenantId, Timestamp};
use carepost_secure::portal::masked;
use carepost_spool::Submission;
use carepost_store::portal::{AccountRow, NewPortalCode, purpose};
use carepost_vault as password;
use serde::Deserialize;

use super::session::{self, Session};
use super::{audit, failed_attempt, page, refuse_blocked, see_other};
use crate::csrf::{Csrf, CsrfField, CsrfForm};
use crate::error::WebError;
use crate::totp;
use crate::{ClientIp, WebState, cookies, micros};

const MIN_PASSWORD: usize = 10;

/// Whose address a form is about: from a pick-up link's token, or typed in.
struct Who {
    tenant: TenantId,
    address: Address,
    index: Vec<u8>,
    /// Where to go once signed in.
    next: String,
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
    let account = state
        .services
        .store
        .portal_account(&message.row.tenant, &message.row.recipient_index)
        .await
        .map_err(WebError::internal)?;
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

impl CsrfField for PassphraseForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

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
    let account =
        store.portal_account(&message.row.tenant, &message.row.recipient_index).await.map_err(WebError::internal)?;
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
        None => {
            let tenant = TenantId::new(&message.row.tenant).map_err(WebError::internal)?;
            let who = Who {
                tenant,
                address: message.recipient.clone(),
                index: message.row.recipient_index.clone(),
                next: String::new(),
            };
            let id = new_account(&state, &who, None).await?;
            store.portal_account_by_id(&id).await.map_err(WebError::internal)?.ok_or(WebError::NotFound)?
        }
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
    let mut response = see_other(&format!("/p/read/{id}"));
    session::start_for_message(&state, &account, &id, &mut response).await?;
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

impl CsrfField for CodeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
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

/// What a code proves: the first visit (verify) or a forgotten password (reset).
async fn code_purpose(state: &WebState, who: &Who) -> Result<(&'static str, Option<AccountRow>), WebError> {
    let account =
        state.services.store.portal_account(who.tenant.as_str(), &who.index).await.map_err(WebError::internal)?;
    let kind =
        if account.as_ref().is_some_and(|a| a.password_hash.is_some()) { purpose::RESET } else { purpose::VERIFY };
    Ok((kind, account))
}

fn code_hash(state: &WebState, tenant: &TenantId, id: &str, code: &str) -> Result<Vec<u8>, WebError> {
    state
        .services
        .ring
        .blind_index(tenant, "portal-code", format!("{id}\0{code}").as_bytes())
        .map_err(WebError::internal)
}

fn new_code() -> Result<String, WebError> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| WebError::internal("the system random number generator failed"))?;
    Ok(format!("{:08}", u64::from_le_bytes(bytes) % 100_000_000))
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
    let (kind, account) = code_purpose(&state, &who).await?;
    let store = &state.services.store;
    let eligible = account.is_some()
        || !store.portal_messages_for(who.tenant.as_str(), &who.index).await.map_err(WebError::internal)?.is_empty();
    let address_tag = carepost_model::redaction_tag(who.address.canonical().as_bytes());
    if !eligible {
        audit(
            &state,
            ip,
            "portal",
            "portal.code.send",
            "",
            Outcome::Denied,
            &[("address", address_tag), ("reason", "no messages".into())],
        )
        .await;
        return code_page(&state, StatusCode::OK, csrf, &form.token, &form.email, None);
    }
    let now = Timestamp::now().as_micros();
    let sent = store
        .portal_codes_sent_since(who.tenant.as_str(), &who.index, kind, now - 3_600_000_000)
        .await
        .map_err(WebError::internal)?;
    if sent >= i64::from(state.config.codes_per_hour) {
        audit(
            &state,
            ip,
            "portal",
            "portal.code.send",
            "",
            Outcome::Denied,
            &[("address", address_tag), ("reason", "codes per hour".into())],
        )
        .await;
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
    }
    let code = new_code()?;
    let id = Id::new().to_string();
    let hash = code_hash(&state, &who.tenant, &id, &code)?;
    let expires = now.saturating_add(micros(state.config.code_lifetime.as_secs()));
    store
        .insert_portal_code(NewPortalCode {
            id: id.clone(),
            tenant: who.tenant.to_string(),
            address_index: who.index.clone(),
            purpose: kind,
            code_hash: hash,
            now,
            expires_at: expires,
        })
        .await
        .map_err(WebError::internal)?;
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

/// Queues the code mail like carepost's other notices: straight to the spool, DKIM-signed
/// by delivery. It carries no PHI.
async fn send_code_mail(state: &WebState, who: &Who, code: &str) -> Result<(), WebError> {
    let settings = state.services.portal.settings();
    let org = if state.config.organization.is_empty() {
        settings.hostname.clone()
    } else {
        state.config.organization.clone()
    };
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
    let envelope = Envelope {
        mail_from: None,
        recipients: vec![Recipient::new(who.address.clone())],
        dsn_ret: None,
        dsn_envid: None,
        require_tls: false,
        smtputf8: who.address.is_utf8(),
        body: Default::default(),
    };
    let arrival = Arrival {
        source: Source::System,
        client_ip: None,
        helo: None,
        authenticated_as: None,
        tls: None,
        sender_auth: None,
    };
    let submission = Submission::new(who.tenant.clone(), envelope, arrival, Bytes::from(message));
    state.services.intake.spool().accept(submission).await.map_err(WebError::internal)?;
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

impl CsrfField for VerifyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Recipients' passwords follow the staff rules (no common passwords, not the address),
/// with a shorter minimum: a patient signs in rarely and from a phone.
fn password_problem(password: &str, again: &str, address: &Address) -> Option<String> {
    let policy = password::PasswordPolicy { min_length: MIN_PASSWORD };
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
    if let Some(problem) = password_problem(&form.password, &form.password2, &who.address) {
        return code_page(&state, StatusCode::BAD_REQUEST, csrf, &form.token, &form.email, Some(problem));
    }
    let (kind, account) = code_purpose(&state, &who).await?;
    let store = &state.services.store;
    let now = Timestamp::now().as_micros();
    let address_tag = carepost_model::redaction_tag(who.address.canonical().as_bytes());
    let current =
        store.current_portal_code(who.tenant.as_str(), &who.index, kind, now).await.map_err(WebError::internal)?;
    let code: String = form.code.chars().filter(|c| c.is_ascii_digit()).collect();
    let max = i64::from(state.config.code_attempts);
    // The attempt is counted before the comparison, in one statement with the check, so
    // parallel guesses get no more than `code_attempts` comparisons between them.
    let reserved = match &current {
        Some(row) => store.reserve_portal_code_attempt(&row.id, max, now).await.map_err(WebError::internal)?,
        None => false,
    };
    let matched = match current.as_ref().filter(|_| reserved) {
        Some(row) => {
            let expected = code_hash(&state, &who.tenant, &row.id, &code)?;
            let ok = constant_time::verify_slices_are_equal(&expected, &row.code_hash).is_ok();
            store.portal_code_entered(&row.id, ok, max, now).await.map_err(WebError::internal)?
        }
        None => false,
    };
    if !reserved {
        failed_attempt(&state, ip, "portal-code").await;
        let reason = if current.is_some() { "attempts" } else { "no code" };
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
    if !matched {
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
        let text = if current.is_some() {
            "That code is not right. Check the latest e-mail and try again."
        } else {
            "That code is no longer valid. Ask for a new one."
        };
        return code_page(&state, StatusCode::BAD_REQUEST, csrf, &form.token, &form.email, Some(text.into()));
    }
    let account_id = set_password(&state, &who, account, &form.password).await?;
    let account =
        store.portal_account_by_id(&account_id).await.map_err(WebError::internal)?.ok_or(WebError::NotFound)?;
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
    signed_in(&state, &account, &who.next).await
}

/// Sets the password of the address's account once the address is proven: a reset for an
/// existing account (signing out its other browsers), else a new account. Returns its id.
async fn set_password(
    state: &WebState,
    who: &Who,
    account: Option<AccountRow>,
    password_text: &str,
) -> Result<String, WebError> {
    let store = &state.services.store;
    let now = Timestamp::now().as_micros();
    let hash = {
        let p = password_text.to_owned();
        password::hash_password_limited(p).await.map_err(WebError::internal)?
    };
    match account {
        Some(a) => {
            store.set_portal_password(a.clone(), hash, now).await.map_err(WebError::internal)?;
            // A reset signs out every other browser.
            store.end_portal_sessions(None, Some(a.id.clone())).await.map_err(WebError::internal)?;
            Ok(a.id)
        }
        None => new_account(state, who, Some(hash)).await,
    }
}

/// Creates the address's account (its own data key seals the address), with a password hash
/// or, for a passphrase visit, none yet. Returns its id.
async fn new_account(state: &WebState, who: &Who, password_hash: Option<String>) -> Result<String, WebError> {
    let store = &state.services.store;
    let now = Timestamp::now().as_micros();
    let id = Id::new().to_string();
    let object = format!("portal-account/{id}");
    let (key, wrapped) = state.services.ring.new_data_key(&who.tenant, &object).map_err(WebError::internal)?;
    let tenant = who.tenant.clone();
    store
        .writer()
        .run(move |tx| {
            Box::pin(async move { carepost_store::keys::put_data_key(tx, &tenant, &object, &wrapped).await })
        })
        .await
        .map_err(WebError::internal)?;
    let sealed = key.seal_field("address", who.address.as_str().as_bytes()).map_err(WebError::internal)?;
    let row = AccountRow::new(id, who.tenant.to_string(), who.index.clone(), sealed, now);
    store.insert_portal_account(row, password_hash, now).await.map_err(WebError::internal)
}

/// Starts a session and sends the browser on: to the TOTP step when the account has one.
async fn signed_in(state: &WebState, account: &AccountRow, next: &str) -> Result<Response, WebError> {
    let next = safe_next(next);
    let to = if account.totp.is_some() { format!("/p/signin/totp?next={next}") } else { next.to_owned() };
    let mut response = see_other(&to);
    session::start(state, account, &mut response).await?;
    Ok(response)
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

impl CsrfField for SigninForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
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
    let store = &state.services.store;
    let account = match &who {
        Some(w) => store.portal_account(w.tenant.as_str(), &w.index).await.map_err(WebError::internal)?,
        None => None,
    };
    let (Some(who), Some(account)) = (who, account.filter(|a| a.password_hash.is_some())) else {
        let p = form.password.clone();
        let _ = password::verify_nothing_limited(p).await;
        failed_attempt(&state, ip, "portal-password").await;
        audit(&state, ip, "portal", "portal.signin", "", Outcome::Failure, &[("reason", "unknown account".into())])
            .await;
        return wrong(csrf, StatusCode::UNAUTHORIZED, WRONG);
    };
    let now = Timestamp::now().as_micros();
    let actor = format!("portal:{}", account.id);
    let target = format!("portal-account:{}", account.id);
    if account.locked_until.is_some_and(|t| t > now) {
        audit(&state, ip, &actor, "portal.signin", &target, Outcome::Denied, &[("reason", "locked".into())]).await;
        return wrong(csrf, StatusCode::FORBIDDEN, LOCKED);
    }
    let ok = {
        let (h, p) = (account.password_hash.clone().unwrap_or_default(), form.password.clone());
        password::verify_password_limited(h, p).await.map_err(WebError::internal)?
    };
    if !ok {
        let locked = count_failure(&state, ip, &account).await?;
        audit(
            &state,
            ip,
            &actor,
            "portal.signin",
            &target,
            Outcome::Failure,
            &[("reason", "password".into()), ("locked", locked.to_string())],
        )
        .await;
        return wrong(
            csrf,
            if locked { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED },
            if locked { LOCKED } else { WRONG },
        );
    }
    store.portal_signin_succeeded(&account.id).await.map_err(WebError::internal)?;
    audit(
        &state,
        ip,
        &actor,
        "portal.signin",
        &target,
        Outcome::Success,
        &[("stage", if account.totp.is_some() { "password".into() } else { "complete".into() })],
    )
    .await;
    signed_in(&state, &account, &who.next).await
}

const LOCKED: &str = "This account is locked for a while after too many failed sign-ins. You can unlock it now by resetting your password with a code sent to your address.";

/// Counts a failed sign-in; true when the account is now locked.
async fn count_failure(state: &WebState, ip: ClientIp, account: &AccountRow) -> Result<bool, WebError> {
    failed_attempt(state, ip, "portal-password").await;
    let c = &state.config;
    let count = state
        .services
        .store
        .portal_signin_failed(
            &account.id,
            Timestamp::now().as_micros(),
            micros(c.failure_window.as_secs()),
            i64::from(c.lockout_failures),
            micros(c.lockout_duration.as_secs()),
        )
        .await
        .map_err(WebError::internal)?;
    Ok(count.locked_until.is_some())
}

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
pub async fn totp_page(
    State(state): State<WebState>,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    match session::current(&state, &headers).await? {
        Some(s) if s.row.stage == session::TOTP => {
            page(StatusCode::OK, &TotpSigninPage { signed_in: false, csrf, error: None })
        }
        Some(_) => Ok(see_other("/p/inbox")),
        None => Ok(see_other("/p/signin")),
    }
}

#[derive(Deserialize)]
pub struct CodeOnlyForm {
    csrf: String,
    code: String,
}

impl CsrfField for CodeOnlyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Checks a TOTP code against a sealed secret; a code's time step is accepted once.
async fn check_totp(state: &WebState, account: &AccountRow, sealed: &[u8], code: &str) -> Result<bool, WebError> {
    let tenant = TenantId::new(&account.tenant).map_err(WebError::internal)?;
    let key = session::account_key(state, &tenant, &account.id).await?;
    let secret = key.open_field("totp", sealed).map_err(WebError::internal)?;
    let Some(step) = totp::matching_step_now(&secret, code) else { return Ok(false) };
    let step = i64::try_from(step).map_err(WebError::internal)?;
    state.services.store.use_portal_totp_step(&account.id, step).await.map_err(WebError::internal)
}

/// `POST /p/signin/totp?next=`: the second step.
pub async fn totp_signin(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
    CsrfForm(form): CsrfForm<CodeOnlyForm>,
) -> Result<Response, WebError> {
    refuse_blocked(&state, ip)?;
    let Some(s) = session::current(&state, &headers).await?.filter(|s| s.row.stage == session::TOTP) else {
        return Ok(see_other("/p/signin"));
    };
    let actor = format!("portal:{}", s.account.id);
    let target = format!("portal-account:{}", s.account.id);
    let Some(sealed) = s.account.totp.clone() else { return Ok(see_other("/p/signin")) };
    if s.account.locked_until.is_some_and(|t| t > Timestamp::now().as_micros()) {
        state.services.store.end_portal_sessions(Some(s.id_hash.clone()), None).await.map_err(WebError::internal)?;
        return page(StatusCode::FORBIDDEN, &TotpSigninPage { signed_in: false, csrf, error: Some(LOCKED.into()) });
    }
    if !check_totp(&state, &s.account, &sealed, &form.code).await? {
        let locked = count_failure(&state, ip, &s.account).await?;
        audit(&state, ip, &actor, "portal.signin.totp", &target, Outcome::Failure, &[("locked", locked.to_string())])
            .await;
        if locked {
            state
                .services
                .store
                .end_portal_sessions(Some(s.id_hash.clone()), None)
                .await
                .map_err(WebError::internal)?;
        }
        let text = if locked { LOCKED } else { "That code is not right. Enter the code your app shows now." };
        return page(StatusCode::UNAUTHORIZED, &TotpSigninPage { signed_in: false, csrf, error: Some(text.into()) });
    }
    let store = &state.services.store;
    store.portal_signin_succeeded(&s.account.id).await.map_err(WebError::internal)?;
    store
        .touch_portal_session(&s.id_hash, Timestamp::now().as_micros(), Some(session::FULL))
        .await
        .map_err(WebError::internal)?;
    audit(&state, ip, &actor, "portal.signin.totp", &target, Outcome::Success, &[]).await;
    Ok(see_other(safe_next(&q.next)))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

impl CsrfField for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /p/signout`
pub async fn signout(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    if let Some(s) = session::current(&state, &headers).await? {
        state.services.store.end_portal_sessions(Some(s.id_hash), None).await.map_err(WebError::internal)?;
        audit(
            &state,
            ip,
            &format!("portal:{}", s.account.id),
            "portal.signout",
            &format!("portal-account:{}", s.account.id),
            Outcome::Success,
            &[],
        )
        .await;
    }
    let mut response = see_other("/p/signin");
    cookies::append(response.headers_mut(), cookies::clear_cookie(session::COOKIE));
    Ok(response)
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    signed_in: bool,
    csrf: String,
    address: String,
    totp_on: bool,
    secret: Option<String>,
    uri: String,
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
    let key = session::account_key(state, &s.tenant, &s.account.id).await?;
    let address = String::from_utf8(key.open_field("address", &s.account.address).map_err(WebError::internal)?)
        .map_err(WebError::internal)?;
    let (mut secret, mut uri) = (None, String::new());
    if s.account.totp.is_none()
        && let Some(sealed) = &s.account.totp_pending
    {
        let raw = key.open_field("totp", sealed).map_err(WebError::internal)?;
        let issuer = if state.config.organization.is_empty() { "carepost" } else { state.config.organization.as_str() };
        uri = totp::uri(&raw, issuer, &address);
        secret = Some(totp::encoded(&raw));
    }
    page(
        StatusCode::OK,
        &AccountPage { signed_in: true, csrf, address, totp_on: s.account.totp.is_some(), secret, uri, message, error },
    )
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
    let mut s = session::require(&state, &headers).await?;
    if s.account.totp.is_some() {
        return account_page(&state, &s, csrf, None, None).await;
    }
    let secret = totp::new_secret().ok_or_else(|| WebError::internal("the system random number generator failed"))?;
    let key = session::account_key(&state, &s.tenant, &s.account.id).await?;
    let sealed = key.seal_field("totp", &secret).map_err(WebError::internal)?;
    let now = Timestamp::now().as_micros();
    state
        .services
        .store
        .set_portal_totp(&s.account.id, Some(sealed.clone()), false, now)
        .await
        .map_err(WebError::internal)?;
    s.account.totp_pending = Some(sealed);
    account_page(&state, &s, csrf, None, None).await
}

/// `POST /p/account/totp/confirm`: turns TOTP on once the app's code matches.
pub async fn totp_confirm(
    State(state): State<WebState>,
    ip: ClientIp,
    Csrf(csrf): Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CodeOnlyForm>,
) -> Result<Response, WebError> {
    let s = session::require(&state, &headers).await?;
    let Some(pending) = s.account.totp_pending.clone() else { return account_page(&state, &s, csrf, None, None).await };
    let actor = format!("portal:{}", s.account.id);
    let target = format!("portal-account:{}", s.account.id);
    if !check_totp(&state, &s.account, &pending, &form.code).await? {
        audit(&state, ip, &actor, "portal.totp.enable", &target, Outcome::Failure, &[]).await;
        return account_page(
            &state,
            &s,
            csrf,
            None,
            Some("That code is not right. Enter the code the app shows now.".into()),
        )
        .await;
    }
    let store = &state.services.store;
    store.set_portal_totp(&s.account.id, None, true, Timestamp::now().as_micros()).await.map_err(WebError::internal)?;
    audit(&state, ip, &actor, "portal.totp.enable", &target, Outcome::Success, &[]).await;
    let s = Session {
        account: store
            .portal_account_by_id(&s.account.id)
            .await
            .map_err(WebError::internal)?
            .ok_or(WebError::NotFound)?,
        ..s
    };
    account_page(&state, &s, csrf, Some("Two-step sign-in is on.".into()), None).await
}
