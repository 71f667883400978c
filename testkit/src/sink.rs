//! Postfix's smtp-sink as the far end of delivery in end-to-end tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Postfix's smtp-sink writing one file per message into `dir/sink`. Fails (never skips)
/// when Postfix is not installed: scripts/test.sh installs it.
pub struct Sink {
    pub addr: SocketAddr,
    pub dump: PathBuf,
    child: std::process::Child,
}

impl Sink {
    pub fn start(dir: &Path, extra: &[&str]) -> Sink {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let bin = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("smtp-sink is not installed (apt-get install postfix; scripts/test.sh does)");
        let dump = dir.join("sink");
        std::fs::create_dir_all(&dump).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = std::process::Command::new(bin);
        if std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false) {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .args(extra)
            .arg("-d")
            .arg(dump.join("m."))
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting smtp-sink");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Sink { addr, dump, child }
    }

    /// Every received message, concatenated.
    pub fn all(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(&self.dump).into_iter().flatten().flatten() {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap_or_default()));
        }
        text
    }
}

impl Sink {
    /// How many received messages contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.messages().iter().filter(|m| m.contains(needle)).count()
    }

    /// Waits (bounded) for a message that contains every needle, with quoted-printable soft
    /// line breaks removed so that long links match, and that is not one of `not`.
    pub fn wait_for(&self, needles: &[&str], not: &[String]) -> String {
        let unfolded =
            || self.messages().into_iter().map(|m| m.replace("=\r\n", "").replace("=\n", "")).collect::<Vec<_>>();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(m) = unfolded().into_iter().find(|m| needles.iter().all(|n| m.contains(n)) && !not.contains(m))
            {
                return m;
            }
            assert!(Instant::now() < deadline, "no message with {needles:?} at the sink; it has {:#?}", unfolded());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The received messages (with smtp-sink's envelope headers), one string each.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(&self.dump)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
