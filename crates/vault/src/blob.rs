//! Sealed blob storage: where message bodies and attachments live, always already sealed.
//!
//! [`BlobStore`] is the seam for scale-out: one node keeps blobs in a local directory
//! ([`LocalDirBlobStore`]); several nodes share an S3-compatible bucket behind the same trait.
//! A `put` that returns `Ok` is durable: the local store fsyncs the file and its directory.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::VaultError;
use crate::master::sync_dir;

/// A blob's name: `kind/name`, each part of ASCII letters, digits, `-` and `_`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey {
    kind: String,
    name: String,
}

impl BlobKey {
    pub fn new(kind: &str, name: &str) -> Result<Self, VaultError> {
        let ok = |s: &str| {
            !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if ok(kind) && ok(name) {
            Ok(BlobKey { kind: kind.to_owned(), name: name.to_owned() })
        } else {
            Err(VaultError::BlobKey(format!("{kind}/{name}")))
        }
    }

    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let (kind, name) = text.split_once('/').ok_or_else(|| VaultError::BlobKey(text.to_owned()))?;
        BlobKey::new(kind, name)
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({self})")
    }
}

/// Durable storage of sealed bytes. Implementations never see plaintext.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `data` under `key`, replacing any previous blob; durable when it returns `Ok`.
    fn put<'a>(&'a self, key: &'a BlobKey, data: Bytes) -> BoxFuture<'a, Result<(), VaultError>>;
    fn get<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<Bytes, VaultError>>;
    /// Removes a blob; removing a missing blob is not an error.
    fn delete<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<(), VaultError>>;
}

/// Blobs as files under one directory, fanned out by the last two characters of the name
/// (ids end in random characters) so no directory grows too large.
#[derive(Debug, Clone)]
pub struct LocalDirBlobStore {
    root: Arc<PathBuf>,
}

impl LocalDirBlobStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, VaultError> {
        let root = root.into();
        create_private_dir(&root).map_err(|source| VaultError::Blob { key: root.display().to_string(), source })?;
        Ok(LocalDirBlobStore { root: Arc::new(root) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &BlobKey) -> (PathBuf, PathBuf) {
        let fan = &key.name[key.name.len().saturating_sub(2)..];
        let dir = self.root.join(&key.kind).join(fan);
        let file = dir.join(&key.name);
        (dir, file)
    }
}

/// Creates a directory (and parents) readable by the owner only.
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

fn blocking<T: Send + 'static>(
    key: &BlobKey,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> BoxFuture<'static, Result<T, VaultError>> {
    let name = key.to_string();
    Box::pin(async move {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(VaultError::BlobMissing(name)),
            Ok(Err(source)) => Err(VaultError::Blob { key: name, source }),
            Err(join) => Err(VaultError::Blob { key: name, source: std::io::Error::other(join.to_string()) }),
        }
    })
}

impl BlobStore for LocalDirBlobStore {
    fn put<'a>(&'a self, key: &'a BlobKey, data: Bytes) -> BoxFuture<'a, Result<(), VaultError>> {
        let (dir, file) = self.path_of(key);
        blocking(key, move || {
            let new_dir = !dir.exists();
            if new_dir {
                create_private_dir(&dir)?;
            }
            let tmp = dir.join(format!(".{}.tmp", file.file_name().and_then(|n| n.to_str()).unwrap_or("blob")));
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &file)?;
            // The rename is durable only once the directory entry is.
            sync_dir(&dir)?;
            if new_dir && let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<Bytes, VaultError>> {
        let (_, file) = self.path_of(key);
        blocking(key, move || std::fs::read(file).map(Bytes::from))
    }

    fn delete<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<(), VaultError>> {
        let (_, file) = self.path_of(key);
        blocking(key, move || match std::fs::remove_file(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirBlobStore::open(dir.path().join("blobs")).unwrap();
        let key = BlobKey::new("msg", "01ABCDEF").unwrap();
        store.put(&key, Bytes::from_static(b"sealed")).await.unwrap();
        assert_eq!(&store.get(&key).await.unwrap()[..], b"sealed");
        store.put(&key, Bytes::from_static(b"again")).await.unwrap();
        assert_eq!(&store.get(&key).await.unwrap()[..], b"again");
        store.delete(&key).await.unwrap();
        assert!(matches!(store.get(&key).await, Err(VaultError::BlobMissing(_))));
        store.delete(&key).await.unwrap();
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        for bad in ["../x", "msg/../../etc", "msg/a/b", "msg/", "/x", "msg/.hidden"] {
            assert!(BlobKey::parse(bad).is_err(), "{bad}");
        }
    }
}
