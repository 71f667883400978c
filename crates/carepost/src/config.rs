//! The configuration file: one TOML file, every key with a default, unknown keys refused.
//!
//! `carepost.example.toml` (written by `carepost init`) is the commented list of every key
//! with its default; tests check that it parses to [`Config::default`] and that
//! docs/config.md describes every key.

use std::path::{Path, PathBuf};

pub use carepost_model::Listen;
pub use carepost_smtp::SmtpConfig;
pub use carepost_web::{StaffConfig, WebConfig};
use serde::{Deserialize, Serialize};

/// The commented default configuration, as `carepost init` writes it.
pub const EXAMPLE: &str = include_str!("../carepost.example.toml");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub hostname: String,
    pub log: LogConfig,
    pub vault: VaultConfig,
    pub store: StoreConfig,
    pub tls: TlsConfig,
    pub audit: AuditConfig,
    pub smtp: SmtpConfig,
    pub web: WebConfig,
    pub staff: StaffConfig,
    pub delivery: carepost_delivery::DeliveryConfig,
    pub policy: carepost_policy::PolicyConfig,
    pub secure: carepost_secure::config::SecureConfig,
    pub webhooks: carepost_delivery::webhooks::WebhooksConfig,
    pub blobs: BlobsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("carepost-data"),
            hostname: "localhost".into(),
            log: LogConfig::default(),
            vault: VaultConfig::default(),
            store: StoreConfig::default(),
            tls: TlsConfig::default(),
            audit: AuditConfig::default(),
            smtp: SmtpConfig::default(),
            web: WebConfig::default(),
            staff: StaffConfig::default(),
            delivery: carepost_delivery::DeliveryConfig::default(),
            policy: carepost_policy::PolicyConfig::default(),
            secure: carepost_secure::config::SecureConfig::default(),
            webhooks: carepost_delivery::webhooks::WebhooksConfig::default(),
            blobs: BlobsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MasterKeyKind {
    #[default]
    File,
    Env,
    Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultConfig {
    pub master_key_source: MasterKeyKind,
    pub master_key_file: PathBuf,
    pub master_key_env: String,
    pub master_key_command: String,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            master_key_source: MasterKeyKind::File,
            master_key_file: PathBuf::from("master.key"),
            master_key_env: "CAREPOST_MASTER_KEY".into(),
            master_key_command: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub database: PathBuf,
    pub blob_dir: PathBuf,
    /// A PostgreSQL URL several nodes share; empty: the SQLite file `database`.
    /// `CAREPOST_STORE_URL` in the environment takes precedence (a URL holds a password).
    pub url: String,
    /// Most database connections this process opens.
    pub pool_size: u32,
}

/// The environment variable that names the store in place of `store.url`.
pub const STORE_URL_ENV: &str = "CAREPOST_STORE_URL";

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            database: PathBuf::from("carepost.db"),
            blob_dir: PathBuf::from("blobs"),
            url: String::new(),
            pool_size: carepost_store::DEFAULT_POOL_SIZE,
        }
    }
}

/// An S3-compatible bucket for sealed blobs, shared by every node (docs/scale-out.md). With
/// `url` empty, blobs stay in the local directory `store.blob_dir`. Empty strings leave a
/// setting to the AWS environment variables.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    pub url: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub allow_http: bool,
}

impl std::fmt::Debug for BlobsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobsConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &if self.secret_access_key.is_empty() { "" } else { "(set)" })
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl BlobsConfig {
    /// The vault's settings for this bucket; an empty string is "not set".
    pub fn s3_settings(&self) -> carepost_vault::S3Settings {
        let set = |v: &String| Some(v.clone()).filter(|v| !v.is_empty());
        let mut settings = carepost_vault::S3Settings::new(self.url.clone());
        settings.endpoint = set(&self.endpoint);
        settings.region = set(&self.region);
        settings.access_key_id = set(&self.access_key_id);
        settings.secret_access_key = set(&self.secret_access_key);
        settings.allow_http = self.allow_http;
        settings
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub checkpoint_every: u32,
    pub anchor_file: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { checkpoint_every: 1000, anchor_file: PathBuf::from("audit-anchors.log") }
    }
}

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}{key}")]
    Invalid { path: PathBuf, line: usize, column: usize, key: String, message: String },
}

