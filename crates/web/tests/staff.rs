//! Staff sign-in over real HTTPS: the password policy, TOTP enrollment and sign-in with codes
//! this test computes itself (RFC 6238), WebAuthn registration and sign-in with a software
//! authenticator verified by webauthn-rs, require-MFA forcing enrollment, roles enforced on
//! the server, automatic log-off, lockout, the new-address notice, and the audit trail.

mod support;

use std::time::Duration;

use carepost_model::Interval;
use carepost_model::{Address, TenantId};
use carepost_store::accounts::{NewAccount, Role};
use carepost_testkit::totp;
use carepost_testkit::web::{Browser, Page};
use carepost_web::{StaffConfig, WebConfig};
use serde_json::Value;
use support::TestWeb;
use support::softkey::SoftKey;

const PASSWORD: &str = "violet tram ledger 93";

/// A staff account made the way `carepost user add` makes it.
async fn account(web: &TestWeb, login: &str, role: Role) -> String {
    account_in(web, TenantId::default(), login, role).await
}

async fn account_in(web: &TestWeb, tenant: TenantId, login: &str, role: Role) -> String {
    let s = &web.state.services;
    s.store.load_tenant_keys(&s.ring, &tenant).await.unwrap();
    let address = Address::parse(login).unwrap();
    let new = NewAccount {
        tenant,
        login,
        role,
        addresses: std::slice::from_ref(&address),
        password_hash: Some(carepost_vault::hash_password(PASSWORD).unwrap()),
    };
    s.store.create_account(&s.ring, new).await.unwrap().id
}

/// The audit records of `action`, as (outcome, details).
async fn audited(web: &TestWeb, action: &str) -> Vec<(String, String)> {
    let rows = web.state.services.store.audit_records_after(0, 100_000).await.unwrap();
    rows.into_iter()
        .filter(|r| r.action == action)
        .map(|r| (r.outcome, format!("{} ip={:?}", r.details, r.source_ip)))
        .collect()
}

/// A browser on the staff pages, as Firefox on Linux.
fn browser(web: &TestWeb) -> Browser {
    web.browser().with_user_agent(FIREFOX)
}

