//! Every kind of tampering is detected and named by sequence number.

use std::path::{Path, PathBuf};

use carepost_audit::{Audit, CheckpointKey, Event, Outcome, Problem, record_hash};
use carepost_store::Store;
use carepost_store::audit_log::AuditRow;
use carepost_vault::{KeyRing, MasterKey};
use sqlx::{Connection, Row, SqliteConnection};

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    anchors: PathBuf,
    audit: Audit,
}

/// 25 records, checkpoints at 10 and 20 and (at shutdown) 25.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let anchors = dir.path().join("audit-anchors.log");
    let store = Store::open(&db).await.unwrap();
    let ring = KeyRing::new(MasterKey::generate().unwrap());
    store.load_system_keys(&ring).await.unwrap();
    let audit = Audit::new(store, CheckpointKey::from_ring(&ring).unwrap(), 10, Some(anchors.clone()));
    for i in 1..=25 {
        let outcome = if i % 4 == 0 { Outcome::Failure } else { Outcome::Success };
        let seq = audit
            .append(
                Event::new("smtp", "smtp.auth")
                    .target(format!("account-{i}"))
                    .ip(Some("192.0.2.7".parse().unwrap()))
                    .outcome(outcome)
                    .detail("attempt", i),
            )
            .await
            .unwrap();
        assert_eq!(seq, i);
    }
    assert_eq!(audit.checkpoint().await.unwrap(), Some(25));
    Fixture { _dir: dir, db, anchors, audit }
}

async fn sql(db: &Path, statements: &[&str]) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s.to_string())).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

async fn first_problem(f: &Fixture) -> Problem {
    let v = f.audit.verify().await.unwrap();
    assert!(!v.is_ok(), "tampering went unnoticed");
    v.first_problem().unwrap().clone()
}

async fn row(db: &Path, seq: i64) -> AuditRow {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let r = sqlx::query("SELECT * FROM audit_records WHERE seq = $1").bind(seq).fetch_one(&mut conn).await.unwrap();
    AuditRow {
        seq: r.get("seq"),
        at: r.get("at"),
        actor: r.get("actor"),
        action: r.get("action"),
        target: r.get("target"),
        source_ip: r.get("source_ip"),
        outcome: r.get("outcome"),
        details: r.get("details"),
        prev_hash: r.get("prev_hash"),
        hash: r.get("hash"),
    }
}

async fn write_row(db: &Path, r: &AuditRow) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query("INSERT OR REPLACE INTO audit_records (seq, at, actor, action, target, source_ip, outcome, details, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)")
        .bind(r.seq).bind(r.at).bind(&r.actor).bind(&r.action).bind(&r.target).bind(&r.source_ip)
        .bind(&r.outcome).bind(&r.details).bind(&r.prev_hash).bind(&r.hash)
        .execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn an_intact_log_verifies() {
    let f = fixture().await;
    let v = f.audit.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!((v.records, v.last_seq, v.last_checkpoint), (25, 25, Some(25)));
    assert_eq!(std::fs::read_to_string(&f.anchors).unwrap().lines().count(), 3);
}

#[tokio::test]
async fn a_changed_field_is_named() {
    let f = fixture().await;
    sql(&f.db, &["UPDATE audit_records SET outcome = 'success' WHERE seq = 8"]).await;
    assert_eq!(first_problem(&f).await, Problem::Altered { seq: 8 });
}

#[tokio::test]
async fn a_deleted_record_is_named() {
    let f = fixture().await;
    sql(&f.db, &["DELETE FROM audit_records WHERE seq = 13"]).await;
    assert_eq!(first_problem(&f).await, Problem::Missing { seq: 13 });
}

#[tokio::test]
async fn swapped_records_are_named() {
    let f = fixture().await;
    sql(&f.db, &[
        "UPDATE audit_records SET seq = -1 WHERE seq = 5",
        "UPDATE audit_records SET seq = 5 WHERE seq = 6",
        "UPDATE audit_records SET seq = 6 WHERE seq = -1",
    ])
    .await;
    assert_eq!(first_problem(&f).await, Problem::Moved { seq: 5, from: 6 });
}

