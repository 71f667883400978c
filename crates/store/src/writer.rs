//! Write transactions.
//!
//! SQLite: group commit. Every acknowledged message costs a durable commit. Instead of one
//! fsync per message, the writer task runs whatever operations have queued up since the last
//! commit inside one transaction, commits once, and only then answers each caller. Under load
//! many sessions share one fsync; when idle an operation commits alone, without waiting for
//! company. SQLite has one writer at a time anyway, so nothing is lost by funnelling writes
//! through one connection.
//!
//! Round trips. sqlx runs each SQLite connection on a thread of its own, so every statement
//! sent is two hand-offs between threads, and the writer is one connection that every
//! message's writes queue for: its round trips, not SQLite, set the pace. So statements
//! whose result nobody reads (inserts, the recipient updates and their events) are held in
//! the transaction ([`Tx::defer`]) and go out together as one multi-statement round trip,
//! before anything the operation reads and at its end; an operation's savepoint travels
//! with them, and the audit chain's head is read once per transaction
//! (`audit_log::head`). An accepted message costs its operation one round trip.
//!
//! PostgreSQL: each operation is its own transaction on a pooled connection. The server
//! already shares one WAL flush among commits that arrive together, and it takes writes on
//! many connections at once, from many nodes; funnelling one node's writes through one
//! connection would only add a queue and make one failed statement (which aborts a whole
//! PostgreSQL transaction, savepoints aside) a risk to its neighbours.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use sqlx::any::AnyArguments;
use sqlx::encode::Encode;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Arguments, Transaction, Type};
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
    /// Written statements not yet sent (see [`Tx::defer`]).
    pending: Pending,
    /// Whether a statement of the current operation has reached the database, so that its
    /// failure has something to roll back.
    sent: bool,
    /// The audit records this transaction read as the chain's head or wrote, oldest first
    /// (`audit_log` keeps it): the head need not be read again before each append.
    pub(crate) audit_seen: Vec<(i64, Vec<u8>)>,
    /// Whether `audit_seen` ends with the chain's head.
    pub(crate) audit_head_known: bool,
    /// Why held statements of the current operation failed to be written, if they did: the
    /// operation fails whatever it returns, since the database may hold only some of them
    /// (and an operation that caught the error of the read that sent them must not commit
    /// the rest).
    failed: Option<String>,
}

/// Statements held for one round trip.
#[derive(Default)]
struct Pending {
    /// SQLite: the statements joined into one text, their parameters renumbered into one
    /// argument list.
    sql: String,
    args: AnyArguments,
    statements: usize,
    /// PostgreSQL: a prepared statement holds one command, so they stay apart (and are sent
    /// in order).
    separate: Vec<(String, AnyArguments)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.sql.is_empty() && self.separate.is_empty()
    }
}

/// The parameters of one deferred statement, in the order of its `$1`, `$2`, ...
pub(crate) struct Binds<'a> {
    args: &'a mut AnyArguments,
    error: Option<String>,
}

impl Binds<'_> {
    pub(crate) fn add<'t, T: Encode<'t, Any> + Type<Any> + 't>(&mut self, value: T) -> &mut Self {
        if self.error.is_none()
            && let Err(e) = self.args.add(value)
        {
            self.error = Some(e.to_string());
        }
        self
    }
}

/// Appends `sql` to `out` with each parameter `$n` renamed `$(n + offset)`. The store's SQL
/// is its own constant text, with `$` in parameters only.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

enum TxConn {
    Owned(AnyConnection),
    Pooled(PoolConnection<Any>),
    /// A PostgreSQL transaction: rolled back by sqlx if dropped before commit.
    Txn(Transaction<'static, Any>),
}

impl Tx {
    fn new(conn: TxConn, backend: Backend, node: Arc<str>) -> Tx {
        Tx {
            conn,
            backend,
            node,
            holds_events_lock: false,
            on_commit: Vec::new(),
            pending: Pending::default(),
            sent: false,
            audit_seen: Vec::new(),
            audit_head_known: false,
            failed: None,
        }
    }

    fn raw_conn(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            TxConn::Owned(c) => c,
            TxConn::Pooled(c) => c,
            TxConn::Txn(t) => t,
        }
    }

