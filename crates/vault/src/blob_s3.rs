//! Sealed blobs in an S3-compatible bucket, shared by every node of an installation.
//!
//! The bytes that reach the bucket are the sealed blobs [`crate::Sealer`] produced on this node:
//! the object store (and whoever runs it) never sees plaintext or keys. Objects are named
//! `prefix/kind/name`. A body larger than the multipart threshold goes up in parts, a few at a
//! time, and is aborted (its parts removed) if any part fails. Every request is bounded by
//! a timeout and a small number of retries, so a bucket that stops answering turns into an
//! error for the one message, not a hung queue.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use crate::VaultError;
use crate::blob::{BlobKey, BlobStore};

/// Bodies up to this size go up in one request.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// The size of each part above the threshold (S3 wants at least 5 MiB for all but the last).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one body in flight at once.
const PARALLEL_PARTS: usize = 4;
/// One request may take this long (a part of 8 MiB at about 1 Mbit/s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a failed request (5xx, throttling, connection errors), within this much time.
const MAX_RETRIES: usize = 4;
const RETRY_WINDOW: Duration = Duration::from_secs(120);
/// Error messages are cut here: they go to logs, and a server's reply can be long.
const MAX_MESSAGE: usize = 400;

/// Where the bucket is and how to sign in. Anything left `None` comes from the usual AWS
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT`, `AWS_ENDPOINT_URL`), then from the defaults of the AWS
/// client (region `us-east-1`, instance or container credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// An S3-compatible service's address (`https://minio.example.org:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain HTTP to the endpoint; refused unless the endpoint is a loopback address.
    pub allow_http: bool,
    pub multipart_threshold: usize,
    pub part_size: usize,
}