impl Config {
    /// Parses configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column, key) = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                    let snippet = text.get(span.clone()).unwrap_or("").trim();
                    let key = key_path(text, span.start, snippet);
                    (line, column, key)
                }
                None => (1, 1, String::new()),
            };
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                key: if key.is_empty() { String::new() } else { format!(" (key `{key}`)") },
                message: e.message().trim().to_owned(),
            }
        })
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text, path)
    }

    /// A path from the config, resolved against the data directory when relative.
    pub fn in_data_dir(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.data_dir.join(path) }
    }
}

/// The dotted key at byte `at`: the table header above it plus the key on its line.
fn key_path(text: &str, at: usize, snippet: &str) -> String {
    let before = &text[..at.min(text.len())];
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = match line.split_once('=') {
        Some((k, _)) => k.trim().trim_matches('"').to_owned(),
        None if !snippet.is_empty() && !snippet.contains(['\n', '=']) => snippet.trim_matches(['[', ']']).to_owned(),
        None => String::new(),
    };
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(['[', ']']).trim().to_owned());
    match (table, key.is_empty()) {
        (_, true) => String::new(),
        (Some(t), false) if !line.trim_start().starts_with('[') => format!("{t}.{key}"),
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_exactly_the_defaults() {
        assert_eq!(Config::parse(EXAMPLE, Path::new("example")).unwrap(), Config::default());
    }

    #[test]
    fn the_example_file_lists_every_key() {
        let defaults = toml::to_string(&Config::default()).unwrap();
        let mut table = String::new();
        for line in defaults.lines() {
            if let Some(t) = line.strip_prefix('[') {
                table = t.trim_end_matches(']').to_owned();
                assert!(EXAMPLE.contains(line), "example lacks table {line}");
            } else if let Some((key, _)) = line.split_once(" = ") {
                let in_table = EXAMPLE.split(&format!("[{table}]")).nth(1).unwrap_or(EXAMPLE);
                let in_table = if table.is_empty() {
                    EXAMPLE.split("\n[").next().unwrap()
                } else {
                    in_table.split("\n[").next().unwrap()
                };
                assert!(in_table.lines().any(|l| l.starts_with(&format!("{key} = "))), "example lacks {table}.{key}");
            }
        }
    }

    #[test]
    fn docs_describe_every_key() {
        let docs = include_str!("../../../docs/config.md");
        let defaults = toml::to_string(&Config::default()).unwrap();
        let mut table = String::new();
        for line in defaults.lines() {
            if let Some(t) = line.strip_prefix('[') {
                table = t.trim_end_matches(']').to_owned();
            } else if let Some((key, _)) = line.split_once(" = ") {
                let full = if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") };
                assert!(docs.contains(&format!("`{full}`")), "docs/config.md does not describe `{full}`");
            }
        }
    }

    #[test]
    fn the_blob_secret_stays_out_of_debug_output() {
        let text = "[blobs]\nurl = \"s3://bucket/p\"\nsecret_access_key = \"wJalr-secret\"\n";
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(config.blobs.s3_settings().secret_access_key.as_deref(), Some("wJalr-secret"));
        assert!(!format!("{config:?}").contains("wJalr-secret"));
        assert!(Config::parse("[blobs]\nbucket = \"x\"\n", Path::new("c.toml")).is_err());
    }

    #[test]
    fn unknown_keys_are_named_with_file_and_line() {
        let text = "hostname = \"mx.example.org\"\n\n[smtp]\nmx_listen = \"127.0.0.1:25\"\nmx_lisen = \"x\"\n";
        let e = Config::parse(text, Path::new("/etc/carepost.toml")).unwrap_err().to_string();
        assert!(e.starts_with("/etc/carepost.toml:5:1: unknown field `mx_lisen`"), "{e}");
        assert!(e.contains("(key `smtp.mx_lisen`)"), "{e}");
    }

    #[test]
    fn bad_values_are_named_with_file_and_line() {
        let e = Config::parse("[smtp]\nmx_listen = \"localhost\"\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:2:13:"), "{e}");
        assert!(e.contains("not an address:port") && e.contains("smtp.mx_listen"), "{e}");
        let e = Config::parse("[audit]\ncheckpoint_every = -3\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:2:") && e.contains("audit.checkpoint_every"), "{e}");
        let e = Config::parse("[nope]\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:1:") && e.contains("unknown field `nope`"), "{e}");
        let e = Config::parse("[smtp]\nmx_listen = \"\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(e.smtp.mx_listen, Listen(None));
    }
}
