//! Write transactions.
//!
//! SQLite: group commit. Every acknowledged message costs a durable commit. Instead of one
//! fsync per message, the writer task runs whatever operations have queued up since the last
//! commit inside one transaction, commits once, and only then answers each caller. Under load
//! many sessions share one fsync; when idle an operation commits alone, without waiting for
//! company. SQLite has one writer at a time anyway, so nothing is lost by funnelling writes
//! through one connection.
//!
//! PostgreSQL: each operation is its own transaction on a pooled connection. The server
//! already shares one WAL flush among commits that arrive together, and it takes writes on
//! many connections at once, from many nodes; funnelling one node's writes through one
//! connection would only add a queue and make one failed statement (which aborts a whole
//! PostgreSQL transaction, savepoints aside) a risk to its neighbours.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::{Backend, StoreError};

/// Most operations one transaction takes before it commits.
const MAX_BATCH: usize = 512;

/// A connection inside a transaction. Store modules take `&mut Tx`; callers outside the
/// store compose those functions without writing SQL themselves.
pub struct Tx {
    conn: TxConn,
    backend: Backend,
    /// The store's node name, for the leases this transaction takes.
    node: Arc<str>,
    /// This PostgreSQL transaction holds the message-events lock shared (see
    /// `events::record`).
    pub(crate) holds_events_lock: bool,
    /// Run once this operation's changes are durable; dropped if they are rolled back.
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

enum TxConn {
    Owned(AnyConnection),
    Pooled(PoolConnection<Any>),
    /// A PostgreSQL transaction: rolled back by sqlx if dropped before commit.
    Txn(Transaction<'static, Any>),
}

impl Tx {
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            TxConn::Owned(c) => c,
            TxConn::Pooled(c) => c,
            TxConn::Txn(t) => t,
        }
    }

    pub(crate) fn pooled(conn: PoolConnection<Any>, backend: Backend, node: Arc<str>) -> Tx {
        Tx { conn: TxConn::Pooled(conn), backend, node, holds_events_lock: false, on_commit: Vec::new() }
    }

    /// The backend this transaction runs on, for the few statements whose SQL differs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Row locks for a read that the same transaction then writes back (a counter, a
    /// sequence number): on PostgreSQL, where transactions of other connections and nodes run
    /// at the same time, `FOR UPDATE` makes them wait their turn instead of both updating
    /// what they read. SQLite has one writer at a time and no such clause.
    pub(crate) async fn lock_row(
        &mut self,
        table: &'static str,
        id_column: &'static str,
        id: &str,
    ) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            let sql = format!("SELECT 1 FROM {table} WHERE {id_column} = $1 FOR UPDATE");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Serializes this transaction with every other that takes the same `key`, until it
    /// ends (PostgreSQL; on SQLite every write transaction is serialized already).
    pub(crate) async fn serialize_on(&mut self, key: i64) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// The node this transaction's leases are taken for.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Runs `f` once the current operation's changes are durable (after the group commit),
    /// never if they are rolled back. For state outside the database that must only ever
    /// describe committed rows, such as the audit log's knowledge of its own head. Only write
    /// transactions ([`Store::write`](crate::Store::write)) run these.
    pub fn on_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(f));
    }

    fn take_on_commit(&mut self) -> Vec<Box<dyn FnOnce() + Send>> {
        std::mem::take(&mut self.on_commit)
    }

    pub(crate) async fn execute(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql).execute(self.conn()).await?;
        Ok(())
    }

    /// Starts a write transaction. SQLite takes the write lock at once (IMMEDIATE) so that a
    /// transaction never fails half-way on lock upgrade; PostgreSQL locks rows as it writes
    /// them.
    pub(crate) async fn begin(&mut self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => self.execute("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.execute("BEGIN").await,
        }
    }
}

trait Job: Send {
    fn run<'c>(self: Box<Self>, tx: &'c mut Tx) -> BoxFuture<'c, Box<dyn Outcome>>;
    fn abort(self: Box<Self>, reason: String);
}

