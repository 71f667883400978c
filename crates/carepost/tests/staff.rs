//! Staff accounts end to end with the real binary: `carepost user` refuses weak passwords
//! and bad roles and manages roles and require-MFA; the staff pages over HTTPS sign in, and
//! a sign-in from a new client address mails the account a notice that reaches the sink.

use std::net::SocketAddr;
use std::path::Path;

use carepost_testkit::cli::{carepost, carepost_with_stdin};
use carepost_testkit::web::{self, Browser};
use carepost_testkit::{Server, Sink};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const PASSWORD: &str = "saffron dial meadow";

/// `carepost user ARGS` with `stdin`.
fn user(dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    carepost_with_stdin(BIN, dir, &[&["user"], args].concat(), stdin)
}

fn config(sink: SocketAddr) -> String {
    format!(
        "[smtp]\nmx_listen = \"127.0.0.1:0\"\nsubmission_listen = \"\"\nsubmissions_listen = \"\"\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\norganization = \"Example Clinic\"\n\n\
         [delivery]\nsmart_host = \"{sink}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\nconnection_idle = \"1s\"\n"
    )
}

/// Signs in at `/staff/signin` from `local`; returns the status and where it leads.
async fn sign_in(https: SocketAddr, local: &str, login: &str) -> (u16, String) {
    let client = web::unchecked()
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .user_agent("Mozilla/5.0 (Windows NT 10.0) Chrome/126.0")
        .build()
        .unwrap();
    let mut browser = Browser::new(client, format!("https://{https}"));
    let csrf = browser.get("/staff/signin").await.csrf();
    let page = browser.post("/staff/signin", &[("csrf", &csrf), ("login", login), ("password", PASSWORD)]).await;
    (page.status, page.location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_password_policy_require_mfa_and_the_new_address_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let server = Server::start(Path::new(BIN), dir, &config(sink.addr));
    let https = server.addr("https");

    // Weak passwords and unknown roles change nothing.
    let (code, _, err) =
        user(dir, &["add", "admin@clinic.example", "--role", "admin", "--password-stdin"], "Password1234!\n");
    assert_eq!(code, 1);
    assert!(err.contains("most commonly used"), "{err}");
    let (code, _, err) =
        user(dir, &["add", "admin@clinic.example", "--role", "admin", "--password-stdin"], "admin-clinic-2026\n");
    assert_eq!(code, 1);
    assert!(err.contains("contains the user name"), "{err}");
    let (code, _, err) =
        user(dir, &["add", "admin@clinic.example", "--role", "overlord", "--password-stdin"], &format!("{PASSWORD}\n"));
    assert_ne!(code, 0);
    assert!(err.contains("unknown role"), "{err}");
    assert!(user(dir, &["list"], "").1.contains("no accounts"));

    let (code, out, err) =
        user(dir, &["add", "admin@clinic.example", "--role", "admin", "--password-stdin"], &format!("{PASSWORD}\n"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("role admin"), "{out}");
    let (code, _, err) = user(dir, &["add", "lab-feed@clinic.example", "--role", "api-only", "--no-password"], "");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = user(dir, &["role", "lab-feed@clinic.example", "compliance"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now compliance"));
    let list = user(dir, &["list"], "").1;
    assert!(list.contains("role=admin") && list.contains("role=compliance") && list.contains("no-mfa"), "{list}");

    // The first sign-in is not news; one from another address is.
    assert_eq!(sign_in(https, "127.0.0.1", "admin@clinic.example").await, (303, "/staff/".into()));
    assert_eq!(sign_in(https, "127.0.0.2", "admin@clinic.example").await, (303, "/staff/".into()));
    let notice = sink.wait_for(&["Sign-in from a new address", "127.0.0.2"], &[]);
    assert!(notice.contains("admin@clinic.example") && notice.contains("Chrome on Windows"), "{notice}");
    assert_eq!(sink.count("Sign-in from a new address"), 1);

    // Requiring MFA sends the account to enrollment at its next sign-in.
    let (code, _, err) = user(dir, &["require-mfa", "on"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(sign_in(https, "127.0.0.1", "admin@clinic.example").await, (303, "/staff/mfa".into()));
    let (code, out, _) = carepost(BIN, dir, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(server.stop().success());
}
