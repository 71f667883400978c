//! A throwaway PostgreSQL server for tests: one cluster per test binary, a fresh database
//! per test.
//!
//! The cluster lives in a temporary directory, listens on a free 127.0.0.1 port and on no
//! unix socket (nothing in a directory other programs share), and runs with `fsync=off`: its
//! data dies with the test binary anyway. It is never the system service. When the tests run
//! as root, the server runs as the `postgres` OS user, because initdb refuses root.
//!
//! A small watchdog process stops the cluster and removes its directory once the test binary
//! has exited, however it exits: Rust runs no destructors for statics at exit.
//!
//! The cluster also speaks TLS (a throwaway self-signed certificate) and has a role,
//! [`TLS_ROLE`], that may only connect over TLS, so that tests can show a connection really
//! is encrypted: the same connection without TLS is refused.
//!
//! Binaries come from `CAREPOST_TEST_PG_BIN` or the newest `/usr/lib/postgresql/*/bin` (the
//! Debian `postgresql` package, which scripts/test.sh installs). Nothing here skips: if the
//! server cannot start, the test fails and says why.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long initdb, starting the server and creating a database may each take.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// A superuser that `pg_hba.conf` admits over TLS only.
pub const TLS_ROLE: &str = "tls_only";

/// The running cluster of this test binary.
pub struct Postgres {
    bin: PathBuf,
    port: u16,
}

static CLUSTER: OnceLock<Result<Postgres, String>> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// The cluster of this test binary, started on first use. Panics (failing the test) with the
/// reason if PostgreSQL is missing or cannot start.
pub fn cluster() -> &'static Postgres {
    match CLUSTER.get_or_init(start) {
        Ok(pg) => pg,
        Err(e) => panic!("cannot start a throwaway PostgreSQL for this test: {e}"),
    }
}

/// A new, empty database on this binary's cluster: its connection URL.
pub fn fresh_database() -> String {
    cluster().create_database()
}

impl Postgres {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's programs (psql, pg_dump, ...).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// `pg_dump --data-only` of `database` (a name, or a URL on this cluster): every row as
    /// PostgreSQL's own client writes it out.
    pub fn dump(&self, database: &str) -> String {
        let name = database.rsplit('/').next().unwrap_or(database);
        self.client("pg_dump", &["--data-only", name])
    }

    /// `psql -Atc SQL` on `database` (a name, or a URL on this cluster): the unaligned result.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let name = database.rsplit('/').next().unwrap_or(database);
        self.client("psql", &["-d", name, "-Atc", sql])
    }

    /// One of PostgreSQL's client programs, connected as the superuser; fails the test
    /// unless it succeeds.
    fn client(&self, program: &str, args: &[&str]) -> String {
        let port = self.port.to_string();
        let mut full = vec!["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
        full.extend_from_slice(args);
        let (code, out, err) = crate::run_peer(&self.bin.join(program).display().to_string(), &full, "");
        assert_eq!(code, 0, "{program} {args:?}: {err}");
        out
    }

    /// Creates a new, empty database and returns a URL that connects to it as
    /// [`TLS_ROLE`], without TLS settings: the caller adds `sslmode`.
    pub fn create_tls_only_database(&self) -> String {
        let url = self.create_database();
        url.replacen("postgres://postgres@", &format!("postgres://{TLS_ROLE}@"), 1)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
        let port = self.port.to_string();
        let out = run(Command::new(self.bin.join("createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            &name,
        ]))
        .unwrap_or_else(|e| panic!("createdb: {e}"));
        assert!(out.0, "createdb {name} failed: {}", out.1);
        self.url(&name)
    }
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CAREPOST_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no /usr/lib/postgresql ({e}); install the Debian package `postgresql`"))?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".into())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn runuser() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

