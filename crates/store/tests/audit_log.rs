//! The audit log's rows, on SQLite and on PostgreSQL. Several nodes append to one chain:
//! reading the head and appending after it is serialized through the database.

mod support;

use carepost_store::audit_log::{self, AuditRow, CheckpointRow};
use carepost_store::{Store, StoreError, Tx};
use support::Db;

/// Appends one record after the stored head, as the audit crate does (its hash here is a
/// stand-in: the chain logic is not the store's).
async fn append(tx: &mut Tx, actor: String) -> Result<i64, StoreError> {
    let (seq, prev_hash) = audit_log::head(tx).await?.map(|(s, h)| (s + 1, h)).unwrap_or((1, vec![0; 32]));
    let mut hash = prev_hash.clone();
    hash.extend_from_slice(actor.as_bytes());
    hash.truncate(64);
    let row = AuditRow {
        seq,
        at: seq * 10,
        actor,
        action: "test".into(),
        target: "t".into(),
        source_ip: (seq % 2 == 0).then(|| "192.0.2.1".into()),
        outcome: "ok".into(),
        details: "{}".into(),
        prev_hash,
        hash,
    };
    // Other appenders get a chance to run between the read and the write.
    tokio::task::yield_now().await;
    audit_log::insert(tx, &row).await?;
    Ok(seq)
}

async fn appenders_on_several_nodes_make_one_unbroken_chain(db: Db) {
    let nodes: Vec<Store> = vec![db.store.clone(), db.reopen().await, db.reopen().await];
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let node = node.clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    let actor = format!("node{n}-{i}");
                    node.write(move |tx| Box::pin(append(tx, actor))).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let store = &db.store;
    assert_eq!(store.audit_head_seq().await.unwrap(), Some(90));
    let rows = store.audit_records_after(0, 1_000).await.unwrap();
    assert_eq!(rows.len(), 90);
    for pair in rows.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(pair[1].prev_hash, pair[0].hash, "record {} chains onto {}", pair[1].seq, pair[0].seq);
    }
    let hash_45 = store.write(|tx| Box::pin(async move { audit_log::hash_at(tx, 45).await })).await.unwrap().unwrap();
    assert_eq!(hash_45, rows[44].hash);

    assert_eq!(store.audit_records_after(85, 2).await.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), [86, 87]);
    assert_eq!(store.audit_records_latest(3).await.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), [90, 89, 88]);
    let since = store.audit_records_since(500, 0, 1_000).await.unwrap();
    assert_eq!(since.first().map(|r| r.seq), Some(50));
    assert!(since.iter().all(|r| r.at >= 500));

    // Checkpoints: the newest is found, inserting one twice is harmless.
    assert_eq!(store.audit_last_checkpoint().await.unwrap(), None);
    for seq in [30, 60, 60] {
        let c = CheckpointRow {
            seq,
            hash: rows[seq as usize - 1].hash.clone(),
            at: 1,
            key_id: "k".into(),
            signature: vec![7; 64],
        };
        store.write(move |tx| Box::pin(async move { audit_log::insert_checkpoint(tx, &c).await })).await.unwrap();
    }
    assert_eq!(store.write(|tx| Box::pin(audit_log::last_checkpoint(tx))).await.unwrap(), Some(60));
    assert_eq!(store.audit_last_checkpoint().await.unwrap(), Some(60));
    assert_eq!(store.audit_checkpoints().await.unwrap().len(), 2);
    assert_eq!(store.audit_checkpoints_after(30).await.unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [60]);
    for node in &nodes[1..] {
        node.close().await;
    }
}

backends!(appenders_on_several_nodes_make_one_unbroken_chain);
