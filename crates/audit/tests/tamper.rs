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
    sql(
        &f.db,
        &[
            "UPDATE audit_records SET seq = -1 WHERE seq = 5",
            "UPDATE audit_records SET seq = 5 WHERE seq = 6",
            "UPDATE audit_records SET seq = 6 WHERE seq = -1",
        ],
    )
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
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(jsonl).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["action"], "smtp.auth");
    let mut syslog = Vec::new();
    let future = carepost_model::Timestamp::now().plus_seconds(3600);
    assert_eq!(f.audit.export(Some(future), carepost_audit::ExportFormat::Syslog, "mx", &mut syslog).await.unwrap(), 0);
    f.audit.export(None, carepost_audit::ExportFormat::Syslog, "mx", &mut syslog).await.unwrap();
    assert!(String::from_utf8(syslog).unwrap().lines().all(|l| (l.starts_with("<110>1 ") || l.starts_with("<108>1 "))
        && l.contains(" carepost - smtp.auth [audit@32473 seq=")));
}

// The tail: records after the newest signed head. Each attack is tried right after the head
// was signed, between two signatures while the writer runs, and after a restart.

#[derive(Clone, Copy, Debug)]
enum Moment {
    /// The head was just signed (the server's tick, or a shutdown) and nothing came since.
    AfterCheckpoint,
    /// Records 8 to 10 came after the head at 7 was signed; the next tick has not run yet.
    BetweenSignatures,
    /// As between signatures, but in a second process after a clean restart.
    AfterRestart,
}

#[derive(Clone, Copy, Debug)]
enum Attack {
    DeleteLastTwo,
    RewriteLast,
}

struct Tail {
    _dir: tempfile::TempDir,
    db: PathBuf,
    store: Store,
    audit: Audit,
    last: i64,
}

/// One process's view of the log: checkpoints every 1000 records, as by default.
async fn open_audit(db: &Path, anchors: &Path, master: &[u8; 32]) -> (Store, Audit) {
    let store = Store::open(db).await.unwrap();
    let ring = KeyRing::new(MasterKey::from_bytes(master).unwrap());
    store.load_system_keys(&ring).await.unwrap();
    let audit = Audit::new(store.clone(), CheckpointKey::from_ring(&ring).unwrap(), 1000, Some(anchors.to_owned()));
    (store, audit)
}

async fn append(audit: &Audit, n: i64) {
    audit.append(Event::new("smtp", "smtp.auth").outcome(Outcome::Failure).detail("n", n)).await.unwrap();
}

async fn tail_at(moment: Moment) -> Tail {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let anchors = dir.path().join("audit-anchors.log");
    let master = [7u8; 32];
    let (mut store, mut audit) = open_audit(&db, &anchors, &master).await;
    let mut next = 1;
    if let Moment::AfterRestart = moment {
        for _ in 0..4 {
            append(&audit, next).await;
            next += 1;
        }
        // A clean stop signs the head; the next process knows nothing of the last one.
        assert_eq!(audit.checkpoint().await.unwrap(), Some(4));
        store.close().await;
        (store, audit) = open_audit(&db, &anchors, &master).await;
        assert_eq!(audit.recover().await.unwrap(), None);
    }
    while next <= 7 {
        append(&audit, next).await;
        next += 1;
    }
    assert_eq!(audit.sign_head().await.unwrap(), Some(7));
    if !matches!(moment, Moment::AfterCheckpoint) {
        while next <= 10 {
            append(&audit, next).await;
            next += 1;
        }
        let v = audit.verify().await.unwrap();
        assert!(v.is_ok(), "{:?}", v.problems);
        assert_eq!(v.unanchored, Some((8, 10)), "records after the signed head are named");
    }
    Tail { _dir: dir, db, store, audit, last: next - 1 }
}

/// Rewrites record `seq` consistently: a changed field and its unkeyed hash recomputed, as
/// anyone with write access to the database can, and the records up to `last` relinked.
async fn rewrite(db: &Path, seq: i64, last: i64) {
    let mut prev = None;
    for s in seq..=last {
        let mut r = row(db, s).await;
        if s == seq {
            r.target = "someone-else".into();
        }
        if let Some(p) = prev {
            r.prev_hash = p;
        }
        r.hash = record_hash(&r).to_vec();
        prev = Some(r.hash.clone());
        write_row(db, &r).await;
    }
}

/// Tampers with the tail at `moment`, lets the writer's next tick run, and returns the first
/// problem `verify` names.
async fn attack_tail(moment: Moment, attack: Attack) -> (Tail, Problem) {
    let t = tail_at(moment).await;
    match attack {
        Attack::DeleteLastTwo => sql(&t.db, &[&format!("DELETE FROM audit_records WHERE seq >= {}", t.last - 1)]).await,
        Attack::RewriteLast => rewrite(&t.db, t.last, t.last).await,
    }
    // The server's tick: signs the head as this process wrote it.
    t.audit.sign_head().await.unwrap();
    let v = t.audit.verify().await.unwrap();
    assert!(!v.is_ok(), "{attack:?} at {moment:?} went unnoticed");
    let problem = v.first_problem().unwrap().clone();
    (t, problem)
}

async fn last_action(t: &Tail) -> (String, String) {
    let r = t.store.audit_records_latest(1).await.unwrap().remove(0);
    (r.action, r.details)
}