/// `program` with `args`, as the `postgres` user when we are root.
fn server_command(as_postgres: bool, program: &Path, args: &[&str]) -> Command {
    if as_postgres {
        let mut c = Command::new(runuser());
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

/// Runs a command to its end within [`STEP_TIMEOUT`]: whether it succeeded, and its output.
fn run(command: &mut Command) -> Result<(bool, String), String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let out = crate::wait_output(child, STEP_TIMEOUT);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free loopback port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn start() -> Result<Postgres, String> {
    let bin = bin_dir()?;
    let as_postgres = is_root();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("carepost-pg-{}-{stamp}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if as_postgres {
        let (ok, out) = run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        if !ok {
            return Err(format!("chown postgres {}: {out}", dir.display()));
        }
    }
    // The watchdog first, so that the directory goes away even if initdb fails half-way.
    watchdog(&bin, &dir, &data, as_postgres)?;
    let data_arg = data.to_string_lossy().into_owned();
    let (ok, out) = run(&mut server_command(
        as_postgres,
        &bin.join("initdb"),
        &["-D", &data_arg, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
    ))?;
    if !ok {
        return Err(format!("initdb failed: {out}"));
    }
    tls_setup(&data, as_postgres)?;
    let log = dir.join("server.log");
    let log_arg = log.to_string_lossy().into_owned();
    // A free port can be taken by someone else between our probe and the server's bind: try
    // a few.
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let settings = format!(
            "\n# carepost test cluster\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n"
        );
        // Later lines win in postgresql.conf, so each try overrides the previous port.
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, settings.as_bytes()))
            .map_err(|e| format!("writing postgresql.conf: {e}"))?;
        let timeout = STEP_TIMEOUT.as_secs().to_string();
        let (ok, out) = run(&mut server_command(
            as_postgres,
            &bin.join("pg_ctl"),
            &["start", "-D", &data_arg, "-l", &log_arg, "-w", "-t", &timeout],
        ))?;
        if ok {
            let port_arg = port.to_string();
            let (ok, out) = run(Command::new(bin.join("createuser")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &port_arg,
                "-U",
                "postgres",
                "-s",
                TLS_ROLE,
            ]))?;
            if !ok {
                return Err(format!("createuser {TLS_ROLE}: {out}"));
            }
            return Ok(Postgres { bin, port });
        }
        last = format!("{out}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    Err(format!("pg_ctl start failed: {last}"))
}

/// A self-signed certificate for the server, `ssl = on`, and [`TLS_ROLE`] refused without
/// TLS (pg_hba.conf takes the first line that matches, so these go first).
fn tls_setup(data: &Path, as_postgres: bool) -> Result<(), String> {
    let (key, cert) = (data.join("server.key"), data.join("server.crt"));
    let (ok, out) = run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert))?;
    if !ok {
        return Err(format!("openssl req (the test server's certificate): {out}"));
    }
    // PostgreSQL refuses a key that others can read, or that is not its own.
    let (ok, out) = run(Command::new("chmod").arg("600").arg(&key))?;
    if !ok {
        return Err(format!("chmod {}: {out}", key.display()));
    }
    if as_postgres {
        let (ok, out) = run(Command::new("chown").arg("postgres:postgres").arg(&key).arg(&cert))?;
        if !ok {
            return Err(format!("chown the server key: {out}"));
        }
    }
    let append = |file: &str, text: &str| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join(file))
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| format!("writing {file}: {e}"))
    };
    append("postgresql.conf", "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")?;
    let hba = data.join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).map_err(|e| format!("reading pg_hba.conf: {e}"))?;
    let new = format!("hostnossl all {TLS_ROLE} 127.0.0.1/32 reject\nhostssl all {TLS_ROLE} 127.0.0.1/32 trust\n{old}");
    std::fs::write(&hba, new).map_err(|e| format!("writing pg_hba.conf: {e}"))
}

/// Stops the cluster and removes `dir` once this process has gone.
fn watchdog(bin: &Path, dir: &Path, data: &Path, as_postgres: bool) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let pg_ctl = bin.join("pg_ctl");
    let stop = if as_postgres {
        format!(
            "{} -u postgres -- '{}' stop -D '{}' -m immediate -t 30",
            runuser().display(),
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!("'{}' stop -D '{}' -m immediate -t 30", pg_ctl.display(), data.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to the test run must not stop the watchdog before
        // it has stopped the server.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("starting the watchdog: {e}"))
}
