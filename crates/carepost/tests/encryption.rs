//! Encryption by policy, end to end: staff send an ordinary message with PHI and carepost
//! chooses per recipient. A recipient whose OpenPGP key is in the directory gets PGP/MIME
//! that GnuPG decrypts; one whose S/MIME certificate is known gets S/MIME that `openssl cms`
//! decrypts; one with neither, whose server offers no verified TLS, never gets the message
//! in clear. Nothing at the sink carries the PHI or the subject in clear.
//!
//! Certificates learned from signed mail at the MX: a self-signed certificate planted by
//! anyone on port 25 is never learned, a correspondent's certificate from DKIM- and
//! DMARC-authenticated mail is learned but not used until an operator confirms it, and a
//! different certificate for a known address is held for review.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carepost_testkit::cli::{add_user, carepost_ok};
use carepost_testkit::dns::TestDns;
use carepost_testkit::gpg::GpgHome;
use carepost_testkit::pki::{cms_decrypt, openssl, self_signed_smime};
use carepost_testkit::{Server, Sink, run_ok, send_with_smtplib};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const SSN: &str = "512-48-3391";
const SUBJECT: &str = "Results for Jane Roe";

/// An OpenPGP key for `address` (Ed25519 primary, Curve25519 encryption subkey), made by
/// GnuPG; returns its home and the armored public key file.
fn gpg_key(dir: &Path, address: &str) -> (GpgHome, PathBuf) {
    let home = GpgHome::new();
    home.generate(&format!("Pat <{address}>"), "1y", None);
    let public = dir.join("pat.asc");
    std::fs::write(&public, home.export_armored(address)).unwrap();
    (home, public)
}

/// The one message at the sink addressed to `rcpt`, waiting for it.
fn received_for(sink: &Sink, rcpt: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(m) = sink
            .messages()
            .into_iter()
            .find(|m| m.contains(&format!("X-Rcpt-Args: <{rcpt}>")) || m.contains(&format!("X-Rcpt-To: {rcpt}")))
        {
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
    let sam = self_signed_smime(dir, "sam", "sam@smime.example");
    carepost_ok(BIN, dir, &["keys", "import", pat_key.to_str().unwrap()]);
    carepost_ok(BIN, dir, &["keys", "import", sam.cert.to_str().unwrap()]);
    let keys = carepost_ok(BIN, dir, &["keys", "list"]);
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
    let decrypted = run_ok(gnupg.gpg().arg("--decrypt").arg(&file));
    let text = String::from_utf8_lossy(&decrypted.stdout);
    assert!(text.contains(SSN) && text.contains(SUBJECT), "gpg decrypted: {text}");

    // S/MIME: enveloped CMS that openssl decrypts with the recipient's key.
    let smime = received_for(&sink, "sam@smime.example");
    assert!(smime.contains("application/pkcs7-mime"), "{smime}");
    assert!(!smime.contains(SSN) && !smime.contains(SUBJECT), "PHI in clear in the S/MIME copy: {smime}");
    let file = as_eml(dir, "smime.eml", &smime);
    let text = cms_decrypt(&sam, &file);
    assert!(text.contains(SSN) && text.contains(SUBJECT), "openssl decrypted: {text}");

    // No key and no verified TLS at the next hop, no portal configured: held, never sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = carepost_ok(BIN, dir, &["queue", "show", &id]);
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
    let export = carepost_ok(BIN, dir, &["audit", "export"]);
    assert!(
        export.contains("\"method\":\"pgp\"") && export.contains("\"method\":\"smime\""),
        "delivery methods audited"
    );
    assert!(!export.contains(SSN), "no PHI in the audit log");
}

/// The DKIM key of a correspondent's domain, as its own mail server signs with it; returns
/// the signer and the TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
fn dkim_domain(domain: &str, selector: &str) -> (DkimSigner<Ed25519Key, Done>, String) {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let txt = format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.public_key())
    );
    let signer = DkimSigner::from_key(key).domain(domain).selector(selector).headers([
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
    ]);
    (signer, txt)
}

/// A message signed with `openssl cms -sign` by (cert, key), from `from` to `to`, with CRLF
/// line ends as it travels; DKIM-signed on top when `dkim` is given.
fn signed_message(
    dir: &Path,
    name: &str,
    (cert, key): (&Path, &Path),
    from: &str,
    to: &str,
    dkim: Option<&DkimSigner<Ed25519Key, Done>>,
) -> PathBuf {
    let text = dir.join(format!("{name}.txt"));
    std::fs::write(&text, "Content-Type: text/plain\r\n\r\nPlease use this certificate for our correspondence.\r\n")
        .unwrap();
    let out = run_ok(
        openssl(dir).args(["cms", "-sign", "-in"]).arg(&text).arg("-signer").arg(cert).arg("-inkey").arg(key).args([
            "-from",
            from,
            "-to",
            to,
            "-subject",
            "My certificate",
        ]),
    );
    let mut message = String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n").replace('\n', "\r\n");
    message.insert_str(
        0,
        &format!(
            "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{name}@{}>\r\n",
            from.rsplit('@').next().unwrap()
        ),
    );
    if let Some(signer) = dkim {
        let signature = signer.sign(message.as_bytes()).unwrap();
        message.insert_str(0, &signature.to_header());
    }
    let path = dir.join(format!("{name}.eml"));
    std::fs::write(&path, message).unwrap();
    path
}

