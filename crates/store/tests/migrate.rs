//! Copying a SQLite store into PostgreSQL (`Store::copy_into`): every row as stored, checked
//! by count and hash, the source not changed by a byte, and a target that is not empty, or
//! has other tables, refused.

mod support;

use carepost_store::events;
use carepost_store::migrate::{CopyProgress, Phase};
use carepost_store::queue::{self, MessageRow, RecipientRow};
use carepost_store::{Store, StoreError, StoreOptions};

fn message(id: &str, recipients: i64) -> (MessageRow, Vec<RecipientRow>) {
    let (mut m, mut rcpts) = support::message_rows(id, recipients, 1_000);
    // Arbitrary bytes, as sealed columns are: not UTF-8, with a NUL.
    m.envelope = vec![0, 0xff, 0xfe, 7, b'"'];
    m.inspection = Some("{\"verdict\":\"clean\"}".into());
    for r in &mut rcpts {
        r.address = vec![r.idx as u8, 0, 0xff];
    }
    (m, rcpts)
}

async fn sqlite_with_mail(dir: &std::path::Path, messages: usize) -> std::path::PathBuf {
    let path = dir.join("source.db");
    let store = Store::open(&path).await.unwrap();
    for i in 0..messages {
        let (m, rcpts) = message(&format!("M{i:04}"), 3);
        store.write(move |tx| Box::pin(async move { queue::insert_message(tx, &m, &rcpts).await })).await.unwrap();
    }
    // The newest message's events are purged: its sequence numbers must not come back.
    let last = format!("M{:04}", messages - 1);
    store.write(move |tx| Box::pin(async move { events::delete_for_message(tx, &last).await })).await.unwrap();
    store.close().await;
    path
}

async fn postgres() -> Store {
    let url = carepost_testkit::postgres::fresh_database();
    Store::connect(&StoreOptions { url, pool_size: 4 }).await.unwrap()
}

#[tokio::test]
async fn every_row_is_copied_as_stored_and_verified_and_the_source_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // More recipients than one batch holds.
    let path = sqlite_with_mail(dir.path(), 400).await;
    let before = std::fs::read(&path).unwrap();

    let source = Store::open_read_only(&path.display().to_string()).await.unwrap();
    let target = postgres().await;
    let mut seen: Vec<CopyProgress> = Vec::new();
    let report = source.copy_into(&target, &mut |p| seen.push(p.clone())).await.unwrap();
    let original = source.message_events("M0007").await.unwrap();
    source.close().await;

    let rows = |name: &str| report.tables.iter().find(|t| t.table == name).map(|t| t.rows);
    assert_eq!(rows("messages"), Some(400));
    assert_eq!(rows("recipients"), Some(1200));
    assert_eq!(rows("message_events"), Some(1197));
    let order: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    let at = |name: &str| order.iter().position(|t| *t == name).unwrap();
    assert!(at("messages") < at("recipients"), "{order:?}");
    assert!(at("portal_messages") < at("portal_tokens"), "{order:?}");
    let total = report.rows();
    let last_copy = seen.iter().rfind(|p| p.phase == Phase::Copying).unwrap();
    let last_check = seen.last().unwrap();
    assert_eq!((last_copy.done, last_copy.total), (total, total));
    assert_eq!((last_check.phase, last_check.done), (Phase::Verifying, total));
    assert_eq!(std::fs::read(&path).unwrap(), before, "the source file changed");

    // The rows read back through the store API, bytes and all.
    let copied = target.message_events("M0007").await.unwrap();
    assert_eq!(copied.len(), 3);
    assert_eq!(format!("{copied:?}"), format!("{original:?}"));
    // New events continue after the highest number SQLite gave, purged ones included.
    let (m, rcpts) = message("NEW", 1);
    target.write(move |tx| Box::pin(async move { queue::insert_message(tx, &m, &rcpts).await })).await.unwrap();
    let new = target.message_events("NEW").await.unwrap();
    assert_eq!(new[0].seq, 1201, "{new:?}");

    // A second copy into the same database is refused and changes nothing there.
    let source = Store::open_read_only(&path.display().to_string()).await.unwrap();
    let err = source.copy_into(&target, &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, StoreError::Copy(_)), "{err}");
    assert!(err.to_string().contains("the target database is not empty: table"), "{err}");
    source.close().await;
    assert_eq!(target.message_events("M0000").await.unwrap().len(), 3);
    target.close().await;
}

#[tokio::test]
async fn a_source_with_a_table_the_target_lacks_is_refused_and_the_target_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_with_mail(dir.path(), 2).await;
    let store = Store::open(&path).await.unwrap();
    store.close().await;
    {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        conn.execute("CREATE TABLE local_notes (id INTEGER PRIMARY KEY, note TEXT)").await.unwrap();
        conn.close().await.unwrap();
    }
    let source = Store::open_read_only(&path.display().to_string()).await.unwrap();
    let target = postgres().await;
    let err = source.copy_into(&target, &mut |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("only in the source: local_notes"), "{err}");
    // Nothing was written: a copy of an unchanged source goes through afterwards.
    {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        conn.execute("DROP TABLE local_notes").await.unwrap();
        conn.close().await.unwrap();
    }
    let report = source.copy_into(&target, &mut |_| {}).await.unwrap();
    assert_eq!(report.tables.iter().find(|t| t.table == "recipients").map(|t| t.rows), Some(6));
    source.close().await;
    target.close().await;
}

#[tokio::test]
async fn a_missing_source_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open_read_only(&dir.path().join("nowhere.db").display().to_string()).await.unwrap_err();
    assert!(err.to_string().contains("nowhere.db"), "{err}");
}
