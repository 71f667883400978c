//! A small W3C WebDriver client for Debian's ChromeDriver driving headless Chromium: enough to
//! open pages, fill and submit forms, click links, upload and download files, and save a
//! screenshot of every page a test visits. Fails (never skips) when Chromium or ChromeDriver
//! is missing: scripts/test.sh installs both.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One ChromeDriver process and one browser session in it, at a phone's screen size.
pub struct Chrome {
    driver: Child,
    http: reqwest::Client,
    session: String,
    /// Where downloads land.
    pub downloads: PathBuf,
    /// Where screenshots are saved, numbered in the order they were taken.
    pub screenshots: PathBuf,
    shots_taken: usize,
    _profile: tempfile::TempDir,
}

fn find(candidates: &[&str], package: &str) -> String {
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("{package} is not installed (apt-get install {package}; scripts/test.sh does)"))
        .to_string()
}

/// Sends a WebDriver command (a JSON body, or none) and reads its JSON answer.
async fn json_of(request: reqwest::RequestBuilder, body: Option<&Value>) -> Value {
    let request = match body {
        Some(body) => request.header("content-type", "application/json").body(body.to_string()),
        None => request,
    };
    let bytes = request.send().await.expect("chromedriver answers").bytes().await.expect("chromedriver answers");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("chromedriver answered {e}: {}", String::from_utf8_lossy(&bytes)))
}

impl Chrome {
    /// Starts ChromeDriver on a free loopback port and opens a headless Chromium session that
    /// accepts carepost's self-signed development certificate.
    pub async fn start(downloads: &Path, screenshots: &Path) -> Chrome {
        let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"], "chromium");
        let chromedriver = find(&["/usr/bin/chromedriver"], "chromium-driver");
        std::fs::create_dir_all(downloads).unwrap();
        std::fs::create_dir_all(screenshots).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its own process group, so that dropping it also ends the Chromium it started.
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=390,844", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.path().display())],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let body = json_of(http.post(format!("http://{addr}/session")), Some(&capabilities)).await;
        let session =
            body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {body}")).to_owned();
        Chrome {
            driver,
            http,
            session: format!("http://{addr}/session/{session}"),
            downloads: downloads.to_owned(),
            screenshots: screenshots.to_owned(),
            shots_taken: 0,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let response = self.raw(method, path, body).await;
        if let Some(error) = response["value"].get("error") {
            panic!("webdriver {path}: {error} {}", response["value"]["message"]);
        }
        response["value"].clone()
    }

    /// A command's whole answer, errors included.
    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        json_of(self.http.request(method, format!("{}{path}", self.session)), body.as_ref()).await
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        let body = self.element("body").await;
        self.call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first element matching a CSS selector; fails the test when there is none.
    pub async fn element(&self, css: &str) -> String {
        let value =
            self.call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css }))).await;
        value[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_owned()
    }

    /// Types `text` into the element matching `css`. For a file input, `text` is a path.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({ "text": text }))).await;
    }

    /// Clicks the element matching `css`, for clicks that stay on the page (a download).
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    /// Clicks the link or button matching `css` and waits (bounded) until the page it opens
    /// has replaced this one and finished loading. A click may return before the navigation
    /// it starts, so the old page's body going stale is the sign.
    pub async fn follow(&self, css: &str) {
        let old_body = self.element("body").await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.raw(reqwest::Method::GET, &format!("/element/{old_body}/name"), None).await;
            if answer["value"].get("error").is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "clicking {css} opened no new page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let state = self
                .raw(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({ "script": "return document.readyState", "args": [] })),
                )
                .await;
            if state["value"] == "complete" {
                break;
            }
            assert!(Instant::now() < deadline, "the page opened by {css} did not finish loading");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot of the page as `NN-name.png` and returns its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "a real screenshot of {name}");
        self.shots_taken += 1;
        let path = self.screenshots.join(format!("{:02}-{name}.png", self.shots_taken));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits (bounded) for a finished download named `name` and returns its bytes.
    pub fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.join(name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Chromium writes `name.crdownload` and renames it when the download is complete.
            if path.exists() {
                return std::fs::read(&path).unwrap();
            }
            assert!(Instant::now() < deadline, "{name} was not downloaded into {}", self.downloads.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
