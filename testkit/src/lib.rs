//! Helpers for carepost's end-to-end tests.
//!
//! [`Server`] runs the real `carepost serve` binary in a scratch directory with every listener
//! on `127.0.0.1:0`, and reads the addresses it actually bound from its banner, so tests never
//! race each other for ports. Everything is bounded by timeouts.

pub mod cli;
pub mod dns;
pub mod gpg;
pub mod pki;
pub mod postgres;
pub mod s3;
mod sink;
pub mod totp;
#[cfg(feature = "http")]
pub mod web;

pub use sink::Sink;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to print "ready" or to stop.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `carepost serve`.
pub struct Server {
    child: Option<Child>,
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// Bound addresses by banner name: `mx`, `submission`, `submissions`, `https`.
    pub listeners: HashMap<String, SocketAddr>,
    /// Every line the server printed on stdout, in order.
    pub banner: Vec<String>,
    lines: mpsc::Receiver<String>,
}

/// The configuration a test server starts with: loopback, port 0 everywhere. `extra` is
/// appended verbatim (whole tables only, since keys must not repeat).
pub fn test_config(data_dir: &Path, extra: &str) -> String {
    format!(
        "data_dir = \"{}\"\n\n[log]\nlevel = \"warn\"\n\n{}\n",
        data_dir.display(),
        if extra.contains("[smtp]") {
            extra.to_owned()
        } else {
            format!(
                "[smtp]\nmx_listen = \"127.0.0.1:0\"\nsubmission_listen = \"127.0.0.1:0\"\nsubmissions_listen = \"127.0.0.1:0\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n{extra}"
            )
        }
    )
}

impl Server {
    /// Starts `bin serve` in `dir` with [`test_config`]; waits for the banner.
    pub fn start(bin: &Path, dir: &Path, extra_config: &str) -> Server {
        let data_dir = dir.join("data");
        let config = dir.join("carepost.toml");
        std::fs::write(&config, test_config(&data_dir, extra_config)).expect("writing the test config");
        Server::start_with(bin, dir, &config, &data_dir)
    }

    /// Starts `bin serve --config CONFIG` with the current directory `dir`.
    pub fn start_with(bin: &Path, dir: &Path, config: &Path, data_dir: &Path) -> Server {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env_remove("CAREPOST_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting carepost serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            dir: dir.to_owned(),
            data_dir: data_dir.to_owned(),
            config: config.to_owned(),
            listeners: HashMap::new(),
            banner: Vec::new(),
            lines: rx,
        };
        server.wait_for_line("ready", START_TIMEOUT);
        for line in &server.banner {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(addr)) = (words.next(), words.next())
                && let Ok(addr) = addr.parse()
            {
                server.listeners.insert(name.to_owned(), addr);
            }
        }
        server
    }

    /// Waits until the server prints a line containing `needle`; panics on timeout or exit.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.banner.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                    panic!("carepost did not print {needle:?} (exited: {status:?}); it printed {:#?}", self.banner);
                }
            }
        }
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self.listeners.get(listener).unwrap_or_else(|| panic!("no {listener} listener in {:#?}", self.banner))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status();
    }

    fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.banner.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("carepost did not stop within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait: the clean shutdown an init system does.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait()
    }

    /// SIGKILL: the crash nothing acknowledged may survive.
    pub fn kill9(mut self) {
        self.signal("KILL");
        self.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len().max(1)).any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

/// Runs `bin` with `args` in `dir`, bounded by a timeout; returns status, stdout, stderr.
pub fn run(bin: &Path, dir: &Path, args: &[&str]) -> (i32, String, String) {
    run_with_stdin(bin, dir, args, "")
}

/// [`run`] with `stdin` as the program's standard input.
pub fn run_with_stdin(bin: &Path, dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut command = Command::new(bin);
    command.args(args).current_dir(dir).env_remove("CAREPOST_CONFIG");
    finish(&mut command, stdin, &format!("{} is built by cargo for this test", bin.display()))
}

/// Runs a peer program (swaks, openssl, ...) with `stdin`, bounded in time: its exit code,
/// standard output and standard error. Panics if it is not installed.
pub fn run_peer(program: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    finish(Command::new(program).args(args), stdin, "scripts/test.sh installs it")
}

/// Spawns `command` with `stdin` written to it and waits (bounded) for it to end.
fn finish(command: &mut Command, stdin: &str, hint: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = command
        .stdin(if stdin.is_empty() { Stdio::null() } else { Stdio::piped() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} is needed for this test ({hint}): {e}"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("writing the program's input");
    }
    let out = wait_output(child, Duration::from_secs(120));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a prepared peer command to its end (bounded), failing the test with its output
/// unless it succeeds.
pub fn run_ok(command: &mut Command) -> std::process::Output {
    let output = run_status(command);
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// Runs a prepared peer command to its end (bounded), whatever its exit status.
pub fn run_status(command: &mut Command) -> std::process::Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} is needed for this test (scripts/test.sh installs it): {e}"));
    wait_output(child, Duration::from_secs(120))
}

/// Fails the test when the peer program `name` is not installed: tests never pass by
/// skipping.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "`{name}` is not installed; scripts/test.sh installs it");
}

/// How long a test waits for what carepost does in the background (a delivery, a retry,
/// a webhook): long enough for a loaded machine, and still bounded.
pub const WAIT: Duration = Duration::from_secs(90);

/// Polls `check` until it holds, failing the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_until`] for async tests: `check` may await, and the wait gives the runtime back.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs swaks against the SMTP listener at `addr` (loopback) with `args`: its exit code and
/// its whole transcript (standard output and error together).
pub fn swaks(addr: SocketAddr, args: &[&str]) -> (i32, String) {
    let port = addr.port().to_string();
    let mut full = vec!["--server", "127.0.0.1", "--port", &port, "--timeout", "30"];
    full.extend_from_slice(args);
    let (code, out, err) = run_peer("swaks", &full, "");
    (code, format!("{out}{err}"))
}

/// [`swaks`], failing the test unless the message was accepted: the transcript.
pub fn swaks_ok(addr: SocketAddr, args: &[&str]) -> String {
    let (code, transcript) = swaks(addr, args);
    assert_eq!(code, 0, "swaks {args:?}: {transcript}");
    transcript
}

/// Waits for a child with a deadline, killing it when the deadline passes.
pub fn wait_output(child: Child, timeout: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("waiting for the child"),
        Err(_) => {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            panic!("command did not finish within {timeout:?}");
        }
    }
}

/// Sends `message` to the SMTP server at `addr` with Python's smtplib, as a relay client
/// would (no TLS, no AUTH). Returns the server's reply to the end of data, or its refusal.
pub fn send_with_smtplib(addr: SocketAddr, from: &str, to: &[&str], message: &str) -> Result<String, String> {
    let script = r#"
import smtplib, sys
host, port, sender = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rcpts = sys.argv[4].split(",")
body = sys.stdin.buffer.read()
try:
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.ehlo("relay.test")
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            if code >= 300:
                print(f"{code} {text.decode()}"); sys.exit(3)
        code, text = s.data(body)
        print(f"{code} {text.decode()}")
        sys.exit(0 if code == 250 else 3)
except smtplib.SMTPException as e:
    print(e); sys.exit(3)
"#;
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let (code, out, err) = run_peer("python3", &["-c", script, &ip, &port, from, &to.join(",")], message);
    let text = out.trim().to_owned();
    if code == 0 { Ok(text) } else { Err(format!("{text}{err}")) }
}
