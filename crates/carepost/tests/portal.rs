//! The secure portal end to end with the real binary over HTTPS: a protected message for a
//! recipient policy sends to the portal is kept sealed, the notice at the sink carries no PHI,
//! the recipient proves the address with a code from the sink, chooses a password, reads,
//! downloads an attachment, turns on TOTP (with a code this test computes), is locked out
//! after wrong passwords, unlocks with a reset code, replies (the reply reaches the sink as a
//! new message), and the sender withdraws the message through the receipt's link.
//!
//! The same path once more in headless Chromium at a phone's size, driven through ChromeDriver,
//! with a screenshot of every page kept under the target directory (`portal-browser/`).

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use carepost_model::{Address, Envelope, TenantId};
use carepost_testkit::cli::carepost;
use carepost_testkit::web::{self, Browser, Page};
use carepost_testkit::{Server, Sink, totp};

mod support;
mod webdriver;
use support::code_from;
use webdriver::Chrome;

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

fn config(sink: SocketAddr) -> String {
    format!(
        "[smtp]\nmx_listen = \"127.0.0.1:0\"\nsubmission_listen = \"\"\nsubmissions_listen = \"\"\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\norganization = \"Example Clinic\"\nlockout_failures = 3\n\n\
         [delivery]\nsmart_host = \"{sink}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\nconnection_idle = \"1s\"\n\n\
         [[policy.rules]]\nname = \"patients read in the portal\"\nwhen = {{ recipient = [\"@patient.example\"] }}\nthen = {{ method = \"portal\", notice_subject = \"original\" }}\n"
    )
}

const SECRET_SUBJECT: &str = "Biopsy result for Jane Roe";
const SECRET_BODY: &str = "PORTALBODYMARKER the biopsy shows";

/// Submits a message through intake (inspection and policy), as SMTP would.
async fn submit(dir: &Path, subject: &str) {
    submit_with_headers(dir, subject, "").await
}

/// [`submit`], with `headers` (whole lines, each ending in CRLF) added to the header block.
async fn submit_with_headers(dir: &Path, subject: &str, headers: &str) {
    let (install, spool) = support::open(dir).await;
    let intake = carepost::intake::intake(&install, &spool).unwrap();
    let envelope = Envelope::to_one(
        Some(Address::parse("dr.smith@clinic.example").unwrap()),
        Address::parse("jane@patient.example").unwrap(),
    );
    let body = format!(
        "From: Dr Smith <dr.smith@clinic.example>\r\nTo: <jane@patient.example>\r\nCc: <nurse@clinic.example>\r\n\
         Subject: {subject}\r\n{headers}Message-ID: <orig-1@clinic.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>{SECRET_BODY}</p><img src=\"https://tracker.example/pixel.gif\"><a href=\"https://evil.example/x\">https://clinic.example</a><script>alert(1)</script>\r\n\
         --b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"result.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         JVBERi0xLjQKJUFUVEFDSE1FTlQK\r\n--b1--\r\n"
    );
    intake.submit(TenantId::default(), envelope, support::relay_arrival(), Bytes::from(body)).await.unwrap();
    install.store.close().await;
}

/// The newest portal copy kept for `address`, opened (from another process on the data directory).
async fn kept_for(dir: &Path, address: &str) -> String {
    let (install, _) = support::open(dir).await;
    let portal = carepost::portal::portal(&install, "https://localhost".into());
    let messages = portal.messages_for(&TenantId::default(), &Address::parse(address).unwrap()).await.unwrap();
    let body = portal.body(messages.first().expect("a portal copy")).await.unwrap();
    install.store.close().await;
    String::from_utf8_lossy(&body).into_owned()
}

/// A browser on the portal: cookies by name, no redirects followed.
fn browser(base: String) -> Browser {
    Browser::new(web::unchecked().user_agent("portal-test/1.0").build().unwrap(), base)
}