/// [`browser`], connecting from `local`.
fn browser_from(web: &TestWeb, local: &str) -> Browser {
    Browser::new(web.client_from(local.parse().unwrap()), web.url.clone()).with_user_agent(FIREFOX)
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";

fn json(page: &Page) -> Value {
    serde_json::from_str(&page.text).unwrap_or_else(|_| panic!("not JSON: {}", page.text))
}

/// The staff pages' forms.
trait StaffPages {
    async fn csrf(&mut self) -> String;
    async fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Page;
    async fn sign_in(&mut self, login: &str, password: &str) -> Page;
    async fn sign_out(&mut self);
}

impl StaffPages for Browser {
    async fn csrf(&mut self) -> String {
        self.get("/staff/signin").await.csrf()
    }

    /// Posts a form with this browser's CSRF token.
    async fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    async fn sign_in(&mut self, login: &str, password: &str) -> Page {
        self.submit("/staff/signin", &[("login", login), ("password", password)]).await
    }

    async fn sign_out(&mut self) {
        assert_eq!(self.submit("/staff/signout", &[]).await.status, 303);
    }
}

/// Starts TOTP enrollment and returns the secret the page shows.
async fn start_totp(b: &mut Browser) -> Vec<u8> {
    let page = b.submit("/staff/mfa/totp", &[]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let secret = totp::secret_on_page(&page.text);
    assert!(page.text.contains("otpauth://totp/"), "the otpauth URI is offered");
    secret
}

#[tokio::test]
async fn weak_passwords_are_refused_and_change_nothing() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web, "jane.roe@clinic.example", Role::Sender).await;
    let mut b = browser(&web);
    assert_eq!(b.sign_in("jane.roe@clinic.example", PASSWORD).await.location, "/staff/");
    for (new, why) in [
        ("short", "shorter than 12"),
        ("Password123456!", "most commonly used"),
        ("leavemealone", "most commonly used"),
        ("jane.roe-garden-path", "contains the user name"),
    ] {
        let page = b.submit("/staff/password", &[("current", PASSWORD), ("new", new), ("again", new)]).await;
        assert_eq!(page.status, 400, "{new}");
        assert!(page.text.contains(why), "{new}: {}", page.text);
    }
    b.sign_out().await;
    assert_eq!(
        b.sign_in("jane.roe@clinic.example", PASSWORD).await.location,
        "/staff/",
        "the old password still works"
    );
    let mut elsewhere = browser(&web);
    assert_eq!(elsewhere.sign_in("jane.roe@clinic.example", PASSWORD).await.location, "/staff/");
    let page = b
        .submit(
            "/staff/password",
            &[("current", PASSWORD), ("new", "copper kettle orbit"), ("again", "copper kettle orbit")],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Your password is changed."));
    assert_eq!(b.get("/staff/").await.status, 200, "this browser goes on");
    assert_ne!(elsewhere.get("/staff/").await.status, 200, "the other session is signed out");
    b.sign_out().await;
    assert_eq!(b.sign_in("jane.roe@clinic.example", PASSWORD).await.status, 401);
    assert_eq!(b.sign_in("jane.roe@clinic.example", "copper kettle orbit").await.location, "/staff/");
    let changes = audited(&web, "staff.password.change").await;
    assert_eq!(changes.iter().filter(|(o, _)| o == "denied").count(), 4, "{changes:?}");
    assert_eq!(changes.iter().filter(|(o, _)| o == "success").count(), 1);
    web.stop().await;
}

#[tokio::test]
async fn totp_enrollment_and_sign_in_with_a_code_the_test_computes() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web, "dr.smith@clinic.example", Role::Sender).await;
    let mut b = browser(&web);
    assert_eq!(b.sign_in("dr.smith@clinic.example", PASSWORD).await.location, "/staff/");
    let secret = start_totp(&mut b).await;
    let wrong = format!("{:06}", (totp::code_now(&secret).parse::<u32>().unwrap() + 1) % 1_000_000);
    let page = b.submit("/staff/mfa/totp/confirm", &[("code", &wrong)]).await;
    assert_eq!(page.status, 400);
    assert!(page.text.contains("not right"));
    let page = b.submit("/staff/mfa/totp/confirm", &[("code", &totp::code_now(&secret))]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Your authenticator app is set up."));
    b.sign_out().await;

    // The password alone now reaches only the second step.
    let page = b.sign_in("dr.smith@clinic.example", PASSWORD).await;
    assert_eq!((page.status, page.location.as_str()), (303, "/staff/signin/mfa"));
    assert_eq!(b.get("/staff/").await.location, "/staff/signin/mfa");
    assert_eq!(b.get("/staff/audit").await.status, 401);
    assert!(b.get("/staff/signin/mfa").await.text.contains("authenticator app"));
    let page = b.submit("/staff/signin/totp", &[("code", &wrong)]).await;
    assert_eq!(page.status, 401);
    let password_only = b.clone();
    // The step used to confirm cannot be replayed; the next step's code (one step of skew) works.
    let page = b.submit("/staff/signin/totp", &[("code", &totp::code_at(&secret, totp::unix_now() + 30))]).await;
    assert_eq!((page.status, page.location.as_str()), (303, "/staff/"), "{}", page.text);
    // The second factor starts a new session id; the one the password earned is void.
    let session = |cookies: &[(String, String)]| {
        cookies.iter().find(|(k, _)| k.contains("cp_staff")).map(|(_, v)| v.clone()).unwrap()
    };
    assert_ne!(session(b.cookies()), session(password_only.cookies()), "the session id is renewed");
    let mut stale = password_only;
    assert_eq!(stale.get("/staff/").await.location, "/staff/signin", "the old id signs nobody in");
    let home = b.get("/staff/").await;
    assert_eq!(home.status, 200);
    assert!(home.text.contains("sender") && home.text.contains("dr.smith@clinic.example"));

    assert!(audited(&web, "staff.mfa.enroll").await.iter().any(|(o, d)| o == "success" && d.contains("totp")));
    let second = audited(&web, "staff.signin.mfa").await;
    assert!(second.iter().any(|(o, d)| o == "failure" && d.contains("127.0.0.1")), "{second:?}");
    assert!(second.iter().any(|(o, d)| o == "success" && d.contains("totp") && d.contains("127.0.0.1")), "{second:?}");
    web.stop().await;
}

