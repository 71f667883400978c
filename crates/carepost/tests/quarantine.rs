//! Quarantine end to end: a message policy quarantines is held, reviewed, released or
//! rejected with the CLI, and every action is audited.

use std::path::Path;

use carepost_testkit::cli::{carepost, carepost_ok};
use carepost_testkit::{Server, send_with_smtplib};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

const CONFIG: &str = r#"[smtp]
mx_listen = ""
submission_listen = "127.0.0.1:0"
submissions_listen = ""
local_domains = ["clinic.example.org"]
relay_networks = ["127.0.0.0/8"]

[web]
listen = ""

[delivery]
enabled = false

[policy]
[[policy.rules]]
name = "review SSNs leaving"
when.direction = "outbound"
when.entities = { US_SSN = 1 }
then.quarantine = true
"#;

fn message(subject: &str) -> String {
    format!(
        "From: nurse@clinic.example.org\r\nTo: pat@example.net\r\nSubject: {subject}\r\nMessage-ID: <{subject}@clinic.example.org>\r\n\r\nPatient Jane Roe, SSN 512-48-3391, was seen today for type 2 diabetes.\r\n"
    )
}

fn queued_id(reply: &str) -> String {
    reply.rsplit(' ').next().unwrap().trim().to_owned()
}

#[test]
fn quarantined_mail_is_reviewed_released_or_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Server::start(Path::new(BIN), dir, CONFIG);
    let addr = server.addr("submission");

    let kept = queued_id(
        &send_with_smtplib(addr, "nurse@clinic.example.org", &["pat@example.net"], &message("first")).unwrap(),
    );
    let refused = queued_id(
        &send_with_smtplib(addr, "nurse@clinic.example.org", &["pat@example.net"], &message("second")).unwrap(),
    );
    let clean = "From: nurse@clinic.example.org\r\nSubject: lunch\r\n\r\nNoon?\r\n";
    send_with_smtplib(addr, "nurse@clinic.example.org", &["pat@example.net"], clean).unwrap();

    let listed = carepost_ok(BIN, dir, &["quarantine", "list"]);
    assert!(listed.contains(&kept) && listed.contains(&refused), "{listed}");
    assert_eq!(listed.lines().count(), 2, "the clean message is not quarantined: {listed}");
    assert!(
        listed.contains("phi") && listed.contains("US_SSN 1") && listed.contains("rules: review SSNs leaving"),
        "{listed}"
    );

    let shown = carepost_ok(BIN, dir, &["quarantine", "show", &kept]);
    assert!(
        shown.contains("<pat@example.net>") && shown.contains("512-48-3391"),
        "the reviewer sees what was found: {shown}"
    );

    let released = carepost_ok(BIN, dir, &["quarantine", "release", &kept]);
    assert!(released.starts_with("1 recipients released"), "{released}");
    let queue = carepost_ok(BIN, dir, &["queue", "show", &kept]);
    assert!(queue.contains("queued") && !queue.contains("quarantined"), "{queue}");

    let rejected = carepost_ok(BIN, dir, &["quarantine", "reject", &refused, "--reason", "not for e-mail"]);
    assert!(rejected.starts_with("1 recipients refused"), "{rejected}");
    let queue = carepost_ok(BIN, dir, &["queue", "show", &refused]);
    assert!(queue.contains("bounced") && queue.contains("refused on compliance review"), "{queue}");
    // The sender is told: a DSN to nurse@clinic.example.org is queued.
    let listed = carepost_ok(BIN, dir, &["queue", "list"]);
    assert!(listed.contains("system"), "a bounce is queued for the sender: {listed}");

    let (code, _, err) = carepost(BIN, dir, &["quarantine", "release", &refused]);
    assert_eq!(code, 1, "nothing is quarantined any more: {err}");

    assert!(server.stop().success());
    let export = carepost_ok(BIN, dir, &["audit", "export"]);
    for action in ["quarantine.show", "quarantine.release", "quarantine.reject"] {
        assert!(export.contains(action), "{action} audited");
    }
    assert!(
        !export.contains("512-48-3391") && !export.contains("not for e-mail"),
        "no PHI or free text in the audit log"
    );
}