impl S3Settings {
    pub fn new(url: impl Into<String>) -> Self {
        S3Settings {
            url: url.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "(set)"))
            .field("allow_http", &self.allow_http)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix (without slashes at its ends).
pub fn parse_s3_url(url: &str) -> Result<(String, String), VaultError> {
    let bad = |why: &str| VaultError::BlobSettings(format!("url '{url}': {why}"));
    let rest = url.strip_prefix("s3://").ok_or_else(|| bad("must start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3's own rules for bucket names, which also keep the name out of URL syntax.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(bad("the bucket name must be 3 to 63 lowercase letters, digits, '-' or '.'"));
    }
    let prefix = prefix.trim_matches('/');
    let segments_ok = prefix.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains(['?', '#']));
    if !prefix.is_empty() && !segments_ok {
        return Err(bad("the prefix must be plain path segments"));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// Whether `endpoint` (`http://host:port/...`) names this machine.
fn is_loopback_endpoint(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map(|(_, r)| r).unwrap_or(endpoint);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Blobs in one bucket under one prefix.
#[derive(Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: Option<Path>,
    multipart_threshold: usize,
    part_size: usize,
}

impl fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3BlobStore({})", self.location())
    }
}

impl S3BlobStore {
    /// Builds the client; no request is made (see [`S3BlobStore::check`]).
    pub fn open(settings: &S3Settings) -> Result<Self, VaultError> {
        let (bucket, prefix) = parse_s3_url(&settings.url)?;
        // The same variables the AWS client reads, so the HTTP check below sees its endpoint.
        let from_env = || ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"].into_iter().find_map(|v| std::env::var(v).ok());
        let endpoint = settings.endpoint.clone().filter(|e| !e.is_empty()).or_else(from_env);
        if let Some(endpoint) = &endpoint {
            let http = endpoint.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"));
            if http && !settings.allow_http {
                return Err(VaultError::BlobSettings(format!(
                    "endpoint {endpoint} is plain HTTP; use https, or allow_http for a loopback test server"
                )));
            }
            if settings.allow_http && !is_loopback_endpoint(endpoint) {
                return Err(VaultError::BlobSettings(format!(
                    "allow_http is only for an endpoint on this machine (127.0.0.1, ::1, localhost), not {endpoint}"
                )));
            }
        } else if settings.allow_http {
            return Err(VaultError::BlobSettings("allow_http needs a loopback endpoint".into()));
        }
        if settings.part_size < 5 * 1024 * 1024 || settings.multipart_threshold < settings.part_size {
            return Err(VaultError::BlobSettings(
                "parts must be at least 5 MiB and the multipart threshold at least one part".into(),
            ));
        }
        // The environment first, then what the configuration says explicitly.
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = settings.region.as_ref().filter(|r| !r.is_empty()) {
            builder = builder.with_region(region);
        }
        if let Some(id) = settings.access_key_id.as_ref().filter(|r| !r.is_empty()) {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = settings.secret_access_key.as_ref().filter(|r| !r.is_empty()) {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .with_client_options(
                ClientOptions::new().with_timeout(REQUEST_TIMEOUT).with_connect_timeout(CONNECT_TIMEOUT),
            )
            // After the client options, which carry it too; and AWS_ALLOW_HTTP in the
            // environment must not undo the check above.
            .with_allow_http(settings.allow_http)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(10),
                    base: 2.0,
                },
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_WINDOW,
            })
            .build()
            .map_err(|e| VaultError::BlobSettings(scrub(&e.to_string())))?;
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(Path::parse(&prefix).map_err(|e| VaultError::BlobSettings(scrub(&e.to_string())))?)
        };
        Ok(S3BlobStore {
            store: Arc::new(store),
            bucket,
            prefix,
            multipart_threshold: settings.multipart_threshold,
            part_size: settings.part_size,
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn location(&self) -> String {
        match &self.prefix {
            Some(p) => format!("s3://{}/{p}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }

    /// One listing request: the bucket exists and these credentials may read it. Done at start
    /// so that a wrong setting stops the server instead of failing the first message.
    pub async fn check(&self) -> Result<(), VaultError> {
        self.store.list_with_delimiter(self.prefix.as_ref()).await.map(drop).map_err(|e| map_error(&self.location(), e))
    }

    fn path_of(&self, key: &BlobKey) -> Path {
        let parts = [key.kind(), key.name()];
        match &self.prefix {
            Some(prefix) => prefix.clone().join(parts[0]).join(parts[1]),
            None => Path::from_iter(parts),
        }
    }

    fn key_of(&self, path: &Path) -> Option<BlobKey> {
        let mut parts: Vec<_> = match &self.prefix {
            Some(prefix) => path.prefix_match(prefix)?.collect(),
            None => path.parts().collect(),
        };
        let name = parts.pop()?;
        let kind = parts.pop()?;
        if !parts.is_empty() {
            return None;
        }
        BlobKey::new(kind.as_ref(), name.as_ref()).ok()
    }

    async fn put_in_parts(&self, path: &Path, mut data: Bytes) -> Result<(), object_store::Error> {
        let upload = self.store.put_multipart(path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        while !data.is_empty() {
            if let Err(e) = writer.wait_for_capacity(PARALLEL_PARTS).await {
                // Best effort: a part that cannot be removed now is removed by the bucket's
                // lifecycle rule for incomplete uploads (docs/scale-out.md).
                let _ = writer.abort().await;
                return Err(e);
            }
            let part = data.split_to(data.len().min(self.part_size));
            writer.put(part);
        }
        writer.finish().await.map(drop)
    }
}

/// An object store error as a [`VaultError`]: a missing object is [`VaultError::BlobMissing`];
/// anything else keeps the store's explanation without query strings (where presigned
/// credentials would be), cut to a readable length. Keys are ids, never addresses or subjects.
fn map_error(key: &str, e: object_store::Error) -> VaultError {
    match e {
        object_store::Error::NotFound { .. } => VaultError::BlobMissing(key.to_owned()),
        other => VaultError::Blob { key: key.to_owned(), source: std::io::Error::other(scrub(&other.to_string())) },
    }
}

/// Removes query strings from URLs in `text` and bounds its length.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE + 3));
    let mut in_query = false;
    for c in text.chars() {
        if c == '?' {
            in_query = true;
            continue;
        }
        if in_query && !c.is_whitespace() {
            continue;
        }
        in_query = false;
        if out.len() >= MAX_MESSAGE {
            out.push_str("...");
            break;
        }
        out.push(c);
    }
    out
}

impl BlobStore for S3BlobStore {
    fn put<'a>(&'a self, key: &'a BlobKey, data: Bytes) -> BoxFuture<'a, Result<(), VaultError>> {
        Box::pin(async move {
            let path = self.path_of(key);
            let stored = if data.len() > self.multipart_threshold {
                self.put_in_parts(&path, data).await
            } else {
                self.store.put(&path, PutPayload::from_bytes(data)).await.map(drop)
            };
            stored.map_err(|e| map_error(&key.to_string(), e))
        })
    }

    fn get<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<Bytes, VaultError>> {
        Box::pin(async move {
            let path = self.path_of(key);
            let got = match self.store.get(&path).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            };
            got.map_err(|e| map_error(&key.to_string(), e))
        })
    }

    fn delete<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<(), VaultError>> {
        Box::pin(async move {
            match self.store.delete(&self.path_of(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(map_error(&key.to_string(), e)),
            }
        })
    }

    fn list(&self) -> BoxStream<'_, Result<BlobKey, VaultError>> {
        let location = self.location();
        self.store
            .list(self.prefix.as_ref())
            .filter_map(move |meta| {
                let item = match meta {
                    Ok(meta) => self.key_of(&meta.location).map(Ok),
                    Err(e) => Some(Err(map_error(&location, e))),
                };
                futures::future::ready(item)
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_s3_url("s3://carepost-blobs").unwrap(), ("carepost-blobs".into(), "".into()));
        assert_eq!(parse_s3_url("s3://b12/a/b/").unwrap(), ("b12".into(), "a/b".into()));
        for bad in ["https://x/y", "s3://", "s3://UPPER", "s3://a", "s3://b12/../x", "s3://b12/a//b", "s3://b12/a?x=1"]
        {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in ["http://127.0.0.1:9000", "http://localhost:9000/", "http://[::1]:9000", "http://127.1.2.3"] {
            assert!(is_loopback_endpoint(ok), "{ok}");
        }
        for bad in
            ["http://10.0.0.1:9000", "http://minio.example.org", "http://127.0.0.1.example.org", "http://[2001:db8::1]"]
        {
            assert!(!is_loopback_endpoint(bad), "{bad}");
        }
        let mut s = S3Settings::new("s3://bucket");
        s.endpoint = Some("http://minio.example.org:9000".into());
        assert!(S3BlobStore::open(&s).unwrap_err().to_string().contains("plain HTTP"));
        s.allow_http = true;
        assert!(S3BlobStore::open(&s).unwrap_err().to_string().contains("only for an endpoint on this machine"));
        s.endpoint = Some("http://127.0.0.1:9000".into());
        S3BlobStore::open(&s).unwrap();
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let mut s = S3Settings::new("s3://bucket/p");
        s.secret_access_key = Some("wJalrXUtnFEMI-very-secret".into());
        assert!(!format!("{s:?}").contains("very-secret"));
        let text = scrub("Error performing PUT http://h/b/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA in 1s - boom");
        assert_eq!(text, "Error performing PUT http://h/b/k in 1s - boom");
        assert!(scrub(&"x".repeat(5000)).len() <= MAX_MESSAGE + 3);
    }

    #[test]
    fn keys_round_trip_through_paths() {
        let mut s = S3Settings::new("s3://bucket/tenant-a/blobs");
        s.endpoint = Some("https://s3.example.org".into());
        let store = S3BlobStore::open(&s).unwrap();
        let key = BlobKey::new("msg", "01ABC").unwrap();
        let path = store.path_of(&key);
        assert_eq!(path.as_ref(), "tenant-a/blobs/msg/01ABC");
        assert_eq!(store.key_of(&path), Some(key));
        assert_eq!(store.key_of(&Path::from("tenant-a/blobs/stray")), None);
        assert_eq!(store.key_of(&Path::from("other/msg/01ABC")), None);
    }
}
