//! Portal sessions and sign-in over real HTTPS: CSRF rejection, idle timeout, absolute
//! lifetime, account lockout, sign-out, and a withdrawn message.

mod support;

use std::time::Duration;

use carepost_model::Interval;
use carepost_model::{Address, TenantId, Timestamp};
use carepost_secure::portal::{PickupRequest, Withdrawal};
use carepost_store::portal::AccountRow;
use carepost_testkit::web;
use carepost_web::WebConfig;
use support::TestWeb;

const ADDRESS: &str = "pat@patient.example";
const PASSWORD: &str = "correct horse battery";

/// An account with a password, made the way the portal makes them.
async fn account(web: &TestWeb) {
    let s = &web.state.services;
    let tenant = TenantId::default();
    let address = Address::parse(ADDRESS).unwrap();
    let id = "ACCOUNT1".to_owned();
    let object = format!("portal-account/{id}");
    let (key, wrapped) = s.ring.new_data_key(&tenant, &object).unwrap();
    let t = tenant.clone();
    s.store
        .write(move |tx| Box::pin(async move { carepost_store::keys::put_data_key(tx, &t, &object, &wrapped).await }))
        .await
        .unwrap();
    let row = AccountRow::new(
        id,
        tenant.to_string(),
        s.portal.recipient_index(&tenant, &address).unwrap(),
        key.seal_field("address", ADDRESS.as_bytes()).unwrap(),
        Timestamp::now().as_micros(),
    );
    s.store
        .set_portal_password(row, carepost_vault::hash_password(PASSWORD).unwrap(), Timestamp::now().as_micros())
        .await
        .unwrap();
}

/// The testkit's browser, answering (status, location, text).
struct Browser(web::Browser);

impl Browser {
    fn new(web: &TestWeb) -> Self {
        Browser(web.browser())
    }

    async fn get(&mut self, path: &str) -> (u16, String, String) {
        let page = self.0.get(path).await;
        (page.status, page.location, page.text)
    }

    async fn post(&mut self, path: &str, body: String) -> (u16, String, String) {
        let page = self.0.post_encoded(path, body).await;
        (page.status, page.location, page.text)
    }

    async fn csrf(&mut self) -> String {
        self.0.get("/p/signin").await.csrf()
    }

    async fn sign_in(&mut self, password: &str) -> (u16, String, String) {
        let csrf = self.csrf().await;
        self.post(
            "/p/signin",
            format!("csrf={csrf}&email=pat%40patient.example&password={}", password.replace(' ', "+")),
        )
        .await
    }
}

#[tokio::test]
async fn forms_without_a_valid_token_change_nothing() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web).await;
    let mut b = Browser::new(&web);
    let _ = b.csrf().await;
    let (status, _, _) =
        b.post("/p/signin", "csrf=forged&email=pat%40patient.example&password=correct+horse+battery".into()).await;
    assert_eq!(status, 403);
    let (status, _, _) = b.post("/p/signin", "email=pat%40patient.example&password=correct+horse+battery".into()).await;
    assert_eq!(status, 400);
    assert!(!b.0.cookies().iter().any(|(k, _)| k.contains("cp_session")));
    // A token from another browser's nonce does not work either.
    let mut other = Browser::new(&web);
    let stolen = other.csrf().await;
    let (status, _, _) =
        b.post("/p/signin", format!("csrf={stolen}&email=pat%40patient.example&password=correct+horse+battery")).await;
    assert_eq!(status, 403);
    web.stop().await;
}