#[tokio::test]
async fn an_inserted_record_is_named() {
    let f = fixture().await;
    // Make room after record 4 by renumbering the rest, then insert a well-formed forgery
    // that links correctly to record 4.
    let mut shift = Vec::new();
    for seq in (5..=25).rev() {
        shift.push(format!("UPDATE audit_records SET seq = {} WHERE seq = {seq}", seq + 1));
    }
    let shift: Vec<&str> = shift.iter().map(String::as_str).collect();
    sql(&f.db, &shift).await;
    let before = row(&f.db, 4).await;
    let mut forged = AuditRow { seq: 5, prev_hash: before.hash.clone(), target: "forged".into(), ..before.clone() };
    forged.hash = record_hash(&forged).to_vec();
    write_row(&f.db, &forged).await;
    // The forgery itself links and hashes correctly; the first record that no longer fits
    // names where the insertion happened.
    assert_eq!(first_problem(&f).await, Problem::Moved { seq: 6, from: 5 });
}

#[tokio::test]
async fn a_rewritten_chain_is_caught_by_its_checkpoint() {
    let f = fixture().await;
    // Alter record 15 and recompute every hash after it: the chain is consistent again, but
    // the signed checkpoint at 20 no longer matches.
    let mut prev = row(&f.db, 14).await.hash;
    for seq in 15..=25 {
        let mut r = row(&f.db, seq).await;
        if seq == 15 {
            r.target = "someone-else".into();
        }
        r.prev_hash = prev;
        r.hash = record_hash(&r).to_vec();
        prev = r.hash.clone();
        write_row(&f.db, &r).await;
    }
    assert_eq!(first_problem(&f).await, Problem::CheckpointMismatch { seq: 20 });
}

#[tokio::test]
async fn truncation_after_a_checkpoint_is_named() {
    let f = fixture().await;
    sql(&f.db, &["DELETE FROM audit_records WHERE seq > 12"]).await;
    assert_eq!(first_problem(&f).await, Problem::Truncated { last: 12, covered: 20 });
}

#[tokio::test]
async fn truncation_of_records_and_checkpoints_is_caught_by_the_anchor_file() {
    let f = fixture().await;
    sql(&f.db, &["DELETE FROM audit_records WHERE seq > 12", "DELETE FROM audit_checkpoints WHERE seq > 12"]).await;
    assert_eq!(first_problem(&f).await, Problem::Truncated { last: 12, covered: 20 });
}

#[tokio::test]
async fn a_forged_checkpoint_signature_is_named() {
    let f = fixture().await;
    sql(&f.db, &["UPDATE audit_checkpoints SET signature = zeroblob(64) WHERE seq = 20"]).await;
    assert_eq!(first_problem(&f).await, Problem::BadSignature { seq: 20 });
}

#[tokio::test]
async fn export_writes_every_record_in_both_formats() {
    let f = fixture().await;
    let mut jsonl = Vec::new();
    assert_eq!(f.audit.export(None, carepost_audit::ExportFormat::JsonLines, "mx", &mut jsonl).await.unwrap(), 25);
    let first: serde_json::Value = serde_json::from_str(String::from_utf8(jsonl).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["action"], "smtp.auth");
    let mut syslog = Vec::new();
    let future = carepost_model::Timestamp::now().plus_seconds(3600);
    assert_eq!(f.audit.export(Some(future), carepost_audit::ExportFormat::Syslog, "mx", &mut syslog).await.unwrap(), 0);
    f.audit.export(None, carepost_audit::ExportFormat::Syslog, "mx", &mut syslog).await.unwrap();
    assert!(String::from_utf8(syslog).unwrap().lines().all(|l| (l.starts_with("<110>1 ") || l.starts_with("<108>1 ")) && l.contains(" carepost - smtp.auth [audit@32473 seq=")));
}
