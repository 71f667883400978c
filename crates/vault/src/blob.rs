//! Sealed blob storage: where message bodies and attachments live, always already sealed.
//!
//! [`BlobStore`] is the seam for scale-out: one node keeps blobs in a local directory
//! ([`LocalDirBlobStore`]); several nodes share an S3-compatible bucket behind the same trait
//! (`S3BlobStore`, with the `s3` feature). A `put` that returns `Ok` is durable: the local store
//! fsyncs the file and its directory, S3 acknowledges only stored objects.
//!
//! [`copy_blobs`] moves an installation's blobs from one store to another as they are, sealed.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

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
    /// Every blob's key, in no particular order. What is not a blob (a half-written temporary
    /// file, a foreign object under the same prefix) is left out.
    fn list(&self) -> BoxStream<'_, Result<BlobKey, VaultError>>;
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

    fn list(&self) -> BoxStream<'_, Result<BlobKey, VaultError>> {
        let root = self.root.clone();
        let name = root.display().to_string();
        let walk = async move {
            match tokio::task::spawn_blocking(move || list_dir(&root)).await {
                Ok(Ok(keys)) => Ok(stream::iter(keys.into_iter().map(Ok))),
                Ok(Err(source)) => Err(VaultError::Blob { key: name, source }),
                Err(join) => Err(VaultError::Blob { key: name, source: std::io::Error::other(join.to_string()) }),
            }
        };
        stream::once(walk).try_flatten().boxed()
    }
}

/// The keys under `root/kind/fan/name`; anything else (temporary files, strays) is skipped.
fn list_dir(root: &Path) -> std::io::Result<Vec<BlobKey>> {
    fn names(dir: &Path, want_dirs: bool) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() == want_dirs
                && let Ok(name) = entry.file_name().into_string()
            {
                out.push((name, entry.path()));
            }
        }
        Ok(out)
    }
    let mut keys = Vec::new();
    for (kind, kind_dir) in names(root, true)? {
        for (_, fan_dir) in names(&kind_dir, true)? {
            for (name, _) in names(&fan_dir, false)? {
                if let Ok(key) = BlobKey::new(&kind, &name) {
                    keys.push(key);
                }
            }
        }
    }
    Ok(keys)
}

/// Where [`copy_blobs`] is, after each blob.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyProgress {
    /// Blobs handled so far (copied, already present or gone) out of `total`.
    pub done: u64,
    pub total: u64,
    /// Sealed bytes handled so far.
    pub bytes: u64,
}

/// What [`copy_blobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Blobs written to the target and read back with the source's hash.
    pub copied: u64,
    /// Blobs the target already held with the same hash (an earlier, interrupted copy).
    pub already_present: u64,
    /// Blobs listed in the source but deleted before they could be read (a server still
    /// running on the source expired them).
    pub vanished: u64,
    /// Sealed bytes of the copied and already present blobs.
    pub bytes: u64,
}

/// How many blobs are in flight at once: enough to hide an object store's latency, few
/// enough that large bodies do not pile up in memory.
const COPY_PARALLEL: usize = 4;

enum Copied {
    Written(u64),
    Present(u64),
    Vanished,
}

/// Copies every blob of `from` into `to` without opening it: the bytes stay sealed under the
/// same data keys, so the database rows that hold those keys stay valid for either store.
/// Each copy is read back and compared with the source by SHA-256; a blob the target already
/// holds with the same hash is not written again, so an interrupted copy can simply be rerun.
/// The source is only read. `progress` is called after each blob.
pub async fn copy_blobs(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    progress: &mut (dyn FnMut(CopyProgress) + Send),
) -> Result<CopyReport, VaultError> {
    // The whole list first, so that progress has a total; a key costs about a hundred bytes.
    let keys: Vec<BlobKey> = from.list().try_collect().await?;
    let total = keys.len() as u64;
    let mut report = CopyReport::default();
    let mut done = CopyProgress { done: 0, total, bytes: 0 };
    progress(done);
    let mut copies = stream::iter(keys.iter().map(|key| copy_one(from, to, key))).buffer_unordered(COPY_PARALLEL);
    while let Some(copied) = copies.next().await {
        match copied? {
            Copied::Written(len) => {
                report.copied += 1;
                report.bytes += len;
                done.bytes += len;
            }
            Copied::Present(len) => {
                report.already_present += 1;
                report.bytes += len;
                done.bytes += len;
            }
            Copied::Vanished => report.vanished += 1,
        }
        done.done += 1;
        progress(done);
    }
    Ok(report)
}

