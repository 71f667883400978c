//! Three nodes, one killed: three `carepost serve` processes, each on its own loopback ports
//! and data directory, share one PostgreSQL (testkit's throwaway cluster), one S3 server
//! (moto) and one master key (the key file copied). Concurrent SMTP clients spread 3,000
//! messages over the three; one node is killed with SIGKILL in the middle and nothing is
//! restarted. Every message that got a 250 must reach smtp-sink (by the unique id in its
//! subject), the dead node's in-flight deliveries are taken over once their lease runs out
//! (the time is printed), a portal message accepted on node A is picked up over HTTPS on node
//! B, a REST API send is accepted on node B with a key made on node A, the dead node is named in the audit log, and `carepost audit verify` passes on the
//! shared chain without naming live nodes' records as left unsigned.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use carepost_testkit::cli::{carepost, create_api_key};
use carepost_testkit::web::{self, Browser};
use carepost_testkit::{Server, Sink, s3};

const BIN: &str = env!("CARGO_BIN_EXE_carepost");
const MESSAGES: usize = 3000;
const CLIENTS: usize = 6;
/// The node is killed once this many messages were accepted: mid-load.
const KILL_AFTER: usize = 1000;
/// `delivery.lease` on every node: short, so the dead node's deliveries come back quickly.
const LEASE_SECS: u64 = 15;
const WAIT: Duration = Duration::from_secs(180);

fn config(url: &str, blobs: &str, sink: SocketAddr) -> String {
    format!(
        "[store]\nurl = \"{url}\"\npool_size = 6\n\n\
         [smtp]\nmx_listen = \"\"\nsubmission_listen = \"127.0.0.1:0\"\nsubmissions_listen = \"\"\n\
         local_domains = [\"clinic.example.org\"]\nrelay_networks = [\"127.0.0.0/8\"]\n\n\
         [web]\nlisten = \"127.0.0.1:0\"\norganization = \"Example Clinic\"\n\n\
         [secure]\nwkd = false\n\n\
         [delivery]\nsmart_host = \"{sink}\"\nsmart_host_tls = \"none\"\nretry_first = \"1s\"\nretry_max = \"2s\"\n\
         connection_idle = \"1s\"\nlease = \"{LEASE_SECS}s\"\n\n\
         {blobs}\n\
         [[policy.rules]]\nname = \"patients read in the portal\"\nwhen = {{ recipient = [\"@patient.example\"] }}\n\
         then = {{ method = \"portal\" }}\n"
    )
}

/// Starts a node in `dir`, with the master key of `key` (the first node's) copied in.
fn start_node(dir: &Path, config: &str, key: Option<&Path>) -> Server {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    if let Some(key) = key {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::copy(key, data.join("master.key")).unwrap();
        std::fs::set_permissions(data.join("master.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    Server::start(Path::new(BIN), dir, config)
}

/// One SMTP relay client: a connection kept open across messages.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_write_timeout(Some(Duration::from_secs(60)))?;
        let mut client = Client { reader: BufReader::new(stream.try_clone()?), writer: stream };
        client.expect(220)?;
        client.command("EHLO load.test", 250)?;
        Ok(client)
    }

    fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }

    fn expect(&mut self, want: u16) -> std::io::Result<()> {
        match self.reply()? {
            code if code == want => Ok(()),
            code => Err(std::io::Error::other(format!("reply {code}, wanted {want}"))),
        }
    }

    fn command(&mut self, line: &str, want: u16) -> std::io::Result<()> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.expect(want)
    }

    /// Sends one message; Ok only once the server answered 250 to its end of data.
    fn send(&mut self, id: &str, to: &str) -> std::io::Result<()> {
        self.command("MAIL FROM:<nurse@clinic.example.org>", 250)?;
        self.command(&format!("RCPT TO:<{to}>"), 250)?;
        self.command("DATA", 354)?;
        let body = format!(
            "From: <nurse@clinic.example.org>\r\nTo: <{to}>\r\nSubject: load {id}\r\n\r\nAppointment notice {id}.\r\n.\r\n"
        );
        self.writer.write_all(body.as_bytes())?;
        self.expect(250)
    }
}

/// Sends `ids` starting on node `home`, moving to the next node when one stops answering (as a
/// load balancer would). Records every id that got a 250, with the node that gave it.
fn load(nodes: Vec<SocketAddr>, home: usize, ids: Vec<String>, accepted: Arc<Mutex<Vec<(String, usize)>>>) {
    let mut node = home;
    let mut client: Option<Client> = None;
    for id in ids {
        for _attempt in 0..(2 * nodes.len()) {
            if client.is_none() {
                client = Client::connect(nodes[node]).ok();
            }
            let Some(c) = client.as_mut() else {
                node = (node + 1) % nodes.len();
                continue;
            };
            match c.send(&id, "dr.smith@clinic.example.org") {
                Ok(()) => {
                    accepted.lock().unwrap().push((id.clone(), node));
                    break;
                }
                Err(_) => {
                    client = None;
                    node = (node + 1) % nodes.len();
                }
            }
        }
    }
    if let Some(mut c) = client {
        let _ = c.command("QUIT", 221);
    }
}

