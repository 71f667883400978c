//! The S3 blob store against a real S3-compatible server (moto, started by the testkit), seen
//! both through carepost's store and through boto3 in the testkit.

use bytes::Bytes;
use carepost_testkit::s3;
use carepost_vault::{
    BlobKey, BlobStore, LocalDirBlobStore, S3BlobStore, S3Settings, VaultError, copy_blobs, open, seal,
};
use futures::TryStreamExt;

const MIB: usize = 1024 * 1024;

fn settings(bucket: &str, prefix: &str) -> S3Settings {
    let server = s3::server();
    let mut s = S3Settings::new(format!("s3://{bucket}/{prefix}"));
    s.endpoint = Some(server.endpoint.clone());
    s.region = Some(server.region.into());
    s.access_key_id = Some(server.access_key_id.into());
    s.secret_access_key = Some(server.secret_access_key.into());
    s.allow_http = true;
    s
}

fn store(hint: &str) -> (String, S3BlobStore) {
    let bucket = s3::server().new_bucket(hint);
    let store = S3BlobStore::open(&settings(&bucket, "node")).unwrap();
    (bucket, store)
}

fn key(name: &str) -> BlobKey {
    BlobKey::new("msg", name).unwrap()
}

#[tokio::test]
async fn put_get_overwrite_delete() {
    let (bucket, store) = store("basic");
    store.check().await.unwrap();
    let k = key("01AAAA");
    store.put(&k, Bytes::from_static(b"first")).await.unwrap();
    assert_eq!(&store.get(&k).await.unwrap()[..], b"first");
    store.put(&k, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(&store.get(&k).await.unwrap()[..], b"second");
    let held = s3::server().objects(&bucket);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].key, "node/msg/01AAAA");
    assert_eq!(held[0].body, b"second");
    store.delete(&k).await.unwrap();
    assert!(s3::server().objects(&bucket).is_empty());
    match store.get(&k).await {
        Err(VaultError::BlobMissing(name)) => assert_eq!(name, "msg/01AAAA"),
        other => panic!("{other:?}"),
    }
    // Deleting what is not there is not an error: a retried expiry sweep must not fail.
    store.delete(&k).await.unwrap();
    store.delete(&key("01NEVER")).await.unwrap();
}

#[tokio::test]
async fn large_bodies_go_up_in_parts() {
    let (bucket, _) = store("multipart");
    let mut s = settings(&bucket, "node");
    s.multipart_threshold = 5 * MIB;
    s.part_size = 5 * MIB;
    let store = S3BlobStore::open(&s).unwrap();
    let big: Vec<u8> = (0..12 * MIB).map(|i| (i % 251) as u8).collect();
    let exact = vec![7u8; 5 * MIB];
    store.put(&key("01BIG"), Bytes::from(big.clone())).await.unwrap();
    store.put(&key("01EXACT"), Bytes::from(exact.clone())).await.unwrap();
    assert_eq!(store.get(&key("01BIG")).await.unwrap(), big);
    assert_eq!(store.get(&key("01EXACT")).await.unwrap(), exact);
    let mut held = s3::server().objects(&bucket);
    held.sort_by(|a, b| a.key.cmp(&b.key));
    // A multipart object's ETag ends in the number of parts: 5 + 5 + 2 MiB.
    assert_eq!(held[0].key, "node/msg/01BIG");
    assert!(held[0].etag.ends_with("-3"), "{}", held[0].etag);
    assert_eq!(held[0].body, big);
    // At the threshold: one plain PUT.
    assert!(!held[1].etag.contains('-'), "{}", held[1].etag);
    assert_eq!(s3::server().pending_uploads(&bucket), 0);
}

#[tokio::test]
async fn prefixes_keep_installations_apart_and_list_sees_only_blobs() {
    let (bucket, a) = store("prefixes");
    let b = S3BlobStore::open(&settings(&bucket, "other/install")).unwrap();
    for name in ["01A1", "01A2", "01A3"] {
        a.put(&key(name), Bytes::from_static(b"sealed")).await.unwrap();
    }
    let att = BlobKey::new("att", "01A1_0").unwrap();
    a.put(&att, Bytes::from_static(b"sealed")).await.unwrap();
    b.put(&key("01B1"), Bytes::from_static(b"sealed")).await.unwrap();
    let mut listed: Vec<String> = a.list().map_ok(|k| k.to_string()).try_collect().await.unwrap();
    listed.sort();
    assert_eq!(listed, ["att/01A1_0", "msg/01A1", "msg/01A2", "msg/01A3"]);
    let listed: Vec<BlobKey> = b.list().try_collect().await.unwrap();
    assert_eq!(listed, [key("01B1")]);
    assert!(matches!(b.get(&key("01A1")).await, Err(VaultError::BlobMissing(_))));
}

#[tokio::test]
async fn copy_moves_sealed_bytes_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDirBlobStore::open(dir.path().join("blobs")).unwrap();
    let (bucket, remote) = store("copy");
    let dek = [9u8; 32];
    let mut plain = Vec::new();
    for i in 0..20u32 {
        let body = format!("Patient record {i}: diagnosis confidential").into_bytes();
        let name = format!("01C{i:03}");
        local.put(&key(&name), Bytes::from(seal(&dek, name.as_bytes(), &body).unwrap())).await.unwrap();
        plain.push((name, body));
    }
    let mut last = None;
    let report = copy_blobs(&local, &remote, &mut |p| last = Some(p)).await.unwrap();
    assert_eq!((report.copied, report.already_present, report.vanished), (20, 0, 0));
    assert_eq!(last.map(|p| (p.done, p.total)), Some((20, 20)));
    // What the bucket holds is sealed: no plaintext, and it opens with the same data key.
    for object in s3::server().objects(&bucket) {
        assert!(!object.body.windows(7).any(|w| w == b"Patient"), "{}", object.key);
    }
    for (name, body) in &plain {
        let sealed = remote.get(&key(name)).await.unwrap();
        assert_eq!(&open(&dek, name.as_bytes(), &sealed).unwrap(), body);
    }
    // And back into an empty directory, as a move off S3 would.
    let back = LocalDirBlobStore::open(dir.path().join("back")).unwrap();
    let report = copy_blobs(&remote, &back, &mut |_| {}).await.unwrap();
    assert_eq!(report.copied, 20);
    for (name, _) in &plain {
        assert_eq!(back.get(&key(name)).await.unwrap(), local.get(&key(name)).await.unwrap());
    }
}

#[tokio::test]
async fn failures_are_errors_without_secrets() {
    // Nothing listens on port 1: every retry fails, within the bounded retry window.
    let mut s = settings("nowhere", "x");
    s.endpoint = Some("http://127.0.0.1:1".into());
    s.secret_access_key = Some("wJalrXUtnFEMI-do-not-log-me".into());
    let unreachable = S3BlobStore::open(&s).unwrap();
    let e = unreachable.put(&key("01FAIL"), Bytes::from_static(b"sealed")).await.unwrap_err();
    assert!(matches!(e, VaultError::Blob { .. }), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(text.contains("msg/01FAIL"), "{text}");
    assert!(!text.contains("do-not-log-me"), "{text}");
    // A bucket that does not exist is found at start, not at the first message.
    let missing = S3BlobStore::open(&settings("no-such-bucket", "x")).unwrap();
    let e = missing.check().await.unwrap_err().to_string();
    assert!(e.contains("s3://no-such-bucket/x"), "{e}");
}
