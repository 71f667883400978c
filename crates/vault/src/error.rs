use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("master key file {path}: {reason}")]
    MasterKeyFile { path: PathBuf, reason: String },
    #[error("master key from environment variable {var}: {reason}")]
    MasterKeyEnv { var: String, reason: String },
    #[error("master key command `{command}`: {reason}")]
    MasterKeyCommand { command: String, reason: String },
    #[error(
        "this master key ({found}) is not the one the data was sealed under ({expected}); \
         check vault.master_key_* in the config"
    )]
    WrongMasterKey { expected: String, found: String },
    #[error("no {purpose} secret of version {version} is loaded for tenant {scope}")]
    SecretNotLoaded { scope: String, purpose: &'static str, version: u32 },
    #[error("sealed data is damaged or was sealed under another key or object id")]
    Integrity,
    #[error("sealed data is not in a format this version of carepost knows")]
    Format,
    #[error("blob {key}: {source}")]
    Blob { key: String, source: std::io::Error },
    #[error("blob {0} does not exist")]
    BlobMissing(String),
    #[error("blob {0}: the copy read back differs from the source")]
    BlobCopyMismatch(String),
    #[error("blob store settings: {0}")]
    BlobSettings(String),
    #[error("invalid blob key '{0}'")]
    BlobKey(String),
    #[error("password: {0}")]
    Password(String),
    #[error("the system random number generator failed")]
    Random,
}