#[tokio::test]
async fn security_key_registration_and_sign_in_with_a_software_authenticator() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web, "admin@clinic.example", Role::Admin).await;
    let mut key = SoftKey::new(&web.url);
    let mut b = browser(&web);
    assert_eq!(b.sign_in("admin@clinic.example", PASSWORD).await.location, "/staff/");
    let page = b.get("/staff/mfa").await;
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(page.text.contains("/static/webauthn.js"));
    assert!(
        !b.get("/staff/").await.header("content-security-policy").contains("script-src"),
        "pages without security keys allow no script"
    );
    assert_eq!(web.client.get(web.url("/static/webauthn.js")).send().await.unwrap().status(), 200);

    let options = b.submit("/staff/mfa/key/start", &[("name", "blue key")]).await;
    assert_eq!(options.status, 200, "{}", options.text);
    let credential = key.register(&json(&options)).to_string();
    let done = b.submit("/staff/mfa/key/finish", &[("credential", &credential)]).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(json(&done)["next"], "/staff/mfa");
    assert!(b.get("/staff/mfa").await.text.contains("blue key"));
    // The same finish again: the ceremony was used up.
    assert_eq!(b.submit("/staff/mfa/key/finish", &[("credential", &credential)]).await.status, 400);
    b.sign_out().await;

    assert_eq!(b.sign_in("admin@clinic.example", PASSWORD).await.location, "/staff/signin/mfa");
    // A signature by another key is refused by webauthn-rs.
    let options = b.submit("/staff/signin/key/start", &[]).await;
    assert_eq!(options.status, 200, "{}", options.text);
    let options = json(&options);
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    let mut impostor = SoftKey::new(&web.url);
    impostor.credential_id = key.credential_id.clone();
    let refused = b.submit("/staff/signin/key/finish", &[("credential", &impostor.sign(&options).to_string())]).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(b.get("/staff/").await.location, "/staff/signin/mfa");

    let options = json(&b.submit("/staff/signin/key/start", &[]).await);
    let done = b.submit("/staff/signin/key/finish", &[("credential", &key.sign(&options).to_string())]).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(json(&done)["next"], "/staff/");
    assert_eq!(b.get("/staff/").await.status, 200);

    assert!(audited(&web, "staff.mfa.enroll").await.iter().any(|(o, d)| o == "success" && d.contains("security-key")));
    let second = audited(&web, "staff.signin.mfa").await;
    assert!(second.iter().any(|(o, d)| o == "failure" && d.contains("security-key")), "{second:?}");
    assert!(second.iter().any(|(o, d)| o == "success" && d.contains("blue key")), "{second:?}");
    web.stop().await;
}

#[tokio::test]
async fn require_mfa_makes_accounts_enroll_at_their_next_sign_in() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web, "admin@clinic.example", Role::Admin).await;
    account(&web, "nurse@clinic.example", Role::Sender).await;
    let mut admin = browser(&web);
    assert_eq!(admin.sign_in("admin@clinic.example", PASSWORD).await.location, "/staff/");
    assert!(admin.get("/staff/").await.text.contains("not required"));
    let page = admin.submit("/staff/settings/require-mfa", &[("value", "on")]).await;
    assert_eq!((page.status, page.location.as_str()), (303, "/staff/"));
    assert!(web.state.services.store.mfa_required("default").await.unwrap());
    assert!(audited(&web, "staff.require_mfa").await.iter().any(|(o, d)| o == "success" && d.contains("on")));

    let mut nurse = browser(&web);
    let page = nurse.sign_in("nurse@clinic.example", PASSWORD).await;
    assert_eq!((page.status, page.location.as_str()), (303, "/staff/mfa"));
    // Nothing but enrollment until a second factor is set up.
    assert_eq!(nurse.get("/staff/").await.location, "/staff/mfa");
    assert_eq!(nurse.get("/staff/audit").await.status, 401);
    assert_eq!(
        nurse
            .submit(
                "/staff/password",
                &[("current", PASSWORD), ("new", "copper kettle orbit"), ("again", "copper kettle orbit")]
            )
            .await
            .status,
        401
    );
    assert!(nurse.get("/staff/mfa").await.text.contains("Your organization requires two-step sign-in"));
    let secret = start_totp(&mut nurse).await;
    let page = nurse.submit("/staff/mfa/totp/confirm", &[("code", &totp::code_now(&secret))]).await;
    assert_eq!((page.status, page.location.as_str()), (303, "/staff/"), "{}", page.text);
    assert_eq!(nurse.get("/staff/").await.status, 200);
    web.stop().await;
}

#[tokio::test]
async fn roles_are_enforced_on_the_server() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web, "officer@clinic.example", Role::Compliance).await;
    account(&web, "sender@clinic.example", Role::Sender).await;
    account(&web, "lab-app@clinic.example", Role::ApiOnly).await;

    let mut officer = browser(&web);
    assert_eq!(officer.sign_in("officer@clinic.example", PASSWORD).await.location, "/staff/");
    let home = officer.get("/staff/").await;
    assert!(
        home.text.contains("compliance")
            && home.text.contains("Change no settings.")
            && !home.text.contains("require-mfa")
    );
    let log = officer.get("/staff/audit").await;
    assert_eq!(log.status, 200);
    assert!(log.text.contains("staff.signin"), "the audit view shows sign-ins");
    // A compliance officer reads but changes no settings, whatever the form says.
    let page = officer.submit("/staff/settings/require-mfa", &[("value", "on")]).await;
    assert_eq!(page.status, 403);
    assert!(!web.state.services.store.mfa_required("default").await.unwrap(), "nothing changed");
    assert!(audited(&web, "staff.access").await.iter().any(|(o, d)| o == "denied" && d.contains("compliance")));

    // The audit log is the whole installation's: another tenant's officer may not read it.
    account_in(&web, TenantId::new("partner").unwrap(), "officer@partner.example", Role::Compliance).await;
    let mut partner = browser(&web);
    assert_eq!(partner.sign_in("officer@partner.example", PASSWORD).await.location, "/staff/");
    assert_eq!(partner.get("/staff/audit").await.status, 403);

    let mut sender = browser(&web);
    assert_eq!(sender.sign_in("sender@clinic.example", PASSWORD).await.location, "/staff/");
    assert_eq!(sender.get("/staff/audit").await.status, 403);
    assert_eq!(sender.submit("/staff/settings/require-mfa", &[("value", "on")]).await.status, 403);

    // An API-only account has no web sign-in: its right password reads like a wrong one.
    let mut app = browser(&web);
    let page = app.sign_in("lab-app@clinic.example", PASSWORD).await;
    assert_eq!(page.status, 401);
    assert!(page.text.contains("The user name or password is not right,"));
    assert!(!app.cookies().iter().any(|(k, _)| k.contains("cp_staff")));
    web.stop().await;
}