async fn copy_one(from: &dyn BlobStore, to: &dyn BlobStore, key: &BlobKey) -> Result<Copied, VaultError> {
    let data = match from.get(key).await {
        Ok(data) => data,
        Err(VaultError::BlobMissing(_)) => return Ok(Copied::Vanished),
        Err(e) => return Err(e),
    };
    let len = data.len() as u64;
    let want = sha256(&data);
    if let Ok(existing) = to.get(key).await
        && sha256(&existing) == want
    {
        return Ok(Copied::Present(len));
    }
    to.put(key, data).await?;
    let back = to.get(key).await?;
    if sha256(&back) != want {
        return Err(VaultError::BlobCopyMismatch(key.to_string()));
    }
    Ok(Copied::Written(len))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
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

    #[tokio::test]
    async fn list_names_blobs_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirBlobStore::open(dir.path().join("blobs")).unwrap();
        let mut want = Vec::new();
        for (kind, name) in [("msg", "01AAAA"), ("msg", "01BBBB"), ("att", "01CCCC_1")] {
            let key = BlobKey::new(kind, name).unwrap();
            store.put(&key, Bytes::from_static(b"sealed")).await.unwrap();
            want.push(key);
        }
        // A temporary file left by a crash mid-put, and a stray at the top.
        std::fs::write(store.root().join("msg/BB/.01BBBB.tmp"), b"half").unwrap();
        std::fs::write(store.root().join("README"), b"stray").unwrap();
        let mut got: Vec<BlobKey> = store.list().try_collect().await.unwrap();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn copy_verifies_and_can_be_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let from = LocalDirBlobStore::open(dir.path().join("a")).unwrap();
        let to = LocalDirBlobStore::open(dir.path().join("b")).unwrap();
        for i in 0..10 {
            let key = BlobKey::new("msg", &format!("01K{i:03}")).unwrap();
            from.put(&key, Bytes::from(vec![i as u8; 1000 + i])).await.unwrap();
        }
        // One blob already copied by an interrupted run, one copied wrongly.
        let first = BlobKey::new("msg", "01K000").unwrap();
        to.put(&first, from.get(&first).await.unwrap()).await.unwrap();
        let damaged = BlobKey::new("msg", "01K001").unwrap();
        to.put(&damaged, Bytes::from_static(b"damaged")).await.unwrap();
        let mut seen = Vec::new();
        let report = copy_blobs(&from, &to, &mut |p| seen.push(p)).await.unwrap();
        assert_eq!(report.copied, 9);
        assert_eq!(report.already_present, 1);
        assert_eq!(report.vanished, 0);
        assert_eq!(report.bytes, (0..10).map(|i| 1000 + i).sum::<u64>());
        assert_eq!(seen.first(), Some(&CopyProgress { done: 0, total: 10, bytes: 0 }));
        assert_eq!(seen.last(), Some(&CopyProgress { done: 10, total: 10, bytes: report.bytes }));
        for key in from.list().try_collect::<Vec<_>>().await.unwrap() {
            assert_eq!(from.get(&key).await.unwrap(), to.get(&key).await.unwrap(), "{key}");
        }
        let again = copy_blobs(&from, &to, &mut |_| {}).await.unwrap();
        assert_eq!((again.copied, again.already_present), (0, 10));
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        for bad in ["../x", "msg/../../etc", "msg/a/b", "msg/", "/x", "msg/.hidden"] {
            assert!(BlobKey::parse(bad).is_err(), "{bad}");
        }
    }
}