fn link_in(mail: &str, prefix: &str) -> String {
    let at = mail.find(prefix).unwrap_or_else(|| panic!("no {prefix} in {mail}"));
    let start = mail[..at].rfind("https://").unwrap();
    mail[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_up_sign_in_read_reply_and_retract() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &config(sink.addr));
    let https = server.addr("https");
    submit(dir, SECRET_SUBJECT).await;

    // The notice: the organization and a link, nothing of the message. Policy lets notices
    // show the real subject, but this one names a person and a test: it stays neutral.
    let notice = sink.wait_for(&["jane@patient.example", "/p/m/"], &[]);
    assert!(notice.contains("Secure message from Example Clinic"), "{notice}");
    for secret in [SECRET_SUBJECT, "PORTALBODYMARKER", "Biopsy", "result.pdf"] {
        assert!(!notice.contains(secret), "the notice leaks {secret:?}: {notice}");
    }
    let receipt = sink.wait_for(&["/p/s/"], &[]);
    assert!(receipt.contains("dr.smith@clinic.example") && !receipt.contains("PORTALBODYMARKER"));
    let link = link_in(&notice, "/p/m/");
    let status_link = link_in(&receipt, "/p/s/");
    assert!(link.starts_with(&format!("https://{https}/p/m/")), "{link}");

    let mut b = browser(format!("https://{https}"));
    let landing = b.get(&link).await;
    assert_eq!(landing.status, 200, "{}", landing.text);
    assert!(landing.text.contains("Send me a code") && landing.text.contains("j•••@patient.example"));
    assert!(landing.text.contains("name=\"viewport\""));
    let token = link.rsplit('/').next().unwrap().to_owned();

    // CSRF: a form without its token changes nothing.
    assert_eq!(b.post("/p/code", &[("token", &token)]).await.status, 400);
    assert_eq!(b.post("/p/code", &[("csrf", "forged"), ("token", &token)]).await.status, 403);

    let csrf = landing.csrf();
    let sent = b.post("/p/code", &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let code_mail = sink.wait_for(&["Your code: "], &[]);
    let code = code_from(&code_mail);

    // A wrong code, and a too-short password, change nothing.
    let weak = support::verify(&mut b, &csrf, &token, &code, "short").await;
    assert_eq!(weak.status, 400);
    let wrong_code = if code == "00000000" { "11111111" } else { "00000000" };
    let wrong = support::verify(&mut b, &csrf, &token, wrong_code, "a long passphrase").await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.text.contains("not right"));
    let ok = support::verify(&mut b, &csrf, &token, &code, "a long passphrase").await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    let read_path = ok.location;
    assert!(read_path.starts_with("/p/read/"), "{read_path}");
    assert!(b.cookies().iter().any(|(name, _)| name == "__Host-cp_session"));
    let cookie_line = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("cp_session"))
        .unwrap();
    assert!(
        cookie_line.contains("Secure") && cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict")
    );
    // The code is used up.
    let again = b
        .post(
            "/p/verify",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("code", &code),
                ("password", "another passphrase"),
                ("password2", "another passphrase"),
            ],
        )
        .await;
    assert_eq!(again.status, 400);

    // Reading: sanitized HTML, the real link target, no remote image, the sender clearly.
    let page = b.get(&read_path).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("PORTALBODYMARKER") && page.text.contains(SECRET_SUBJECT));
    assert!(page.text.contains("dr.smith@clinic.example"));
    assert!(page.text.contains("[https://evil.example/x]"), "links show their target");
    assert!(!page.text.contains("tracker.example") && !page.text.contains("<script"), "{}", page.text);
    assert!(page.text.contains("Load remote content"));
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("img-src 'self' data:;"));
    let remote = b.get(&format!("{read_path}?remote=1")).await;
    assert!(remote.text.contains("https://tracker.example/pixel.gif"));
    assert!(remote.headers["content-security-policy"].to_str().unwrap().contains("https:"));
    let text = b.get(&format!("{read_path}?view=text")).await;
    assert!(text.text.contains("message-text"));
    let file = b.get(&format!("{read_path}/part/0")).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.headers["content-type"], "application/pdf");
    assert!(file.headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"result.pdf\""));
    assert!(file.text.starts_with("%PDF-1.4"));
    let inbox = b.get("/p/inbox").await;
    assert!(inbox.text.contains(SECRET_SUBJECT));

    // TOTP: set up with a code computed here.
    let account = b.get("/p/account").await;
    let setup = b.post("/p/account/totp", &[("csrf", &account.csrf())]).await;
    let secret = totp::secret_on_page(&setup.text);
    let bad = b.post("/p/account/totp/confirm", &[("csrf", &csrf), ("code", "000000")]).await;
    assert!(bad.text.contains("not right") || totp::code_now(&secret) == "000000");
    let now_code = totp::code_now(&secret);
    let on = b.post("/p/account/totp/confirm", &[("csrf", &csrf), ("code", &now_code)]).await;
    assert!(on.text.contains("Two-step sign-in is on."), "{}", on.text);

    // Reply (and reply-all to the original participants only), with an attachment.
    let form = b.get(&format!("{read_path}/reply?all=1")).await;
    assert!(form.text.contains("dr.smith@clinic.example") && form.text.contains("nurse@clinic.example"));
    let boundary = "XyZportalBoundary";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"all\"\r\n\r\n1\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nREPLYMARKER thank you\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"note.txt\"\r\nContent-Type: text/plain\r\n\r\nATTACHEDREPLYFILE\r\n\
         --{boundary}--\r\n"
    );
    let request = b
        .client()
        .post(b.url(&format!("{read_path}/reply")))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(multipart);
    let sent = b.send(request).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert!(sent.text.contains("Reply sent"));
    // The reply went through intake and policy: this installation's default keeps protected
    // mail for recipients without verified TLS or keys in the portal, so the clinic's staff
    // get notices, and the copy kept for them is the reply.
    sink.wait_for(&["X-Rcpt-Args: <dr.smith@clinic.example>", "Secure message from"], &[]);
    sink.wait_for(&["X-Rcpt-Args: <nurse@clinic.example>", "Secure message from"], &[]);
    let reply = kept_for(dir, "dr.smith@clinic.example").await;
    assert!(reply.contains("REPLYMARKER") && reply.contains("In-Reply-To: <orig-1@clinic.example>"), "{reply}");
    assert!(
        reply.contains("From: <jane@patient.example>")
            && reply.contains("nurse@clinic.example")
            && reply.contains("note.txt"),
        "{reply}"
    );
    // A reply whose text holds a bare CR (only a crafted request sends one: a way to end the
    // message early at the next mail server) gets a form error, and nothing is sent.
    let crafted = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nCRAFTEDREPLY\r.\r\nMAIL FROM:<evil@example.net>\r\n\
         --{boundary}--\r\n"
    );
    let request = b
        .client()
        .post(b.url(&format!("{read_path}/reply")))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(crafted);
    let refused = b.send(request).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.text.contains("carriage return"), "{}", refused.text);
    assert!(!kept_for(dir, "dr.smith@clinic.example").await.contains("CRAFTEDREPLY"));

    // Sign out; wrong passwords lock the account; a reset code unlocks it.
    let out = b.post("/p/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(b.get("/p/inbox").await.status, 401);
    for _ in 0..3 {
        let r = b
            .post("/p/signin", &[("csrf", &csrf), ("email", "jane@patient.example"), ("password", "not the password")])
            .await;
        assert!(r.status == 401 || r.status == 403, "{}", r.status);
    }
    let locked = b
        .post("/p/signin", &[("csrf", &csrf), ("email", "jane@patient.example"), ("password", "a long passphrase")])
        .await;
    assert_eq!(locked.status, 403);
    assert!(locked.text.contains("locked"));
    let unknown = b
        .post("/p/signin", &[("csrf", &csrf), ("email", "nobody@patient.example"), ("password", "whatever it is")])
        .await;
    assert_eq!(unknown.status, 401);
    let first_code_mail = code_mail.clone();
    let sent = b.post("/p/code", &[("csrf", &csrf), ("email", "jane@patient.example")]).await;
    assert_eq!(sent.status, 200);
    let reset_mail = sink.wait_for(&["Your code: "], &[first_code_mail]);
    let reset = b
        .post(
            "/p/verify",
            &[
                ("csrf", &csrf),
                ("email", "jane@patient.example"),
                ("code", &code_from(&reset_mail)),
                ("password", "a new long passphrase"),
                ("password2", "a new long passphrase"),
            ],
        )
        .await;
    assert_eq!(reset.status, 303);
    assert!(reset.location.starts_with("/p/signin/totp"), "TOTP is still due: {}", reset.location);
    assert_eq!(b.get("/p/inbox").await.status, 401, "not signed in before the second factor");
    let wrong_totp = b.post(&reset.location, &[("csrf", &csrf), ("code", "12345")]).await;
    assert_eq!(wrong_totp.status, 401);
    // The next step's code (one step of skew is allowed; the current one was used already).
    let next_code = totp::code_at(&secret, totp::unix_now() + 30);
    let second = b.post(&reset.location, &[("csrf", &csrf), ("code", &next_code)]).await;
    assert_eq!(second.status, 303, "{}", second.text);
    assert_eq!(b.get(&read_path).await.status, 200);

    // The sender sees the opens and withdraws the message.
    let mut sender = browser(format!("https://{https}"));
    let status = sender.get(&status_link).await;
    assert_eq!(status.status, 200);
    assert!(status.text.contains("127.0.0.1") && status.text.contains("portal-test/1.0"), "{}", status.text);
    let status_path = status_link.trim_start_matches(&format!("https://{https}")).to_owned();
    assert_eq!(sender.post(&format!("{status_path}/retract"), &[("csrf", "forged")]).await.status, 403);
    let done = sender.post(&format!("{status_path}/retract"), &[("csrf", &status.csrf())]).await;
    assert_eq!(done.status, 303);
    assert!(sender.get(&status_link).await.text.contains("withdrawn"));
    assert!(b.get(&link).await.text.contains("This message was withdrawn"));
    let gone = b.get(&read_path).await;
    assert_eq!(gone.status, 410);
    assert!(gone.text.contains("withdrawn") && !gone.text.contains("PORTALBODYMARKER"));
    assert_eq!(b.get(&link).await.status, 410);
    assert_eq!(b.get(&format!("{read_path}/part/0")).await.status, 410);

    // The CLI agrees, and the content key is gone.
    let id = read_path.trim_start_matches("/p/read/");
    let (code, out, err) = carepost(BIN, dir, &["portal", "status", id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retracted") && out.contains("opened"), "{out}");
    let (code, out, _) = carepost(BIN, dir, &["portal", "retract", id, "--reason", "test"]);
    assert_eq!(code, 0);
    assert!(out.contains("already withdrawn"), "{out}");
    let (code, _, _) = carepost(BIN, dir, &["portal", "retract", "nonexistent"]);
    assert_eq!(code, 2);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_picks_up_reads_and_replies_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &config(sink.addr));
    // Nothing sensitive in this subject: policy lets the notice show it.
    let subject = "Documents from your clinic";
    submit(dir, subject).await;
    let notice = sink.wait_for(&["jane@patient.example", "/p/m/"], &[]);
    assert!(notice.contains(&format!("Subject: {subject}")), "{notice}");
    assert!(!notice.contains("PORTALBODYMARKER"));
    let receipt = sink.wait_for(&["/p/s/"], &[]);
    let link = link_in(&notice, "/p/m/");
    let status_link = link_in(&receipt, "/p/s/");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal-browser");
    let _ = std::fs::remove_dir_all(&shots);
    let mut chrome = Chrome::start(&dir.join("downloads"), &shots).await;
    chrome.goto(&link).await;
    assert!(chrome.text().await.contains("You have a secure message"));
    chrome.screenshot("pickup").await;

    // Prove the address with the code the sink received, and choose a password.
    chrome.follow("form[action='/p/code'] button").await;
    assert!(chrome.text().await.contains("Enter your code"), "{}", chrome.source().await);
    chrome.screenshot("enter-code").await;
    let code = code_from(&sink.wait_for(&["Your code: "], &[]));
    chrome.fill("#code", &code).await;
    chrome.fill("#password", "a long browser passphrase").await;
    chrome.fill("#password2", "a long browser passphrase").await;
    chrome.follow("form[action='/p/verify'] button").await;

    // Read: the message, its sender, and no remote image loaded.
    assert!(chrome.url().await.contains("/p/read/"), "{}", chrome.source().await);
    let page = chrome.text().await;
    assert!(
        page.contains("PORTALBODYMARKER") && page.contains(subject) && page.contains("dr.smith@clinic.example"),
        "{page}"
    );
    assert!(page.contains("remote image(s) were not loaded"), "{page}");
    chrome.screenshot("read").await;
    chrome.click("a[href$='/part/0']").await;
    assert!(chrome.downloaded("result.pdf").starts_with(b"%PDF-1.4"));

    // Reply to everyone, with a file chosen in the form.
    chrome.follow("a[href$='/reply?all=1']").await;
    assert!(chrome.text().await.contains("nurse@clinic.example"));
    chrome.screenshot("reply").await;
    let card = dir.join("insurance-card.txt");
    std::fs::write(&card, "BROWSERATTACHMENT member 12345").unwrap();
    chrome.fill("#body", "BROWSERREPLY thank you, doctor").await;
    chrome.fill("#files", &card.display().to_string()).await;
    chrome.follow("form[action$='/reply'] button[type=submit]").await;
    assert!(chrome.text().await.contains("Reply sent"), "{}", chrome.source().await);
    chrome.screenshot("reply-sent").await;
    // The reply is queued for the original sender, and reaches them by policy (here: the portal).
    sink.wait_for(&["X-Rcpt-Args: <dr.smith@clinic.example>", "Secure message from"], &[]);
    let reply = kept_for(dir, "dr.smith@clinic.example").await;
    assert!(reply.contains("BROWSERREPLY") && reply.contains("insurance-card.txt"), "{reply}");

    // The sender sees the open and withdraws the message; the pick-up link says so.
    chrome.goto(&status_link).await;
    assert!(chrome.text().await.contains("127.0.0.1"), "the open is shown: {}", chrome.source().await);
    chrome.screenshot("sender-status").await;
    chrome.follow("form[action$='/retract'] button").await;
    assert!(chrome.text().await.contains("withdrawn"));
    chrome.screenshot("sender-status-withdrawn").await;
    chrome.goto(&link).await;
    assert!(chrome.text().await.contains("This message was withdrawn"));
    chrome.screenshot("pickup-withdrawn").await;
    assert_eq!(std::fs::read_dir(&shots).unwrap().count(), 8, "a screenshot of every page");
    drop(chrome);
    drop(server);
}

async fn post_passphrase(b: &mut Browser, csrf: &str, token: &str, passphrase: &str) -> Page {
    b.post("/p/passphrase", &[("csrf", csrf), ("token", token), ("passphrase", passphrase)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_the_sender_set_stands_in_for_the_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    // Many guesses from one address in this test: the per-address block is not what it checks.
    let server = Server::start(
        Path::new(BIN),
        dir,
        &config(sink.addr).replace("lockout_failures = 3\n", "lockout_failures = 3\nip_failures = 1000\n"),
    );
    let https = server.addr("https");
    submit_with_headers(dir, SECRET_SUBJECT, "X-Carepost-Passphrase: river stone 7731\r\n").await;
    let notice = sink.wait_for(&["jane@patient.example", "/p/m/"], &[]);
    assert!(notice.contains("passphrase the sender gave you") && !notice.contains("river stone"), "{notice}");
    let kept = kept_for(dir, "jane@patient.example").await;
    assert!(
        kept.contains("PORTALBODYMARKER") && !kept.contains("river stone") && !kept.contains("X-Carepost-Passphrase"),
        "{kept}"
    );
    assert!(sink.all().matches("river stone").count() == 0, "the passphrase never leaves carepost");

    let link = link_in(&notice, "/p/m/");
    let token = link.rsplit('/').next().unwrap().to_owned();
    let mut b = browser(format!("https://{https}"));
    let landing = b.get(&link).await;
    assert!(landing.text.contains("Or use the sender's passphrase"), "{}", landing.text);
    let csrf = landing.csrf();
    let wrong = post_passphrase(&mut b, &csrf, &token, "river stone 7732").await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.text.contains("passphrase is not right"), "{}", wrong.text);
    assert_eq!(b.get("/p/inbox").await.status, 401, "nothing changed");
    let right = post_passphrase(&mut b, &csrf, &token, "river stone 7731").await;
    assert_eq!(right.status, 303, "{}", right.text);
    let read_path = right.location;
    assert!(read_path.starts_with("/p/read/"), "{read_path}");
    let page = b.get(&read_path).await;
    assert!(page.status == 200 && page.text.contains("PORTALBODYMARKER"));
    assert_eq!(b.get(&format!("{read_path}/part/0")).await.status, 200);
    // The passphrase opens this message only: its link leads straight to it, but there is no
    // inbox and no account settings.
    assert_eq!(b.get(&link).await.location, read_path);
    assert_eq!(b.get("/p/inbox").await.status, 401);
    assert_eq!(b.get("/p/account").await.status, 401);
    // Wrong guesses are limited per message, from any address: after web.code_attempts
    // (5) of them the passphrase no longer opens it, even when right.
    let mut guesser = browser(format!("https://{https}"));
    let csrf2 = guesser.get(&link).await.csrf();
    for _ in 0..4 {
        assert_eq!(post_passphrase(&mut guesser, &csrf2, &token, "a wrong guess").await.status, 400);
    }
    let refused = post_passphrase(&mut guesser, &csrf2, &token, "river stone 7731").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.text.contains("Ask for a code"));

    // One-time codes: many wrong guesses at once get no more than web.code_attempts (5)
    // comparisons between them, and the right code is refused after them.
    let sent = guesser.post("/p/code", &[("csrf", csrf2.as_str()), ("email", "jane@patient.example")]).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let right_code = code_from(&sink.wait_for(&["jane@patient.example", "Your code: "], &[]));
    let wrong_code: String = right_code.chars().map(|c| if c == '9' { '0' } else { char::from(c as u8 + 1) }).collect();
    let verify = |code: String| {
        let (client, url, cookie, csrf) =
            (guesser.client().clone(), guesser.url("/p/verify"), guesser.cookie_header(), csrf2.clone());
        tokio::spawn(async move {
            let form = [
                ("csrf", csrf.as_str()),
                ("email", "jane@patient.example"),
                ("code", code.as_str()),
                ("password", "a long enough password 42"),
                ("password2", "a long enough password 42"),
            ];
            let body = web::form(&form);
            let r = client
                .post(url)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        })
    };
    let guesses: Vec<_> = (0..16).map(|_| verify(wrong_code.clone())).collect();
    for g in guesses {
        assert_eq!(g.await.unwrap(), 400);
    }
    assert_eq!(verify(right_code).await.unwrap(), 400, "the code is void after five wrong entries");
    let (code, audit, _) = carepost(BIN, dir, &["audit", "export"]);
    assert_eq!(code, 0);
    assert!(audit.contains("portal.passphrase.verify") && audit.contains("\"portal_passphrase\":\"set\""), "{audit}");
    let compared = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"portal.code.verify\"") && l.contains("\"outcome\":\"failure\""))
        .count();
    assert_eq!(compared, 5, "only five guesses were compared with the code: {audit}");
    let refused = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"portal.code.verify\"") && l.contains("\"outcome\":\"denied\""))
        .count();
    assert_eq!(refused, 12, "the other guesses and the late right code were refused unseen");

    // The passphrase count is kept in the database: a restart does not give the guesser new tries.
    let (config_path, data_dir) = (server.config.clone(), server.data_dir.clone());
    assert!(server.stop().success());
    let server = Server::start_with(Path::new(BIN), dir, &config_path, &data_dir);
    let mut after = browser(format!("https://{}", server.addr("https")));
    // The notice's link names the first server's port; the restarted one listens elsewhere.
    let csrf3 = after.get(&format!("/p/m/{token}")).await.csrf();
    let refused = post_passphrase(&mut after, &csrf3, &token, "river stone 7731").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    drop(server);
}
