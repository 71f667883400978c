//! A carepost HTTPS server for tests: a scratch store, key ring, audit log and blob store,
//! a self-signed certificate, and a client that trusts only that certificate.

#![allow(dead_code)]

pub mod softkey;

use std::net::SocketAddr;
use std::sync::Arc;

use carepost_testkit::web::{self, Browser};
use carepost_web::{RunningWeb, Services, StaffConfig, WebConfig, WebContext, WebServer, WebState};

pub struct TestWeb {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// `https://localhost:PORT`
    pub url: String,
    pub client: reqwest::Client,
    pub state: WebState,
    /// The server's certificate, for clients of a test's own making.
    pub cert_pem: String,
    running: Option<RunningWeb>,
}

/// The services a web server of `config` and `staff` is given, over a scratch store in `dir`.
pub async fn services(dir: &std::path::Path, config: &WebConfig, staff: &StaffConfig) -> Services {
    let spool = carepost_spool::testing::spool(dir).await;
    let (store, ring, blobs, audit) =
        (spool.store().clone(), spool.ring().clone(), spool.blobs().clone(), spool.audit().clone());
    let settings = carepost_intake::IntakeSettings {
        local_domains: Vec::new(),
        limits: Default::default(),
        notices_from: carepost_model::Address::parse("postmaster@localhost").unwrap(),
        learning: None,
    };
    let policy = carepost_policy::Policy::new(Default::default()).unwrap();
    let intake = Arc::new(carepost_intake::Intake::new(spool, Arc::new(policy), settings));
    let portal_settings = carepost_secure::portal::PortalSettings {
        public_url: "https://localhost".into(),
        organization: String::new(),
        expiry_secs: 86400,
        hostname: "localhost".into(),
    };
    let portal = carepost_secure::portal::Portal::new(store.clone(), ring.clone(), blobs.clone(), portal_settings);
    let guard_settings = carepost_guard::GuardSettings {
        failures_per_ip: 20,
        failures_per_account: 1000,
        window: std::time::Duration::from_secs(900),
        block_for: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let guard = Arc::new(carepost_guard::Guard::load(guard_settings, store.clone(), audit.clone()).await.unwrap());
    let policies = carepost_identity::Policies { staff: staff.policy(), portal: config.portal_policy() };
    let identity = carepost_identity::Identity::new(store.clone(), ring.clone(), policies);
    Services { store, ring, blobs, audit, intake, portal, guard, identity }
}

/// A client builder that trusts only `cert_pem`, reaches `localhost` at `addr` and follows no
/// redirects.
fn client_builder(cert_pem: &str, addr: SocketAddr) -> reqwest::ClientBuilder {
    web::trusting(cert_pem.as_bytes()).resolve("localhost", addr).redirect(reqwest::redirect::Policy::none())
}

impl TestWeb {
    pub async fn start(config: WebConfig) -> TestWeb {
        TestWeb::start_with(config, StaffConfig::default()).await
    }

    pub async fn start_with(config: WebConfig, staff: StaffConfig) -> TestWeb {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let tls = carepost_smtp::tls::server_config(&cert, &key).unwrap();
        let server = WebServer::bind("127.0.0.1:0".parse().unwrap(), &tls).await.unwrap();
        let addr = server.local_addr().unwrap();
        let url = format!("https://localhost:{}", addr.port());
        let services = services(dir.path(), &config, &staff).await;
        let state = WebContext::new(config, staff, url.clone(), services).unwrap();
        let running = server.start(carepost_web::router(state.clone())).unwrap();
        let cert_pem = certified.cert.pem();
        let client = client_builder(&cert_pem, addr).build().unwrap();
        TestWeb { dir, addr, url, client, state, cert_pem, running: Some(running) }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(std::time::Duration::from_secs(2)).await;
        }
    }

    /// A client like `client` whose connections come from `local` (another loopback
    /// address, to look like a different network).
    pub fn client_from(&self, local: std::net::IpAddr) -> reqwest::Client {
        client_builder(&self.cert_pem, self.addr).local_address(local).build().unwrap()
    }

    /// A browser on this server, with `client`.
    pub fn browser(&self) -> Browser {
        Browser::new(self.client.clone(), self.url.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}