/// The ids at the sink, read incrementally: each dump file once. The time of delivery is the
/// dump file's modification time (smtp-sink writes it as the message arrives), so it does not
/// depend on how often the test looks.
struct Delivered {
    dump: PathBuf,
    seen_files: HashSet<PathBuf>,
    ids: HashMap<String, SystemTime>,
    copies: HashMap<String, usize>,
}

impl Delivered {
    fn scan(&mut self) {
        for entry in std::fs::read_dir(&self.dump).into_iter().flatten().flatten() {
            let path = entry.path();
            if self.seen_files.contains(&path) {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
            let Some(at) = text.find("Subject: load ") else {
                // Another kind of message (the portal's), or one still being written.
                if text.contains("\r\n\r\n") || text.contains("\n\n") {
                    self.seen_files.insert(path);
                }
                continue;
            };
            let id = text[at + 14..].split_whitespace().next().unwrap_or_default().to_owned();
            let written = entry.metadata().and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
            *self.copies.entry(id.clone()).or_default() += 1;
            let first = self.ids.entry(id).or_insert(written);
            *first = (*first).min(written);
            self.seen_files.insert(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_killed_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pg = carepost_testkit::postgres::cluster();
    let url = pg.create_database();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let server_s3 = s3::server();
    let bucket = server_s3.new_bucket("nodes");
    let sink = Sink::start(root, &[]);
    let config = config(&url, &server_s3.blobs_config(&bucket), sink.addr);

    // Node A makes the master key; B and C get a copy of the file. Each node holds a node
    // lease from before it says ready: the newest one is the node's id in the store.
    let node_ids = || pg.psql(&database, "SELECT holder FROM leases WHERE name LIKE 'node:%'");
    let a = start_node(&root.join("a"), &config, None);
    let key = a.data_dir.join("master.key");
    let b = start_node(&root.join("b"), &config, Some(&key));
    let before_c = node_ids();
    let c = start_node(&root.join("c"), &config, Some(&key));
    let c_id =
        node_ids().lines().find(|id| !before_c.lines().any(|known| known == *id)).expect("C's node lease").to_owned();
    let c_in_flight = || {
        pg.psql(
            &database,
            &format!("SELECT count(*) FROM recipients WHERE state = 'inflight' AND lease_holder = '{c_id}'"),
        )
        .trim()
        .parse::<u64>()
        .unwrap()
    };
    let nodes: Vec<SocketAddr> = [&a, &b, &c].iter().map(|n| n.addr("submission")).collect();
    let webs: Vec<SocketAddr> = [&a, &b, &c].iter().map(|n| n.addr("https")).collect();

    // The load: CLIENTS clients, two per node, each with its share of the ids.
    let started = Instant::now();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let pid = std::process::id();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let ids: Vec<String> =
                (0..MESSAGES).filter(|n| n % CLIENTS == i).map(|n| format!("TN{pid}x{n:05}")).collect();
            let (nodes, accepted) = (nodes.clone(), accepted.clone());
            std::thread::spawn(move || load(nodes, i % 3, ids, accepted))
        })
        .collect();

    let mut delivered =
        Delivered { dump: sink.dump.clone(), seen_files: HashSet::new(), ids: HashMap::new(), copies: HashMap::new() };
    let deadline = Instant::now() + WAIT;
    while accepted.lock().unwrap().len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "the nodes did not accept {KILL_AFTER} messages in time");
        assert!(!clients.iter().all(|c| c.is_finished()), "the clients stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Kill node C mid-load, at a moment it holds deliveries in flight (or, should that not
    // happen, once two thirds of the load is in); what it accepted must still arrive.
    let mut held = c_in_flight();
    while held == 0 && accepted.lock().unwrap().len() < 2 * MESSAGES / 3 {
        assert!(Instant::now() < deadline, "the nodes did not take the load in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
        held = c_in_flight();
    }
    c.kill9();
    let killed = SystemTime::now();
    let killed_at = Instant::now();
    let held = c_in_flight();
    delivered.scan();
    let accepted_by_c: Vec<String> =
        accepted.lock().unwrap().iter().filter(|(_, n)| *n == 2).map(|(id, _)| id.clone()).collect();
    let pending_at_kill: Vec<String> =
        accepted_by_c.iter().filter(|id| !delivered.ids.contains_key(*id)).cloned().collect();
    println!(
        "killed node C after {:.1} s: it had accepted {} messages, {} not yet at the sink, {held} recipients in flight",
        started.elapsed().as_secs_f64(),
        accepted_by_c.len(),
        pending_at_kill.len(),
    );

    // Takeover: C's in-flight recipients are claimed by a live node once their lease runs out.
    let deadline = Instant::now() + WAIT;
    while c_in_flight() > 0 {
        assert!(Instant::now() < deadline, "the dead node's deliveries were never taken over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taken_over = killed_at.elapsed();
    for client in clients {
        client.join().unwrap();
    }
    let load_done = started.elapsed();
    let accepted: Vec<(String, usize)> = accepted.lock().unwrap().clone();
    let per_node = |n: usize| accepted.iter().filter(|(_, node)| *node == n).count();
    println!(
        "accepted {} of {MESSAGES} messages in {:.1} s (A {}, B {}, C {})",
        accepted.len(),
        load_done.as_secs_f64(),
        per_node(0),
        per_node(1),
        per_node(2)
    );
    assert!(accepted.len() >= MESSAGES - CLIENTS, "the live nodes took the load: {}", accepted.len());
    assert!(per_node(0) > 0 && per_node(1) > 0 && per_node(2) > 0, "every node took messages");

    // Every accepted message reaches the sink: lost = 0.
    let deadline = Instant::now() + WAIT;
    loop {
        delivered.scan();
        let lost = accepted.iter().filter(|(id, _)| !delivered.ids.contains_key(id)).count();
        if lost == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "lost={lost}: accepted messages never reached the sink");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut after_kill: Vec<f64> = pending_at_kill
        .iter()
        .filter_map(|id| delivered.ids.get(id))
        .map(|at| at.duration_since(killed).unwrap_or_default().as_secs_f64())
        .collect();
    after_kill.sort_by(f64::total_cmp);
    let duplicates = delivered.copies.values().filter(|n| **n > 1).count();
    println!(
        "lost=0: {} accepted, all at the sink after {:.1} s ({duplicates} delivered twice); the dead node's {held} in-flight recipients were claimed by live nodes {:.1} s after the kill (delivery.lease = {LEASE_SECS} s); its {} messages not yet at the sink at the kill arrived {:.1?} s after it",
        accepted.len(),
        started.elapsed().as_secs_f64(),
        taken_over.as_secs_f64(),
        pending_at_kill.len(),
        after_kill,
    );

    // A portal message accepted on node A is read through node B.
    let mut portal_client = Client::connect(nodes[0]).unwrap();
    portal_client
        .command("MAIL FROM:<dr.smith@clinic.example.org>", 250)
        .and_then(|_| portal_client.command("RCPT TO:<jane@patient.example>", 250))
        .and_then(|_| portal_client.command("DATA", 354))
        .unwrap();
    portal_client
        .writer
        .write_all(
            b"From: <dr.smith@clinic.example.org>\r\nTo: <jane@patient.example>\r\nSubject: Your results\r\n\r\nNODEPORTALMARKER your results are ready.\r\n.\r\n",
        )
        .unwrap();
    portal_client.expect(250).unwrap();
    let notice = sink.wait_for(&["jane@patient.example", "/p/m/"], &[]);
    let at = notice.find("/p/m/").unwrap();
    let token = notice[at + 5..].split_whitespace().next().unwrap().to_owned();
    let client = web::unchecked().timeout(Duration::from_secs(30)).build().unwrap();
    let mut browser = Browser::new(client, format!("https://{}", webs[1]));
    let landing = browser.get(&format!("/p/m/{token}")).await;
    assert_eq!(landing.status, 200, "{}", landing.text);
    let csrf = landing.csrf();
    let sent = browser.post("/p/code", &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let code = support::code_from(&sink.wait_for(&["Your code: "], &[]));
    let verified = support::verify(&mut browser, &csrf, &token, &code, "a long passphrase").await;
    assert_eq!(verified.status, 303, "{}", verified.text);
    let page = browser.get(&verified.location).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("NODEPORTALMARKER"), "{}", page.text);

    // An application's API send, with a key made through node A's command line, is
    // accepted on node B and delivered from the shared store and bucket.
    let key = create_api_key(BIN, &root.join("a"), &["--name", "lab system", "--scope", "send"]);
    let api = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let request = serde_json::json!({
        "from": {"email": "lab@clinic.example.org"},
        "to": ["dr.smith@clinic.example.org"],
        "subject": "Lab report",
        "text": "The lab report is ready. NODEAPIMARKER",
    });
    let reply = api
        .post(format!("https://{}/api/v1/messages", webs[1]))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    assert_eq!(status, 202, "{}", reply.text().await.unwrap_or_default());
    sink.wait_for(&["NODEAPIMARKER"], &[]);

    // A live node names the dead one once its node lease has run out.
    let deadline = Instant::now() + WAIT;
    while pg.psql(&database, "SELECT count(*) FROM audit_records WHERE action = 'audit.node_lost'").trim() != "1" {
        assert!(Instant::now() < deadline, "no live node named the dead one in the audit log");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    assert!(!node_ids().contains(c_id.as_str()), "the dead node's lease was removed when it was named");

    assert!(a.stop().success());
    assert!(b.stop().success());
    let (code, out, err) = carepost(BIN, &root.join("a"), &["audit", "verify"]);
    println!("audit verify: {}", out.trim());
    assert_eq!(code, 0, "{out}{err}");
    // No live node's records were called unsigned by a crash: nodes that started beside
    // others did not name the others' newest records.
    assert!(!out.contains("never signed"), "{out}");
    let unanchored = pg.psql(&database, "SELECT count(*) FROM audit_records WHERE action = 'audit.unanchored'");
    assert_eq!(unanchored.trim(), "0");
}