/// Runs swaks against `addr` with `args`; panics unless it succeeds (250 to the data).
fn swaks_ok(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let text = carepost_testkit::swaks_ok(addr, args);
    assert!(text.contains("250 2.0.0"), "swaks {args:?}: {text}");
    text
}

/// The line of `carepost keys list` for `address`, waiting (bounded) until one contains `state`.
fn key_line(dir: &Path, address: &str, state: &str, not_id: Option<&str>) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = carepost_ok(BIN, dir, &["keys", "list"]);
        let found = list.lines().find(|l| {
            l.contains(address)
                && l.split_whitespace().nth(3) == Some(state)
                && not_id.is_none_or(|id| !l.starts_with(id))
        });
        if let Some(line) = found {
            return (line.split_whitespace().next().unwrap().to_owned(), line.to_owned());
        }
        assert!(Instant::now() < deadline, "no {state} key for {address}: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn certificates_are_learned_only_from_authenticated_mail_and_never_replace_a_known_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start(dir, &[]);
    let (partner_dkim, partner_txt) = dkim_domain("partner.example", "s1");
    let dns = TestDns::start(&[
        ("s1._domainkey.partner.example", &partner_txt),
        ("_dmarc.partner.example", "v=DMARC1; p=reject"),
        // The usual state of a big mailbox provider: DMARC, but no rejection.
        ("_dmarc.gmail.com", "v=DMARC1; p=none"),
        // A domain whose SPF covers a shared sender: SPF alone makes DMARC pass.
        ("shared.example", "v=spf1 ip4:127.0.0.1 -all"),
        ("_dmarc.shared.example", "v=DMARC1; p=reject"),
    ]);
    let config = format!(
        r#"[smtp]
mx_listen = "127.0.0.1:0"
submission_listen = "127.0.0.1:0"
submissions_listen = ""
local_domains = ["clinic.example.org"]
dns_servers = ["{}"]

[web]
listen = "127.0.0.1:0"

[secure]
wkd = false
key_review_address = "keys@admin.example"

[delivery]
smart_host = "{}"
smart_host_tls = "none"
retry_first = "1s"
retry_max = "2s"
"#,
        dns.addr(),
        sink.addr
    );
    let server = Server::start(Path::new(BIN), dir, &config);
    add_user(BIN, dir, "nurse@clinic.example.org", &[], "correct horse battery staple");
    let (mx, submission) = (server.addr("mx"), server.addr("submission"));
    let mut seen: Vec<String> = Vec::new();
    // Staff send PHI to `rcpt`; returns what reaches the sink for them.
    let phi = dir.join("phi.eml");
    let send_phi = |rcpt: &str, seen: &mut Vec<String>| {
        let message = format!(
            "From: nurse@clinic.example.org\r\nTo: {rcpt}\r\nSubject: {SUBJECT}\r\n\r\nJane Roe, SSN {SSN}, DOB 04/12/1961: type 2 diabetes.\r\n"
        );
        std::fs::write(&phi, message).unwrap();
        swaks_ok(
            submission,
            &[
                "-tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "nurse@clinic.example.org",
                "--auth-password",
                "correct horse battery staple",
                "--from",
                "nurse@clinic.example.org",
                "--to",
                rcpt,
                "--data",
                phi.to_str().unwrap(),
            ],
        );
        let got = sink.wait_for(&[&format!("X-Rcpt-Args: <{rcpt}>")], seen);
        seen.push(got.clone());
        assert!(!got.contains(SSN), "PHI in clear: {got}");
        // As received (wait_for joins quoted-printable lines, which base64 does not survive).
        sink.messages().into_iter().find(|m| m.replace("=\r\n", "").replace("=\n", "") == got).unwrap()
    };

    // The attack: anyone on port 25 signs with a self-signed certificate made by `openssl req`.
    let attacker = self_signed_smime(dir, "attacker", "patient@gmail.com");
    let forged = signed_message(
        dir,
        "forged",
        (&attacker.cert, &attacker.key),
        "patient@gmail.com",
        "dr.jones@clinic.example.org",
        None,
    );
    swaks_ok(
        mx,
        &[
            "--ehlo",
            "mail.attacker.example",
            "--from",
            "patient@gmail.com",
            "--to",
            "dr.jones@clinic.example.org",
            "--data",
            forged.to_str().unwrap(),
        ],
    );
    // Even with DMARC passing on SPF alone (a shared sender), no DKIM from the author: nothing.
    let shared = self_signed_smime(dir, "shared", "pat@shared.example");
    let spf_only = signed_message(
        dir,
        "spf-only",
        (&shared.cert, &shared.key),
        "pat@shared.example",
        "dr.jones@clinic.example.org",
        None,
    );
    swaks_ok(
        mx,
        &[
            "--ehlo",
            "relay.shared.example",
            "--from",
            "pat@shared.example",
            "--to",
            "dr.jones@clinic.example.org",
            "--data",
            spf_only.to_str().unwrap(),
        ],
    );
    let audit = carepost_ok(BIN, dir, &["audit", "export"]);
    assert_eq!(audit.matches("keys.learn_refused").count(), 2, "{audit}");
    let keys = carepost_ok(BIN, dir, &["keys", "list"]);
    assert!(!keys.contains("patient@gmail.com") && !keys.contains("pat@shared.example"), "planted: {keys}");
    // The patient's PHI goes through the portal (no verified TLS at the sink), never to the
    // attacker's key.
    let to_patient = send_phi("patient@gmail.com", &mut seen);
    assert!(to_patient.contains("Secure message from") && !to_patient.contains("pkcs7-mime"), "{to_patient}");
    assert!(!carepost_ok(BIN, dir, &["keys", "list"]).contains("patient@gmail.com"));

    // A correspondent's own signed mail, DKIM-signed by their domain and passing DMARC: the
    // certificate is learned, but ranks below verified TLS and the portal until confirmed.
    let doctor = self_signed_smime(dir, "doctor", "dr@partner.example");
    let genuine = signed_message(
        dir,
        "genuine",
        (&doctor.cert, &doctor.key),
        "dr@partner.example",
        "dr.jones@clinic.example.org",
        Some(&partner_dkim),
    );
    swaks_ok(
        mx,
        &[
            "--ehlo",
            "mail.partner.example",
            "--from",
            "dr@partner.example",
            "--to",
            "dr.jones@clinic.example.org",
            "--data",
            genuine.to_str().unwrap(),
        ],
    );
    let (doctor_id, line) = key_line(dir, "dr@partner.example", "unconfirmed", None);
    assert!(line.contains("learned") && line.contains("keys confirm"), "{line}");
    let unconfirmed = send_phi("dr@partner.example", &mut seen);
    assert!(unconfirmed.contains("Secure message from") && !unconfirmed.contains("pkcs7-mime"), "{unconfirmed}");
    carepost_ok(BIN, dir, &["keys", "confirm", &doctor_id]);
    key_line(dir, "dr@partner.example", "confirmed", None);
    let confirmed = send_phi("dr@partner.example", &mut seen);
    assert!(confirmed.contains("application/pkcs7-mime"), "{confirmed}");
    let file = as_eml(dir, "confirmed.eml", &confirmed);
    let decrypted = cms_decrypt(&doctor, &file);
    assert!(decrypted.contains(SSN));

    // A different certificate for the now known address, even from authenticated mail: held,
    // audited, an operator told (without the address), and the known key stays in use.
    let other = self_signed_smime(dir, "other", "dr@partner.example");
    let conflicting = signed_message(
        dir,
        "conflicting",
        (&other.cert, &other.key),
        "dr@partner.example",
        "dr.jones@clinic.example.org",
        Some(&partner_dkim),
    );
    swaks_ok(
        mx,
        &[
            "--ehlo",
            "mail.partner.example",
            "--from",
            "dr@partner.example",
            "--to",
            "dr.jones@clinic.example.org",
            "--data",
            conflicting.to_str().unwrap(),
        ],
    );
    let (held_id, line) = key_line(dir, "dr@partner.example", "held", Some(&doctor_id));
    assert!(line.contains("held for review"), "{line}");
    let notice = sink.wait_for(&["X-Rcpt-Args: <keys@admin.example>", "carepost key review"], &seen);
    assert!(notice.contains(&held_id) && notice.contains("carepost keys confirm"), "{notice}");
    assert!(
        !notice.contains("dr@partner.example") && !notice.contains("dr.jones"),
        "the notice names no address: {notice}"
    );
    let audit = carepost_ok(BIN, dir, &["audit", "export"]);
    assert!(audit.lines().any(|l| l.contains("keys.held") && l.contains(&held_id)), "{audit}");
    assert!(audit.contains("keys.confirm") && audit.contains("keys.learned"), "{audit}");
    let after = send_phi("dr@partner.example", &mut seen);
    assert!(after.contains("application/pkcs7-mime"), "{after}");
    let file = as_eml(dir, "after.eml", &after);
    let decrypted = cms_decrypt(&doctor, &file);
    assert!(decrypted.contains(SSN), "still encrypted to the known key");

    assert!(server.stop().success());
}