    /// The connection, for a statement whose result is read: the deferred statements go
    /// first, so that it sees them.
    pub(crate) async fn conn(&mut self) -> Result<&mut AnyConnection, StoreError> {
        self.flush().await?;
        self.sent = true;
        Ok(self.raw_conn())
    }

    /// Holds a statement whose result nobody reads until the operation next reads or ends
    /// (see the module's notes); a failure it meets then fails the operation. `bind` adds
    /// its parameters in order.
    pub(crate) fn defer(&mut self, sql: &str, bind: impl FnOnce(&mut Binds<'_>)) -> Result<(), StoreError> {
        let bound = |args: &mut AnyArguments| {
            let mut binds = Binds { args, error: None };
            bind(&mut binds);
            binds.error.map_or(Ok(()), |e| Err(format!("a value cannot be written: {e}")))
        };
        let written = match self.backend {
            Backend::Sqlite => {
                let offset = self.pending.args.len();
                let written = bound(&mut self.pending.args);
                if written.is_ok() {
                    renumber_into(&mut self.pending.sql, sql, offset);
                    self.pending.sql.push_str(";\n");
                    self.pending.statements += 1;
                }
                written
            }
            Backend::Postgres => {
                let mut args = AnyArguments::default();
                let written = bound(&mut args);
                if written.is_ok() {
                    self.pending.separate.push((sql.to_owned(), args));
                }
                written
            }
        };
        // Values of a statement that failed half-way stay in the shared argument list and
        // would shift every later statement's: the operation fails as a whole.
        written.map_err(|reason| {
            self.failed = Some(reason.clone());
            StoreError::Corrupt(reason)
        })
    }

    /// Sends the deferred statements.
    pub(crate) async fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(reason) = &self.failed {
            // Nothing more of a failed operation goes out.
            return Err(StoreError::Corrupt(reason.clone()));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let Pending { sql, args, statements, separate } = std::mem::take(&mut self.pending);
        self.sent = true;
        let result = async {
            if !sql.is_empty() {
                // The connection keeps a prepared copy of each text for next time; a text of
                // hundreds of statements (a message to hundreds of recipients) is unlikely
                // to come again and would only crowd the cache.
                let query = sqlx::query_with(sqlx::AssertSqlSafe(sql), args).persistent(statements <= 32);
                query.execute(self.raw_conn()).await?;
            }
            for (sql, args) in separate {
                sqlx::query_with(sqlx::AssertSqlSafe(sql), args).execute(self.raw_conn()).await?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(e) = &result {
            self.failed = Some(format!("held writes failed: {e}"));
        }
        result
    }

    /// Forgets what the current operation wrote but did not send, and what it learnt of the
    /// audit chain since `audit_mark`: it failed, and its savepoint undoes the rest.
    fn discard(&mut self, audit_mark: (usize, bool)) {
        self.pending = Pending::default();
        self.failed = None;
        self.audit_seen.truncate(audit_mark.0);
        self.audit_head_known = audit_mark.1;
    }

    fn audit_mark(&self) -> (usize, bool) {
        (self.audit_seen.len(), self.audit_head_known)
    }

    /// Clears what belongs to one transaction.
    fn reset(&mut self) {
        self.pending = Pending::default();
        self.failed = None;
        self.sent = false;
        self.audit_seen.clear();
        self.audit_head_known = false;
        self.holds_events_lock = false;
    }

    pub(crate) fn pooled(conn: PoolConnection<Any>, backend: Backend, node: Arc<str>) -> Tx {
        Tx::new(TxConn::Pooled(conn), backend, node)
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
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(self.conn().await?).await?;
        }
        Ok(())
    }

    /// Serializes this transaction with every other that takes the same `key`, until it
    /// ends (PostgreSQL; on SQLite every write transaction is serialized already).
    pub(crate) async fn serialize_on(&mut self, key: i64) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(self.conn().await?).await?;
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
        sqlx::query(sql).execute(self.conn().await?).await?;
        Ok(())
    }

    /// Ends a transaction begun with [`Tx::begin`] outside the writer, undoing it: held
    /// statements are dropped, not sent.
    pub(crate) async fn rollback(&mut self) -> Result<(), StoreError> {
        self.reset();
        self.control("ROLLBACK").await
    }

    /// A statement that ends a transaction or savepoint: sent as it is, the deferred
    /// statements having been sent or discarded by the writer.
    async fn control(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql).execute(self.raw_conn()).await?;
        Ok(())
    }