#[tokio::test]
async fn idle_sessions_end_and_sign_out_ends_the_session() {
    let web = TestWeb::start(WebConfig { session_idle: Interval::secs(1), ..WebConfig::default() }).await;
    account(&web).await;
    let mut b = Browser::new(&web);
    let (status, location, _) = b.sign_in(PASSWORD).await;
    assert_eq!((status, location.as_str()), (303, "/p/inbox"));
    assert_eq!(b.get("/p/inbox").await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.get("/p/inbox").await.0, 401, "signed out after a second of inactivity");

    let (status, _, _) = b.sign_in(PASSWORD).await;
    assert_eq!(status, 303);
    let session = b.0.cookies().iter().find(|(k, _)| k.contains("cp_session")).unwrap().clone();
    let csrf = b.csrf().await;
    assert_eq!(b.post("/p/signout", format!("csrf={csrf}")).await.0, 303);
    // The old cookie is worthless once signed out, even if a browser kept it.
    b.0.set_cookie(&session.0, &session.1);
    assert_eq!(b.get("/p/inbox").await.0, 401);
    web.stop().await;
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime_however_active() {
    let web = TestWeb::start(WebConfig { session_lifetime: Interval::secs(2), ..WebConfig::default() }).await;
    account(&web).await;
    let mut b = Browser::new(&web);
    assert_eq!(b.sign_in(PASSWORD).await.0, 303);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(b.get("/p/inbox").await.0, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(b.get("/p/inbox").await.0, 401);
    web.stop().await;
}

#[tokio::test]
async fn wrong_passwords_lock_the_account() {
    let web = TestWeb::start(WebConfig { lockout_failures: 3, ..WebConfig::default() }).await;
    account(&web).await;
    let mut b = Browser::new(&web);
    for _ in 0..2 {
        let (status, _, page) = b.sign_in("wrong password here").await;
        assert_eq!(status, 401);
        assert!(page.contains("The address or password is not right."));
    }
    let (status, _, page) = b.sign_in("wrong password here").await;
    assert_eq!(status, 403);
    assert!(page.contains("locked"));
    let (status, _, page) = b.sign_in(PASSWORD).await;
    assert_eq!(status, 403, "the right password does not open a locked account");
    assert!(page.contains("locked"));
    // An unknown address reads like a wrong password.
    let csrf = b.csrf().await;
    let (status, _, page) = b.post("/p/signin", format!("csrf={csrf}&email=nobody%40patient.example&password=x")).await;
    assert_eq!(status, 401);
    assert!(page.contains("The address or password is not right."));
    web.stop().await;
}

#[tokio::test]
async fn a_withdrawn_message_shows_as_withdrawn_and_others_messages_are_not_found() {
    let web = TestWeb::start(WebConfig::default()).await;
    account(&web).await;
    let s = &web.state.services;
    let tenant = TenantId::default();
    let sender = Address::parse("dr@clinic.example").unwrap();
    let me = Address::parse(ADDRESS).unwrap();
    let body =
        b"From: dr@clinic.example\r\nTo: pat@patient.example\r\nSubject: lab results\r\n\r\nHBA1C 6.1 SECRETMARK\r\n";
    let request = PickupRequest {
        tenant: &tenant,
        source_message: "Q1",
        source_recipient: None,
        sender: Some(&sender),
        recipient: &me,
        message: body,
        reveal_subject: false,
        passphrase_hash: None,
    };
    let mine = s.portal.deliver(request).await.unwrap();
    let someone = Address::parse("other@patient.example").unwrap();
    let theirs = s.portal.deliver(PickupRequest { recipient: &someone, ..request }).await.unwrap();
    let mut b = Browser::new(&web);
    assert_eq!(b.sign_in(PASSWORD).await.0, 303);
    let (status, _, page) = b.get(&format!("/p/read/{}", mine.id)).await;
    assert_eq!(status, 200);
    assert!(page.contains("SECRETMARK") && page.contains("dr@clinic.example"));
    assert_eq!(b.get(&format!("/p/read/{}", theirs.id)).await.0, 404);
    assert!(b.get("/p/inbox").await.2.contains("lab results"));
    assert!(s.portal.withdraw(&mine.id.to_string(), Withdrawal::Retracted, "test").await.unwrap());
    let (status, _, page) = b.get(&format!("/p/read/{}", mine.id)).await;
    assert_eq!(status, 410);
    assert!(page.contains("withdrawn") && !page.contains("SECRETMARK"));
    let (_, _, inbox) = b.get("/p/inbox").await;
    assert!(inbox.contains("Withdrawn message") && !inbox.contains("lab results"));
    web.stop().await;
}
