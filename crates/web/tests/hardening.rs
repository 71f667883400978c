//! Security headers, error pages and problem details, and the request rate limit, over real
//! HTTPS.

mod support;

use carepost_web::WebConfig;
use support::TestWeb;

fn assert_security_headers(r: &reqwest::Response) {
    let h = r.headers();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(h["strict-transport-security"], "max-age=31536000; includeSubDomains");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("permissions-policy"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let web = TestWeb::start(WebConfig::default()).await;
    let css = web.client.get(web.url("/static/style.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_security_headers(&css);
    let missing = web.client.get(web.url("/nothing/here")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_security_headers(&missing);
    assert_eq!(missing.headers()["cache-control"], "no-store");
    web.stop().await;
}

#[tokio::test]
async fn hsts_follows_the_configuration() {
    let config = WebConfig {
        hsts_include_subdomains: false,
        hsts_max_age: carepost_model::Interval::secs(86400),
        ..WebConfig::default()
    };
    let web = TestWeb::start(config).await;
    for path in ["/static/style.css", "/nothing/here", "/api/v3/nothing"] {
        let r = web.client.get(web.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["strict-transport-security"], "max-age=86400", "{path}");
    }
    web.stop().await;
}

#[tokio::test]
async fn error_pages_reveal_nothing() {
    let web = TestWeb::start(WebConfig::default()).await;
    let page = web.client.get(web.url("/p/../../etc/passwd")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = page.text().await.unwrap();
    assert!(body.contains("There is nothing here"), "{body}");
    for leak in ["axum", "hyper", "carepost_", ".rs", "panicked", "sqlx"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }

    // API clients get RFC 9457 problem details instead of a page.
    let api = web.client.get(web.url("/api/v3/nothing")).send().await.unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&api.text().await.unwrap()).unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["title"], "Not Found");

    // axum's own answers (wrong method here) are replaced by the same kind of page.
    let wrong = web.client.delete(web.url("/static/style.css")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert!(wrong.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(wrong.text().await.unwrap().contains("cannot be used that way"));
    web.stop().await;
}

#[tokio::test]
async fn too_many_requests_from_one_address_get_429() {
    let web = TestWeb::start(WebConfig { requests_per_minute: 5, ..WebConfig::default() }).await;
    for _ in 0..5 {
        assert_eq!(web.client.get(web.url("/static/style.css")).send().await.unwrap().status(), 200);
    }
    let limited = web.client.get(web.url("/static/style.css")).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    web.stop().await;
}
