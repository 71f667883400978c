//! Sealed blobs in an S3-compatible bucket, end to end: `carepost serve` with `[blobs]` on a
//! real S3 server (moto, from the testkit) accepts mail from swaks, keeps the body in the
//! bucket sealed, and delivers it to smtp-sink after a restart; the local blob directory is
//! never used. A bucket that cannot be reached stops the server at start. The bodies are larger
//! than the spool keeps in the database, so that they are blobs.

mod support;

use std::path::Path;

use carepost_testkit::{Server, Sink, files_containing, run, s3, swaks};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");

fn config(blobs: &str, delivery: &str) -> String {
    format!(
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
{delivery}

{blobs}
"#
    )
}

#[test]
fn mail_is_kept_sealed_in_the_bucket_and_delivered_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server_s3 = s3::server();
    let bucket = server_s3.new_bucket("e2e");
    let blobs = server_s3.blobs_config(&bucket);
    let markers: Vec<String> = (0..3).map(|i| format!("S3-BODY-MARKER-{i}-{}", std::process::id())).collect();

    // First with delivery off, so the bodies are certainly in the bucket when it is looked at.
    // The recipient is in a local domain: such mail goes through the transport (smtp-sink)
    // as it is, where outbound mail would wait for verified TLS or go to the portal.
    let server = Server::start(Path::new(BIN), dir, &config(&blobs, "enabled = false"));
    for marker in &markers {
        let (code, out) = swaks(
            server.addr("submission"),
            &[
                "--from",
                "nurse@clinic.example.org",
                "--to",
                "dr.smith@clinic.example.org",
                "--header",
                "Subject: results",
                "--body",
                &support::large_body(&format!("Your appointment is confirmed: {marker}")),
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("queued"), "{out}");
    }
    assert!(server.stop().success());

    let objects = server_s3.objects(&bucket);
    assert!(
        objects.iter().filter(|o| o.key.starts_with("carepost/")).count() >= markers.len(),
        "one object per body at least: {objects:?}"
    );
    let readable = |objects: &[s3::S3Object]| {
        objects
            .iter()
            .filter(|o| {
                markers.iter().any(|m| o.body.windows(m.len()).any(|w| w == m.as_bytes()))
                    || o.body.windows(11).any(|w| w == b"appointment")
            })
            .map(|o| o.key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(readable(&objects), Vec::<String>::new(), "plaintext in the bucket");
    let data = dir.join("data");
    let local = data.join("blobs");
    assert!(
        !local.exists() || std::fs::read_dir(&local).unwrap().next().is_none(),
        "the local blob directory was used"
    );

    // Restarted with delivery on: the bodies come back out of the bucket to the sink.
    let sink = Sink::start(dir, &[]);
    let delivery =
        format!("smart_host = \"{}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"", sink.addr);
    let server = Server::start(Path::new(BIN), dir, &config(&blobs, &delivery));
    for marker in &markers {
        sink.wait_for(&[marker.as_str(), "Subject: results"], &[]);
    }
    assert!(server.stop().success());
    assert_eq!(readable(&server_s3.objects(&bucket)), Vec::<String>::new(), "plaintext in the bucket");
    assert!(
        !local.exists() || std::fs::read_dir(&local).unwrap().next().is_none(),
        "the local blob directory was used"
    );
    for marker in &markers {
        assert!(files_containing(&data, marker.as_bytes()).is_empty(), "{marker} readable in the data directory");
    }
    let (code, out, err) = run(Path::new(BIN), dir, &["audit", "verify", "--config", "carepost.toml"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn an_unreachable_bucket_stops_the_server_at_start_without_naming_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server_s3 = s3::server();
    let blobs = server_s3
        .blobs_config("no-such-bucket")
        .replace(server_s3.secret_access_key, "secret-that-must-not-be-printed");
    std::fs::write(
        dir.join("carepost.toml"),
        carepost_testkit::test_config(&dir.join("data"), &config(&blobs, "enabled = false")),
    )
    .unwrap();
    let (code, out, err) = run(Path::new(BIN), dir, &["serve", "--config", "carepost.toml"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("reaching the blob store s3://no-such-bucket/carepost"), "{err}");
    assert!(!format!("{out}{err}").contains("secret-that-must-not-be-printed"), "{err}");

    // Plain HTTP to another machine is refused before any request.
    let blobs = server_s3.blobs_config("b12").replace("127.0.0.1", "192.0.2.10");
    std::fs::write(
        dir.join("carepost.toml"),
        carepost_testkit::test_config(&dir.join("data"), &config(&blobs, "enabled = false")),
    )
    .unwrap();
    let (code, _, err) = run(Path::new(BIN), dir, &["config", "check", "carepost.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("allow_http is only for an endpoint on this machine"), "{err}");
}

fn send(server: &Server, marker: &str) {
    let body = support::large_body(&format!("Your appointment is confirmed: {marker}"));
    let (code, out) = swaks(
        server.addr("submission"),
        &["--from", "nurse@clinic.example.org", "--to", "dr.smith@clinic.example.org", "--body", &body],
    );
    assert_eq!(code, 0, "{out}");
}

/// Every file under `dir`, by name, with its bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                out.insert(entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_local_install_copies_its_blobs_to_a_bucket_and_serves_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server_s3 = s3::server();
    let bucket = server_s3.new_bucket("copy");
    let markers: Vec<String> = (0..4).map(|i| format!("COPY-MARKER-{i}-{}", std::process::id())).collect();

    let server = Server::start(Path::new(BIN), dir, &config("", "enabled = false"));
    for marker in &markers {
        send(&server, marker);
    }
    assert!(server.stop().success());
    let local = files(&dir.join("data/blobs"));
    assert!(local.len() >= markers.len(), "{:?}", local.keys());

    // The bucket's settings without its url: the install still uses the local directory.
    let s3_settings = server_s3.blobs_config(&bucket);
    let unused: String = s3_settings.lines().filter(|l| !l.starts_with("url")).map(|l| format!("{l}\n")).collect();
    std::fs::write(
        dir.join("carepost.toml"),
        carepost_testkit::test_config(&dir.join("data"), &config(&unused, "enabled = false")),
    )
    .unwrap();
    let target = format!("s3://{bucket}/carepost");
    let (code, out, err) = run(Path::new(BIN), dir, &["blobs", "copy", "--to", &target, "--config", "carepost.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("copied {} blobs (0 already there", local.len())), "{out}");
    assert!(err.contains(&format!("{0}/{0} blobs", local.len())), "{err}");
    // The same sealed bytes under the same names; the source untouched.
    let copied: std::collections::BTreeMap<String, Vec<u8>> = server_s3
        .objects(&bucket)
        .into_iter()
        .map(|o| (o.key.rsplit('/').next().unwrap().to_owned(), o.body))
        .collect();
    assert_eq!(copied, local);
    assert_eq!(files(&dir.join("data/blobs")), local);
    let (code, out, err) = run(Path::new(BIN), dir, &["blobs", "copy", "--to", &target, "--config", "carepost.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("copied 0 blobs ({} already there", local.len())), "{out}");

    // Switched to the bucket, with the local copies gone: the queue is delivered from S3.
    std::fs::remove_dir_all(dir.join("data/blobs")).unwrap();
    let sink = Sink::start(dir, &[]);
    let delivery = format!("smart_host = \"{}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"", sink.addr);
    let server = Server::start(Path::new(BIN), dir, &config(&s3_settings, &delivery));
    for marker in &markers {
        sink.wait_for(&[marker.as_str()], &[]);
    }
    assert!(server.stop().success());
    let (code, out, _) = run(Path::new(BIN), dir, &["audit", "export", "--config", "carepost.toml"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("\"action\":\"blobs.copy\"").count(), 2, "{out}");
}

#[test]
fn portal_copies_are_kept_sealed_in_the_bucket_too() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server_s3 = s3::server();
    let bucket = server_s3.new_bucket("portal");
    let sink = Sink::start(dir, &[]);
    let marker = format!("PORTAL-S3-MARKER-{}", std::process::id());
    let extra = format!(
        "[smtp]\nmx_listen = \"\"\nsubmission_listen = \"127.0.0.1:0\"\nsubmissions_listen = \"\"\nlocal_domains = [\"clinic.example.org\"]\nrelay_networks = [\"127.0.0.0/8\"]\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\norganization = \"Example Clinic\"\n\n\
         [secure]\nwkd = false\n\n\
         [delivery]\nsmart_host = \"{}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\n\n\
         [[policy.rules]]\nname = \"patients read in the portal\"\nwhen = {{ recipient = [\"@patient.example\"] }}\nthen = {{ method = \"portal\" }}\n\n{}",
        sink.addr,
        server_s3.blobs_config(&bucket)
    );
    let server = Server::start(Path::new(BIN), dir, &extra);
    let (code, out) = swaks(
        server.addr("submission"),
        &["--from", "nurse@clinic.example.org", "--to", "pat@patient.example", "--body", &format!("Biopsy: {marker}")],
    );
    assert_eq!(code, 0, "{out}");
    // The notice reaches the recipient; the message itself stays in the portal, in the bucket.
    let notice = sink.wait_for(&["pat@patient.example", "https://"], &[]);
    assert!(!notice.contains(&marker), "{notice}");
    assert!(server.stop().success());
    let objects = server_s3.objects(&bucket);
    assert!(objects.iter().any(|o| o.key.starts_with("carepost/portal/")), "{:?}", objects.iter().map(|o| &o.key));
    for o in &objects {
        assert!(!o.body.windows(marker.len()).any(|w| w == marker.as_bytes()), "{} holds plaintext", o.key);
        assert!(!o.body.windows(6).any(|w| w == b"Biopsy"), "{} holds plaintext", o.key);
    }
    assert!(!dir.join("data/blobs").exists(), "the local blob directory was used");
}