#[tokio::test]
async fn deleting_the_tail_right_after_a_checkpoint_is_named() {
    let (_, p) = attack_tail(Moment::AfterCheckpoint, Attack::DeleteLastTwo).await;
    assert_eq!(p, Problem::Truncated { last: 5, covered: 7 });
    assert!(p.to_string().starts_with("record 6 is missing"), "{p}");
}

#[tokio::test]
async fn rewriting_the_last_record_right_after_a_checkpoint_is_named() {
    let (_, p) = attack_tail(Moment::AfterCheckpoint, Attack::RewriteLast).await;
    assert_eq!(p, Problem::CheckpointMismatch { seq: 7 });
    assert!(p.to_string().starts_with("record 7 does not match"), "{p}");
}

#[tokio::test]
async fn deleting_the_tail_between_signatures_is_named_by_the_next_one() {
    for moment in [Moment::BetweenSignatures, Moment::AfterRestart] {
        let (t, p) = attack_tail(moment, Attack::DeleteLastTwo).await;
        assert_eq!(p, Problem::Missing { seq: 9 }, "{moment:?}");
        assert!(p.to_string().starts_with("record 9 is missing"), "{p}");
        // The writer noticed, and said so in the log itself, after the gap.
        let (action, details) = last_action(&t).await;
        assert_eq!(action, "audit.tamper");
        assert!(details.contains("\"seq\":\"10\"") && details.contains("deleted"), "{details}");
    }
}

#[tokio::test]
async fn rewriting_the_last_record_between_signatures_is_named_by_the_next_one() {
    for moment in [Moment::BetweenSignatures, Moment::AfterRestart] {
        let (t, p) = attack_tail(moment, Attack::RewriteLast).await;
        assert_eq!(p, Problem::CheckpointMismatch { seq: 10 }, "{moment:?}");
        assert!(p.to_string().starts_with("record 10 does not match"), "{p}");
        let (action, details) = last_action(&t).await;
        assert_eq!(action, "audit.tamper");
        assert!(details.contains("\"seq\":\"10\"") && details.contains("rewritten"), "{details}");
    }
}

#[tokio::test]
async fn records_appended_after_a_deleted_tail_leave_the_gap_visible() {
    let t = tail_at(Moment::BetweenSignatures).await;
    sql(&t.db, &["DELETE FROM audit_records WHERE seq >= 9"]).await;
    // The writer goes on before its next tick: it never reuses the numbers it wrote.
    append(&t.audit, 11).await;
    let v = t.audit.verify().await.unwrap();
    assert_eq!(v.first_problem(), Some(&Problem::Missing { seq: 9 }));
    assert_eq!(v.last_seq, 11);
}

#[tokio::test]
async fn deleting_the_tail_with_its_checkpoints_is_named_by_the_anchor_file() {
    let t = tail_at(Moment::BetweenSignatures).await;
    t.audit.sign_head().await.unwrap();
    sql(&t.db, &["DELETE FROM audit_records WHERE seq >= 9", "DELETE FROM audit_checkpoints WHERE seq >= 8"]).await;
    let v = t.audit.verify().await.unwrap();
    assert_eq!(v.first_problem(), Some(&Problem::Truncated { last: 8, covered: 10 }));
}

#[tokio::test]
async fn records_a_crashed_process_never_signed_are_named_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let anchors = dir.path().join("audit-anchors.log");
    let master = [9u8; 32];
    let (store, audit) = open_audit(&db, &anchors, &master).await;
    for n in 1..=5 {
        append(&audit, n).await;
    }
    assert_eq!(audit.sign_head().await.unwrap(), Some(5));
    for n in 6..=8 {
        append(&audit, n).await;
    }
    // A crash: no tick, no shutdown.
    store.close().await;
    let (_store, audit) = open_audit(&db, &anchors, &master).await;
    assert_eq!(audit.verify().await.unwrap().unanchored, Some((6, 8)));
    assert_eq!(audit.recover().await.unwrap(), Some((6, 8)));
    assert_eq!(audit.checkpoint().await.unwrap(), Some(9));
    let v = audit.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!((v.unanchored, v.recovered.clone()), (None, vec![(6, 8, 9)]));
    // And a rewrite of them after that start is caught by the head signed over them.
    rewrite(&db, 8, 9).await;
    assert_eq!(audit.verify().await.unwrap().first_problem(), Some(&Problem::CheckpointMismatch { seq: 9 }));
}

#[tokio::test]
async fn a_rewritten_tail_with_a_forged_record_after_it_is_not_chained_onto() {
    // Rewrite the newest record, add a forged one after it with a consistent hash, and wait
    // for the writer to append: its next record must not vouch for the forgery.
    let t = tail_at(Moment::BetweenSignatures).await;
    rewrite(&t.db, t.last, t.last).await;
    let mut forged = row(&t.db, t.last).await;
    forged.prev_hash = forged.hash.clone();
    forged.seq = t.last + 1;
    forged.target = "forged".into();
    forged.hash = record_hash(&forged).to_vec();
    write_row(&t.db, &forged).await;
    append(&t.audit, 99).await;
    t.audit.sign_head().await.unwrap();
    let v = t.audit.verify().await.unwrap();
    assert!(!v.is_ok(), "the forgery went unnoticed");
    assert_eq!(v.last_seq, t.last + 2);
    assert!(v.problems.iter().any(|p| p.seq() <= t.last + 2), "{:?}", v.problems);
}
