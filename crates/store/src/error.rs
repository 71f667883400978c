#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Vault(#[from] carepost_vault::VaultError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// Copying one store into another ([`Store::copy_into`](crate::Store::copy_into)) found
    /// the target unfit or the copy different from its source.
    #[error("copying the store: {0}")]
    Copy(String),
    #[error("the store is shutting down")]
    Closed,
}