#[tokio::test]
async fn idle_sessions_are_signed_out_and_audited() {
    let staff = StaffConfig { session_idle: Interval::secs(1), ..StaffConfig::default() };
    let web = TestWeb::start_with(WebConfig::default(), staff).await;
    account(&web, "jane@clinic.example", Role::Sender).await;
    let mut b = browser(&web);
    assert_eq!(b.sign_in("jane@clinic.example", PASSWORD).await.location, "/staff/");
    assert_eq!(b.get("/staff/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.get("/staff/").await.location, "/staff/signin", "signed out after a second of inactivity");
    assert!(
        audited(&web, "staff.signout")
            .await
            .iter()
            .any(|(o, d)| o == "success" && d.contains("idle") && d.contains("127.0.0.1"))
    );
    // A portal session cookie is no staff session, and the other way round.
    assert_eq!(b.get("/p/inbox").await.status, 401);
    web.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let staff = StaffConfig { lockout_failures: 3, ..StaffConfig::default() };
    let web = TestWeb::start_with(WebConfig::default(), staff).await;
    account(&web, "jane@clinic.example", Role::Sender).await;
    account(&web, "sam@clinic.example", Role::Sender).await;
    let mut b = browser(&web);
    let unknown = b.sign_in("nobody@clinic.example", PASSWORD).await;
    assert_eq!(unknown.status, 401);
    let answer = |p: &Page| {
        p.text.replace(&p.csrf(), "").replace("nobody@clinic.example", "").replace("jane@clinic.example", "")
    };
    for _ in 0..3 {
        let page = b.sign_in("jane@clinic.example", "not the password at all").await;
        assert_eq!(page.status, 401);
        assert_eq!(answer(&page), answer(&unknown), "a wrong password reads as an unknown account");
    }
    // Locked now: the right password reads exactly like a wrong one and an unknown account.
    let right = b.sign_in("jane@clinic.example", PASSWORD).await;
    assert_eq!(right.status, 401, "the right password does not open a locked account");
    assert_eq!(answer(&right), answer(&unknown), "no 'locked' before the password is checked");
    // The same address still serves another account.
    assert_eq!(b.sign_in("sam@clinic.example", PASSWORD).await.location, "/staff/");
    let locks = audited(&web, "staff.lockout").await;
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(locks[0].1.contains("127.0.0.1"));
    let signins = audited(&web, "staff.signin").await;
    assert_eq!(signins.iter().filter(|(o, _)| o == "failure").count(), 4, "{signins:?}");
    assert!(
        signins.iter().any(|(o, d)| o == "denied" && d.contains("locked") && d.contains("password_right")),
        "{signins:?}"
    );
    web.stop().await;
}

#[tokio::test]
async fn a_sign_in_from_a_new_address_sends_a_notice() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web, "jane@clinic.example", Role::Sender).await;
    let mut here = browser(&web);
    assert_eq!(here.sign_in("jane@clinic.example", PASSWORD).await.location, "/staff/");
    assert!(audited(&web, "staff.notice.new_ip").await.is_empty(), "an account's first sign-in is not news");
    here.sign_out().await;
    assert_eq!(here.sign_in("jane@clinic.example", PASSWORD).await.location, "/staff/");
    assert!(audited(&web, "staff.notice.new_ip").await.is_empty(), "a known address sends nothing");

    let mut elsewhere = browser_from(&web, "127.0.0.2");
    assert_eq!(elsewhere.sign_in("jane@clinic.example", PASSWORD).await.location, "/staff/");
    let notices = audited(&web, "staff.notice.new_ip").await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "success");
    assert!(notices[0].1.contains("127.0.0.2"));
    web.stop().await;
}