    /// Starts a write transaction. SQLite takes the write lock at once (IMMEDIATE) so that a
    /// transaction never fails half-way on lock upgrade; PostgreSQL locks rows as it writes
    /// them.
    pub(crate) async fn begin(&mut self) -> Result<(), StoreError> {
        self.reset();
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
    /// The operation's own statements failed when they were sent, after it returned.
    fn fail(&mut self, error: StoreError);
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

    fn fail(&mut self, error: StoreError) {
        self.result = Err(error);
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
        let tx_conn = Tx::new(TxConn::Owned(conn), Backend::Sqlite, node);
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
    let mut tx = Tx::new(TxConn::Txn(txn), Backend::Postgres, node);
    let mut result = op(&mut tx).await;
    // Also fails an operation whose held writes failed earlier (see `Tx::failed`).
    if result.is_ok()
        && let Err(e) = tx.flush().await
    {
        result = Err(e);
    }
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
        // the transaction back undoes exactly its changes.
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
        // The savepoint goes out with the operation's first statements and is released with
        // its last: no round trip of its own.
        tx.sent = false;
        let mark = tx.audit_mark();
        if let Err(e) = tx.defer("SAVEPOINT op", |_| {}) {
            failure = Some(e.to_string());
            job.abort(e.to_string());
            break;
        }
        let mut outcome = job.run(tx).await;
        let hooks = tx.take_on_commit();
        if outcome.succeeded() {
            // Sending fails an operation whose held writes failed earlier (`Tx::failed`).
            let released = if tx.failed.is_none() && !tx.sent && tx.pending.statements == 1 {
                // Nothing but the savepoint: nothing to send.
                tx.pending = Pending::default();
                Ok(())
            } else {
                match tx.defer("RELEASE op", |_| {}) {
                    Ok(()) => tx.flush().await,
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = released {
                outcome.fail(e);
            }
        }
        let mut closed = Ok(());
        if outcome.succeeded() {
            committed.extend(hooks);
        } else {
            let sent = tx.sent;
            tx.discard(mark);
            if sent {
                // Whatever of it reached the database is undone; the savepoint, sent with
                // its first statements, is open until released here.
                closed = tx.control("ROLLBACK TO op; RELEASE op").await;
            }
        }
        outcomes.push(outcome);
        if let Err(e) = closed {
            failure = Some(e.to_string());
            break;
        }
    }
    let commit = match failure {
        None => tx.control("COMMIT").await.map_err(|e| e.to_string()),
        Some(reason) => Err(reason),
    };
    if commit.is_err() {
        let _ = tx.control("ROLLBACK").await;
    }
    tx.reset();
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
    let mut outcome = job.run(tx).await;
    let hooks = tx.take_on_commit();
    // Also fails an operation whose held writes failed earlier (see `Tx::failed`).
    if outcome.succeeded()
        && let Err(e) = tx.flush().await
    {
        outcome.fail(e);
    }
    let end = if outcome.succeeded() {
        tx.control("COMMIT").await.map_err(|e| e.to_string())
    } else {
        // The operation's own error is its answer; nothing of it stays.
        tx.discard((0, false));
        tx.control("ROLLBACK").await.map_err(|e| e.to_string())
    };
    if let Err(reason) = &end {
        let _ = tx.control("ROLLBACK").await;
        tracing::error!(batch = 1, %reason, "ending a transaction failed");
    } else if outcome.succeeded() {
        for hook in hooks {
            hook();
        }
    }
    tx.reset();
    outcome.deliver(end);
}

#[cfg(test)]
mod tests {
    use super::renumber_into;

    #[test]
    fn parameters_are_renumbered_after_the_statements_before() {
        let mut sql = String::from("INSERT INTO a VALUES ($1);\n");
        renumber_into(&mut sql, "UPDATE b SET x = $1, y = $12 WHERE z = $2 AND w = $", 1);
        assert_eq!(sql, "INSERT INTO a VALUES ($1);\nUPDATE b SET x = $2, y = $13 WHERE z = $3 AND w = $");
    }
}
