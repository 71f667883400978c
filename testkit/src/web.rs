//! An HTTPS client for carepost's pages and API as a browser or an integration uses them:
//! cookies kept by name, redirects not followed (tests look at `Location`), forms sent
//! URL-encoded. Needs the `http` feature.

use crate::Server;

/// A browser: one cookie jar, no redirects followed. A clone is a second tab that goes its
/// own way from here (its own copy of the cookies).
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    base: String,
    user_agent: Option<String>,
    cookies: Vec<(String, String)>,
}

/// One answer, read whole.
pub struct Page {
    pub status: u16,
    /// The `Location` header, or empty.
    pub location: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    /// The value of the page's `csrf` form field.
    pub fn csrf(&self) -> String {
        let at =
            self.text.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field in {}", self.text)) + 19;
        self.text[at..at + self.text[at..].find('"').expect("the csrf value ends")].to_owned()
    }

    /// The header `name`, or empty.
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

impl Browser {
    /// A browser using `client` (made from [`unchecked`] or [`trusting`], with no redirects
    /// followed) against `base` (`https://host:port`).
    pub fn new(client: reqwest::Client, base: impl Into<String>) -> Browser {
        Browser { client, base: base.into(), user_agent: None, cookies: Vec::new() }
    }

    /// Sends `user_agent` with every request (carepost describes devices by it).
    pub fn with_user_agent(mut self, user_agent: &str) -> Browser {
        self.user_agent = Some(user_agent.to_owned());
        self
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `path` on this browser's server; an absolute `https://` URL stays as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("https://") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    /// The cookies this browser holds, as (name, value).
    pub fn cookies(&self) -> &[(String, String)] {
        &self.cookies
    }

    /// Sets a cookie as if the server had (a browser that kept an old one).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(n, _)| n != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Sends `request` with this browser's cookies and keeps the cookies it sets.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request.header("cookie", self.cookie_header());
        if let Some(agent) = &self.user_agent {
            request = request.header("user-agent", agent);
        }
        let response = request.send().await.expect("the request is answered");
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().expect("an ASCII cookie").split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("a name=value cookie");
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = response.text().await.unwrap_or_default();
        Page { status, location, headers, text }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(self.url(path));
        self.send(request).await
    }

    /// Posts `fields` as an HTML form would.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_encoded(path, form(fields)).await
    }

    /// Posts an already URL-encoded form body, as it is (forged or odd forms).
    pub async fn post_encoded(&mut self, path: &str, body: String) -> Page {
        let request =
            self.client.post(self.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body);
        self.send(request).await
    }
}

/// `fields` URL-encoded as a form body (`application/x-www-form-urlencoded`).
pub fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// A client builder for a test server whose throw-away certificate it does not check (the
/// server made it itself), following no redirects.
pub fn unchecked() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_danger_accept_invalid_certs(true).redirect(reqwest::redirect::Policy::none())
}

/// A client builder that trusts only the certificate `cert_pem`.
pub fn trusting(cert_pem: &[u8]) -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(cert_pem).expect("a PEM certificate")])
}

impl Server {
    /// A client trusting only the certificate this server made for itself, and the base URL
    /// of its HTTPS listener (`https://127.0.0.1:PORT`).
    pub fn https_client(&self) -> (reqwest::Client, String) {
        let cert = std::fs::read(self.data_dir.join("tls/cert.pem")).expect("the server's certificate");
        let client = trusting(&cert).build().expect("an HTTPS client");
        (client, format!("https://127.0.0.1:{}", self.addr("https").port()))
    }
}
