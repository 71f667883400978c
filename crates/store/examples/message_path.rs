//! The store's share of relaying one message, as a number a later change can be compared
//! against: the statements, the round trips to the database and the time that accepting,
//! claiming, opening and finishing COUNT messages of one recipient cost, from SESSIONS
//! concurrent senders and one delivery loop, as the spool and the delivery runner do it
//! (data key, queue rows and event, sealed body inline, an audit record on accept; the claim;
//! the reads of delivery; the outcome, its event, an audit record and the completion check).
//! No SMTP, DLP, sealing or signing: the store alone. SQLite in a scratch directory, or the
//! PostgreSQL database named by CAREPOST_STORE_URL.
//!
//!     cargo run --release -p carepost-store --example message_path -- 20000 20
//!
//! Round trips are counted from sqlx's own query events (one per statement text sent;
//! several statements sent together are one round trip), statements by splitting those
//! texts.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use carepost_model::TenantId;
use carepost_store::audit_log::{self, AuditRow};
use carepost_store::queue::{self, RecipientRow, RecipientUpdate, state};
use carepost_store::{Store, StoreError, StoreOptions, keys};
use carepost_vault::WrappedDataKey;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Default)]
struct Counts {
    round_trips: AtomicU64,
    statements: AtomicU64,
}

struct CountQueries(Arc<Counts>);

#[derive(Default)]
struct QueryText {
    summary: String,
    statement: String,
}

impl Visit for QueryText {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, format!("{value:?}").trim_matches('"'));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountQueries {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut text = QueryText::default();
        event.record(&mut text);
        // sqlx leaves db.statement empty when the summary is the whole text.
        let sql = if text.statement.trim().is_empty() { &text.summary } else { &text.statement };
        let statements = sql.split(';').filter(|s| !s.trim().is_empty()).count().max(1);
        self.0.round_trips.fetch_add(1, Ordering::Relaxed);
        self.0.statements.fetch_add(statements as u64, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers: COUNT SESSIONS")).collect();
    let count = args.first().copied().unwrap_or(20_000);
    let sessions = args.get(1).copied().unwrap_or(20).max(1);
    let counts = Arc::new(Counts::default());
    let subscriber = tracing_subscriber::registry().with(CountQueries(counts.clone()));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");

    let dir = tempfile::tempdir().expect("a scratch directory");
    let options = match std::env::var("CAREPOST_STORE_URL") {
        Ok(url) if !url.is_empty() => StoreOptions { url, pool_size: 16 },
        _ => StoreOptions::sqlite(&dir.path().join("m.db")),
    };
    let store = Store::connect(&options).await.expect("opening the store");
    let before = (counts.round_trips.load(Ordering::Relaxed), counts.statements.load(Ordering::Relaxed));
    let started = Instant::now();

    let senders: Vec<_> = (0..sessions)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..count).step_by(sessions) {
                    accept(&store, &format!("M{i:08}")).await.expect("accept");
                }
            })
        })
        .collect();
    let mut delivered = 0;
    while delivered < count {
        let now = now();
        let claimed = store
            .write(move |tx| Box::pin(async move { queue::claim_due(tx, now, now + 60_000_000, 100).await }))
            .await
            .expect("claim");
        if claimed.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            continue;
        }
        let finishing: Vec<_> = claimed
            .into_iter()
            .map(|r| {
                let store = store.clone();
                tokio::spawn(async move { deliver(&store, r).await.expect("deliver") })
            })
            .collect();
        for f in finishing {
            f.await.expect("a delivery task");
            delivered += 1;
        }
    }
    for s in senders {
        s.await.expect("a sender");
    }
    let secs = started.elapsed().as_secs_f64();
    let round_trips = counts.round_trips.load(Ordering::Relaxed) - before.0;
    let statements = counts.statements.load(Ordering::Relaxed) - before.1;
    println!(
        "{:?}: {count} messages accepted and delivered ({sessions} sessions) in {secs:.2}s: {:.0}/s; \
         per message {:.2} statements in {:.2} round trips",
        store.backend(),
        count as f64 / secs,
        statements as f64 / count as f64,
        round_trips as f64 / count as f64,
    );
    store.close().await;
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

async fn accept(store: &Store, id: &str) -> Result<(), StoreError> {
    let (message, recipients) = support::message(id, now(), queue::INLINE_BODY.into());
    let id = id.to_owned();
    store
        .write(move |tx| {
            Box::pin(async move {
                let tenant = TenantId::new("default").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let wrapped = WrappedDataKey([&1u32.to_be_bytes()[..], &[9; 60]].concat());
                keys::put_data_key(tx, &tenant, &format!("msg/{id}"), &wrapped).await?;
                queue::insert_message(tx, &message, &recipients).await?;
                queue::insert_inline_body(tx, &id, &[5; 10_300]).await?;
                append_audit(tx, "message.accepted", &id).await
            })
        })
        .await
}

async fn deliver(store: &Store, claimed: RecipientRow) -> Result<(), StoreError> {
    let id = claimed.message_id.clone();
    // What opening the message for delivery reads.
    store.message(&id).await?;
    store.recipients(&id).await?;
    store.inline_body(&id).await?;
    store
        .write(move |tx| {
            Box::pin(async move {
                let update = RecipientUpdate {
                    state: state::DELIVERED,
                    attempts: 1,
                    next_attempt_at: claimed.next_attempt_at,
                    last_reply: Some(vec![6; 60]),
                    method: Some("tls".into()),
                    delay_notified: false,
                    status: Some("2.0.0".into()),
                };
                queue::update_recipient(tx, &id, claimed.idx, &update).await?;
                append_audit(tx, "delivery.attempt", &id).await?;
                queue::finish_if_done_later(tx, &id)
            })
        })
        .await
}

/// An audit record chained onto the head, as the audit chain appends one.
async fn append_audit(tx: &mut carepost_store::Tx, action: &str, id: &str) -> Result<(), StoreError> {
    let (seq, prev_hash) = audit_log::head(tx).await?.unwrap_or((0, vec![0; 32]));
    let row = AuditRow {
        seq: seq + 1,
        at: now(),
        actor: "bench".into(),
        action: action.into(),
        target: format!("msg:{id}"),
        source_ip: Some("127.0.0.1".into()),
        outcome: "success".into(),
        details: "{\"recipients\":1}".into(),
        prev_hash,
        hash: (seq + 1).to_be_bytes().repeat(4),
    };
    audit_log::insert(tx, &row).await
}
