//! A real S3-compatible server on loopback for the tests: moto's server (`moto[server]` from
//! PyPI, in the Python of `$CAREPOST_TEST_PYTHON`, which scripts/test.sh sets up).
//!
//! One server per test binary, started on first use on a port the kernel picks (no race for a
//! "free" port). It runs under a small Python driver that also answers the tests' own
//! questions through boto3 (create a bucket, list what a bucket holds), so the tests inspect
//! the bucket with a client other than carepost's. The driver exits when its standard input
//! closes, which happens when the test binary exits however it exits: no server outlives
//! its tests.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

/// How long the server may take to start, and any one request to it.
const TIMEOUT: Duration = Duration::from_secs(60);

const DRIVER: &str = r#"
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError as e:
    print(f"missing {e}; pip install 'moto[server]' (scripts/test.sh does)", flush=True)
    sys.exit(3)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server.get_host_and_port()[1]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
print("ready", port, flush=True)
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    try:
        if command == "bucket":
            s3.create_bucket(Bucket=arg)
        elif command == "objects":
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=arg):
                for o in page.get("Contents", []):
                    body = s3.get_object(Bucket=arg, Key=o["Key"])["Body"].read()
                    print("obj", o["Key"], o["ETag"].strip('"'), body.hex(), flush=True)
        elif command == "uploads":
            print("count", len(s3.list_multipart_uploads(Bucket=arg).get("Uploads", [])), flush=True)
        else:
            raise ValueError(command)
        print("ok", flush=True)
    except Exception as e:
        print("err", str(e).replace("\n", " "), flush=True)
server.stop()
"#;

/// The running server: where it listens and the credentials it accepts.
pub struct S3Server {
    pub endpoint: String,
    pub region: &'static str,
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
    driver: Mutex<(ChildStdin, mpsc::Receiver<String>)>,
}

/// An object as the server holds it.
#[derive(Debug, Clone)]
pub struct S3Object {
    pub key: String,
    /// A multipart upload's ETag ends in `-` and the number of parts.
    pub etag: String,
    pub body: Vec<u8>,
}

/// The test binary's S3 server, started on first call. Panics (never skips) when moto is
/// missing.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> S3Server {
    let python = std::env::var_os("CAREPOST_TEST_PYTHON")
        .expect("CAREPOST_TEST_PYTHON must name a python with moto[server] installed (scripts/test.sh sets it up)");
    let mut child = Command::new(&python)
        .args(["-c", DRIVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} for the S3 server: {e}", python.to_string_lossy()));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
        // Reaps the driver once it has exited (its stdout closed).
        let _ = child.wait();
    });
    let first = rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("the S3 server did not start within {TIMEOUT:?}"));
    let port: u16 = first
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the S3 server did not start: {first}"));
    S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1",
        access_key_id: "testing",
        secret_access_key: "testing",
        driver: Mutex::new((stdin, rx)),
    }
}

impl S3Server {
    /// Sends one command to the driver; the lines it answered before "ok".
    fn ask(&self, command: &str) -> Vec<String> {
        let mut guard = self.driver.lock().unwrap_or_else(|p| p.into_inner());
        let (stdin, lines) = &mut *guard;
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).expect("the S3 driver is running");
        let mut answer = Vec::new();
        loop {
            let line = lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("the S3 driver did not answer {command:?} within {TIMEOUT:?}"));
            if line == "ok" {
                return answer;
            }
            if let Some(err) = line.strip_prefix("err ") {
                panic!("S3 {command:?}: {err}");
            }
            answer.push(line);
        }
    }

    /// Creates a new, empty bucket with a name no other test uses; returns the name.
    pub fn new_bucket(&self, hint: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let hint: String = hint.chars().filter(|c| c.is_ascii_alphanumeric()).take(30).collect();
        let name = format!("t{}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), hint.to_lowercase());
        self.ask(&format!("bucket {name}"));
        name
    }

    /// Every object in `bucket`, with its bytes.
    pub fn objects(&self, bucket: &str) -> Vec<S3Object> {
        self.ask(&format!("objects {bucket}"))
            .into_iter()
            .map(|line| {
                let mut words = line.split(' ').skip(1);
                let (Some(key), Some(etag), Some(hex)) = (words.next(), words.next(), words.next()) else {
                    panic!("the S3 driver said {line:?}");
                };
                S3Object { key: key.to_owned(), etag: etag.to_owned(), body: from_hex(hex) }
            })
            .collect()
    }

    /// How many multipart uploads in `bucket` were started and neither completed nor aborted.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        let answer = self.ask(&format!("uploads {bucket}"));
        answer
            .first()
            .and_then(|l| l.strip_prefix("count "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the S3 driver said {answer:?}"))
    }

    /// A `[blobs]` table that points carepost at `bucket` on this server.
    pub fn blobs_config(&self, bucket: &str) -> String {
        format!(
            "[blobs]\nurl = \"s3://{bucket}/carepost\"\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nallow_http = true\n",
            self.endpoint, self.region, self.access_key_id, self.secret_access_key
        )
    }
}

fn from_hex(hex: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not hex: {c}"),
    };
    hex.as_bytes().chunks(2).map(|p| digit(p[0]) << 4 | digit(p.get(1).copied().unwrap_or(b'0'))).collect()
}