trait Outcome: Send {
    fn succeeded(&self) -> bool;
    fn deliver(self: Box<Self>, commit: Result<(), String>);
}

struct OpJob<T, F> {
    op: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

struct OpOutcome<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for OpJob<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, tx: &'c mut Tx) -> BoxFuture<'c, Box<dyn Outcome>> {
        Box::pin(async move {
            let OpJob { op, reply } = *self;
            let result = op(tx).await;
            Box::new(OpOutcome { result, reply }) as Box<dyn Outcome>
        })
    }

    fn abort(self: Box<Self>, reason: String) {
        let _ = self.reply.send(Err(StoreError::Corrupt(reason)));
    }
}

impl<T: Send> Outcome for OpOutcome<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn deliver(self: Box<Self>, commit: Result<(), String>) {
        let answer = match commit {
            Ok(()) => self.result,
            Err(reason) => Err(StoreError::Corrupt(format!("commit failed: {reason}"))),
        };
        let _ = self.reply.send(answer);
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// Runs write operations: in shared transactions on SQLite, each in its own on PostgreSQL.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct GroupWriter {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Group(mpsc::UnboundedSender<Msg>),
    Direct { pool: AnyPool, node: Arc<str>, closed: Arc<AtomicBool> },
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl GroupWriter {
    /// SQLite: one connection, group commit.
    pub(crate) fn group(conn: AnyConnection, node: Arc<str>) -> GroupWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let tx_conn = Tx {
            conn: TxConn::Owned(conn),
            backend: Backend::Sqlite,
            node,
            holds_events_lock: false,
            on_commit: Vec::new(),
        };
        tokio::spawn(writer_loop(tx_conn, rx));
        GroupWriter { inner: Inner::Group(tx) }
    }

    /// PostgreSQL: a transaction per operation on the shared pool.
    pub(crate) fn direct(pool: AnyPool, node: Arc<str>) -> GroupWriter {
        GroupWriter { inner: Inner::Direct { pool, node, closed: Arc::new(AtomicBool::new(false)) } }
    }

    /// Runs `op` in the next group transaction and returns its result once that transaction
    /// is durable. If `op` fails, its own changes are rolled back and the others' commit.
    pub async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        match &self.inner {
            Inner::Group(sender) => {
                let (reply, answer) = oneshot::channel();
                sender.send(Msg::Job(Box::new(OpJob { op, reply }))).map_err(|_| StoreError::Closed)?;
                answer.await.map_err(|_| StoreError::Closed)?
            }
            Inner::Direct { pool, node, closed } => {
                if closed.load(Ordering::Acquire) {
                    return Err(StoreError::Closed);
                }
                // In a task of its own, as on the group writer: a caller that gives up (a
                // dropped SMTP session) neither cuts an operation in half nor leaves its
                // on-commit hooks unrun after a commit.
                let work = tokio::spawn(run_direct(pool.clone(), node.clone(), op));
                work.await.map_err(|e| StoreError::Corrupt(format!("a write operation stopped: {e}")))?
            }
        }
    }

    /// Finishes the operations already queued, then stops the writer.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Group(sender) => {
                let (done, wait) = oneshot::channel();
                if sender.send(Msg::Close(done)).is_ok() {
                    let _ = wait.await;
                }
            }
            // Operations under way hold pooled connections; closing the pool waits for them.
            Inner::Direct { closed, .. } => closed.store(true, Ordering::Release),
        }
    }
}

