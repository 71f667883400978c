//! Encryption by policy, end to end: staff send an ordinary message with PHI and carepost
//! chooses per recipient. A recipient whose OpenPGP key is in the directory gets PGP/MIME
//! that GnuPG decrypts; one whose S/MIME certificate is known gets S/MIME that `openssl cms`
//! decrypts; one with neither, whose server offers no verified TLS, never gets the message
//! in clear. Nothing at the sink carries the PHI or the subject in clear.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use carepost_testkit::{Server, Sink, run, send_with_smtplib};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const SSN: &str = "512-48-3391";
const SUBJECT: &str = "Results for Jane Roe";

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e} (scripts/test.sh installs gnupg and openssl)"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn gpg(home: &Path) -> Command {
    let mut command = Command::new("gpg");
    command.env("GNUPGHOME", home).args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]);
    command
}

/// An OpenPGP key for `address` (Ed25519 primary, Curve25519 encryption subkey), made by
/// GnuPG; returns the armored public key file.
fn gpg_key(dir: &Path, address: &str) -> (PathBuf, PathBuf) {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    run_ok(gpg(&home).args(["--quick-gen-key", &format!("Pat <{address}>"), "ed25519", "sign,cert", "1y"]));
    let listing = String::from_utf8(run_ok(gpg(&home).args(["--with-colons", "--list-keys", address])).stdout).unwrap();
    let fingerprint = listing.lines().find(|l| l.starts_with("fpr:")).unwrap().split(':').nth(9).unwrap().to_owned();
    run_ok(gpg(&home).args(["--quick-add-key", &fingerprint, "cv25519", "encr", "1y"]));
    let public = dir.join("pat.asc");
    std::fs::write(&public, run_ok(gpg(&home).args(["--armor", "--export", address])).stdout).unwrap();
    (home, public)
}

/// A self-signed S/MIME certificate for `address` made by openssl; returns (cert, key).
fn smime_certificate(dir: &Path, address: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join("sam.pem");
    let key = dir.join("sam.key");
    run_ok(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "sam.key",
        "-out",
        "sam.pem",
        "-days",
        "30",
        "-subj",
        &format!("/CN=Sam/emailAddress={address}"),
        "-addext",
        &format!("subjectAltName=email:{address}"),
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext",
        "extendedKeyUsage=emailProtection",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ]));
    (cert, key)
}

fn cli(dir: &Path, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend(["--config", "carepost.toml"]);
    let (code, out, err) = run(Path::new(BIN), dir, &full);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

/// The one message at the sink addressed to `rcpt`, waiting for it.
fn received_for(sink: &Sink, rcpt: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(m) = sink.messages().into_iter().find(|m| m.contains(&format!("X-Rcpt-Args: <{rcpt}>")) || m.contains(&format!("X-Rcpt-To: {rcpt}"))) {
            return m;
        }
        assert!(Instant::now() < deadline, "nothing for {rcpt} at the sink");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The message without smtp-sink's envelope lines, as a file a mail tool can read.
fn as_eml(dir: &Path, name: &str, received: &str) -> PathBuf {
    let body: String = received.split_inclusive('\n').skip_while(|l| l.starts_with("X-")).collect();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn policy_encrypts_per_recipient_and_real_peers_decrypt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let config = format!(
        r#"[smtp]
mx_listen = ""
submission_listen = "127.0.0.1:0"
submissions_listen = ""
local_domains = ["clinic.example.org"]
relay_networks = ["127.0.0.0/8"]

[web]
listen = ""

[secure]
# Tests stay on loopback: no WKD look-ups on the Internet.
wkd = false

[delivery]
smart_host = "{}"
smart_host_tls = "none"
retry_first = "1s"
retry_max = "2s"
"#,
        sink.addr
    );
    let server = Server::start(Path::new(BIN), dir, &config);
    let (gnupg, pat_key) = gpg_key(dir, "pat@pgp.example");
    let (sam_cert, sam_key) = smime_certificate(dir, "sam@smime.example");
    cli(dir, &["keys", "import", pat_key.to_str().unwrap()]);
    cli(dir, &["keys", "import", sam_cert.to_str().unwrap()]);
    let keys = cli(dir, &["keys", "list"]);
    assert!(keys.contains("pat@pgp.example") && keys.contains("sam@smime.example"), "{keys}");

    let message = format!(
        "From: nurse@clinic.example.org\r\nTo: pat@pgp.example, sam@smime.example, lee@plain.example\r\nSubject: {SUBJECT}\r\n\
         Message-ID: <results@clinic.example.org>\r\n\r\nJane Roe, SSN {SSN}, DOB 04/12/1961: HbA1c 9.1%, type 2 diabetes.\r\n"
    );
    let reply = send_with_smtplib(
        server.addr("submission"),
        "nurse@clinic.example.org",
        &["pat@pgp.example", "sam@smime.example", "lee@plain.example"],
        &message,
    )
    .unwrap();
    let id = reply.rsplit(' ').next().unwrap().trim().to_owned();

    // OpenPGP: PGP/MIME (RFC 3156) that GnuPG decrypts to the original text.
    let pgp = received_for(&sink, "pat@pgp.example");
    assert!(pgp.contains("multipart/encrypted") && pgp.contains("application/pgp-encrypted"), "{pgp}");
    assert!(!pgp.contains(SSN) && !pgp.contains(SUBJECT), "PHI in clear in the PGP copy: {pgp}");
    let file = as_eml(dir, "pgp.eml", &pgp);
    let decrypted = run_ok(gpg(&gnupg).arg("--decrypt").arg(&file));
    let text = String::from_utf8_lossy(&decrypted.stdout);
    assert!(text.contains(SSN) && text.contains(SUBJECT), "gpg decrypted: {text}");

    // S/MIME: enveloped CMS that openssl decrypts with the recipient's key.
    let smime = received_for(&sink, "sam@smime.example");
    assert!(smime.contains("application/pkcs7-mime"), "{smime}");
    assert!(!smime.contains(SSN) && !smime.contains(SUBJECT), "PHI in clear in the S/MIME copy: {smime}");
    let file = as_eml(dir, "smime.eml", &smime);
    let decrypted = run_ok(Command::new("openssl").args(["cms", "-decrypt", "-recip"]).arg(&sam_cert).arg("-inkey").arg(&sam_key).arg("-in").arg(&file));
    let text = String::from_utf8_lossy(&decrypted.stdout);
    assert!(text.contains(SSN) && text.contains(SUBJECT), "openssl decrypted: {text}");

    // No key and no verified TLS at the next hop, no portal configured: held, never sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = cli(dir, &["queue", "show", &id]);
        let lee = shown.lines().find(|l| l.contains("lee@plain.example")).unwrap_or_default().to_owned();
        if lee.contains("held") {
            assert!(shown.contains("verified TLS"), "{shown}");
            break;
        }
        assert!(Instant::now() < deadline, "lee's copy was not held: {shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(sink.all().lines().all(|l| !l.contains(SSN)), "PHI reached the sink in clear");

    assert!(server.stop().success());
    let export = cli(dir, &["audit", "export"]);
    assert!(export.contains("\"method\":\"pgp\"") && export.contains("\"method\":\"smime\""), "delivery methods audited");
    assert!(!export.contains(SSN), "no PHI in the audit log");
}