async fn run_direct<T, F>(pool: AnyPool, node: Arc<str>, op: F) -> Result<T, StoreError>
where
    F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, StoreError>>,
{
    let txn = pool.begin().await?;
    let mut tx = Tx {
        conn: TxConn::Txn(txn),
        backend: Backend::Postgres,
        node,
        holds_events_lock: false,
        on_commit: Vec::new(),
    };
    let result = op(&mut tx).await;
    let hooks = tx.take_on_commit();
    let TxConn::Txn(txn) = tx.conn else { return Err(StoreError::Corrupt("a write lost its transaction".into())) };
    match result {
        Ok(value) => {
            txn.commit().await.map_err(|e| StoreError::Corrupt(format!("commit failed: {e}")))?;
            for hook in hooks {
                hook();
            }
            Ok(value)
        }
        Err(e) => {
            // The operation's own error is its answer; nothing of it stays.
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

async fn writer_loop(mut tx: Tx, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut closing: Option<oneshot::Sender<()>> = None;
    while let Some(msg) = rx.recv().await {
        let mut batch = Vec::new();
        let mut push = |msg: Msg, batch: &mut Vec<Box<dyn Job>>| match msg {
            Msg::Job(job) => batch.push(job),
            Msg::Close(done) => closing = Some(done),
        };
        push(msg, &mut batch);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(msg) => push(msg, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            run_batch(&mut tx, batch).await;
        }
        if closing.is_some() && rx.is_empty() {
            rx.close();
            while let Ok(Msg::Job(job)) = rx.try_recv() {
                run_batch(&mut tx, vec![job]).await;
            }
            break;
        }
    }
    if let TxConn::Owned(conn) = tx.conn {
        let _ = sqlx::Connection::close(conn).await;
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

async fn run_batch(tx: &mut Tx, batch: Vec<Box<dyn Job>>) {
    if let Err(e) = tx.begin().await {
        let reason = e.to_string();
        for job in batch {
            job.abort(reason.clone());
        }
        return;
    }
    let size = batch.len();
    if size == 1 {
        // Alone in its transaction, an operation needs no savepoint: if it fails, rolling
        // the transaction back undoes exactly its changes. Two statements fewer per commit
        // whenever the writer is not busy.
        if let Some(job) = batch.into_iter().next() {
            run_alone(tx, job).await;
        }
        return;
    }
    let mut outcomes = Vec::with_capacity(size);
    let mut committed = Vec::new();
    let mut jobs = batch.into_iter();
    let mut failure: Option<String> = None;
    for job in jobs.by_ref() {
        if let Err(e) = tx.execute("SAVEPOINT op").await {
            failure = Some(e.to_string());
            job.abort(e.to_string());
            break;
        }
        let outcome = job.run(tx).await;
        let hooks = tx.take_on_commit();
        let undo = if outcome.succeeded() { "RELEASE op" } else { "ROLLBACK TO op" };
        let mut closed = tx.execute(undo).await;
        if closed.is_ok() && !outcome.succeeded() {
            closed = tx.execute("RELEASE op").await;
        }
        if outcome.succeeded() {
            committed.extend(hooks);
        }
        outcomes.push(outcome);
        if let Err(e) = closed {
            failure = Some(e.to_string());
            break;
        }
    }
    let commit = match failure {
        None => tx.execute("COMMIT").await.map_err(|e| e.to_string()),
        Some(reason) => Err(reason),
    };
    if commit.is_err() {
        let _ = tx.execute("ROLLBACK").await;
    }
    if let Err(reason) = &commit {
        tracing::error!(batch = size, %reason, "group commit failed");
        for job in jobs {
            job.abort(reason.clone());
        }
    } else {
        tracing::trace!(batch = size, "group commit");
        for hook in committed {
            hook();
        }
    }
    for outcome in outcomes {
        outcome.deliver(commit.clone());
    }
}

/// One operation in its own transaction (begun by the caller): committed when it succeeds,
/// rolled back when it fails.
async fn run_alone(tx: &mut Tx, job: Box<dyn Job>) {
    let outcome = job.run(tx).await;
    let hooks = tx.take_on_commit();
    let end = if outcome.succeeded() {
        tx.execute("COMMIT").await.map_err(|e| e.to_string())
    } else {
        // The operation's own error is its answer; nothing of it stays.
        tx.execute("ROLLBACK").await.map_err(|e| e.to_string())
    };
    if let Err(reason) = &end {
        let _ = tx.execute("ROLLBACK").await;
        tracing::error!(batch = 1, %reason, "ending a transaction failed");
    } else if outcome.succeeded() {
        for hook in hooks {
            hook();
        }
    }
    outcome.deliver(end);
}
