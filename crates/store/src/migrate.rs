//! Moving an installation from SQLite to PostgreSQL: every row of every table copied as it
//! is stored, then checked on both sides.
//!
//! Nothing is unsealed: sealed columns are bytes to this module, copied and hashed as bytes,
//! so the copy needs no key and the target holds exactly what the source held. The tables,
//! their columns, primary keys, foreign keys and identity columns are read from the target's
//! catalog (the PostgreSQL migrations are the schema), so a table a later migration adds is
//! copied without a change here; the source must have the same tables and columns.
//!
//! The whole copy is one PostgreSQL transaction, verified before it commits: if anything
//! fails or differs, the target is left as empty as it was found, and the copy can be run
//! again. The source is opened read-only ([`Store::open_read_only`]) and read in one
//! transaction, so every table comes from the same moment.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::digest;
use futures::TryStreamExt;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::{Backend, Store, StoreError};

/// Rows per `INSERT`. Bounded again by PostgreSQL's 65,535 parameters per statement.
const BATCH_ROWS: usize = 500;
const MAX_PARAMETERS: usize = 65_535;

/// What a copy is doing, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Rows are being read from the source and written to the target.
    Copying,
    /// The target's rows are being read back, counted and hashed.
    Verifying,
}

/// Where [`Store::copy_into`] is, after each batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyProgress {
    pub phase: Phase,
    /// The table being copied or verified.
    pub table: String,
    /// Rows of this phase done so far, over all tables, out of `total`.
    pub done: u64,
    pub total: u64,
}

/// One table as copied: its rows and the SHA-256 over them in primary-key order, the same on
/// both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
    pub sha256: [u8; 32],
}

/// What [`Store::copy_into`] copied, in the order it copied the tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreCopyReport {
    pub tables: Vec<TableCopy>,
}

impl StoreCopyReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// How a column's values are read and written: what the PostgreSQL column is declared as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Text,
    Bytes,
}

#[derive(Debug)]
struct Column {
    name: String,
    kind: Kind,
    identity: bool,
}

#[derive(Debug)]
struct Table {
    name: String,
    columns: Vec<Column>,
    /// Primary key columns in key order; empty when the table has none (then every column
    /// orders the rows).
    key: Vec<String>,
}

enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// `name` as an SQL identifier, the same on both backends.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn copy_error(message: impl Into<String>) -> StoreError {
    StoreError::Copy(message.into())
}

fn kind_of(table: &str, column: &str, data_type: &str) -> Result<Kind, StoreError> {
    Ok(match data_type {
        "bigint" | "integer" | "smallint" => Kind::Int,
        "double precision" | "real" => Kind::Float,
        "text" | "character varying" | "character" => Kind::Text,
        "bytea" => Kind::Bytes,
        other => {
            return Err(copy_error(format!("{table}.{column} has the type {other}, which the copy does not know")));
        }
    })
}

impl Table {
    fn column_list(&self) -> String {
        self.columns.iter().map(|c| quoted(&c.name)).collect::<Vec<_>>().join(", ")
    }

    /// `SELECT` of every column in primary-key order. Text keys sort by byte on PostgreSQL
    /// (`COLLATE "C"`), as SQLite's default BINARY collation does, so both sides hash the
    /// rows in the same order whatever the database's locale.
    fn select(&self, backend: Backend) -> String {
        let order: Vec<&str> = if self.key.is_empty() {
            self.columns.iter().map(|c| c.name.as_str()).collect()
        } else {
            self.key.iter().map(String::as_str).collect()
        };
        let order = order
            .iter()
            .map(|name| {
                let text = self.columns.iter().any(|c| c.name == *name && c.kind == Kind::Text);
                if text && backend == Backend::Postgres {
                    format!("{} COLLATE \"C\"", quoted(name))
                } else {
                    quoted(name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {} FROM {} ORDER BY {order}", self.column_list(), quoted(&self.name))
    }

    fn insert(&self, rows: usize) -> String {
        let width = self.columns.len();
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", quoted(&self.name), self.column_list());
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", r * width + c + 1));
            }
            sql.push(')');
        }
        sql
    }

    fn batch_rows(&self) -> usize {
        BATCH_ROWS.min(MAX_PARAMETERS / self.columns.len().max(1)).max(1)
    }

    fn read(&self, row: &sqlx::any::AnyRow, number: u64) -> Result<Vec<Value>, StoreError> {
        let mut values = Vec::with_capacity(self.columns.len());
        for (i, column) in self.columns.iter().enumerate() {
            let wrong = |e: sqlx::Error| {
                copy_error(format!(
                    "table {}, row {number} in key order: column {} cannot be read as {:?}: {e}",
                    self.name, column.name, column.kind
                ))
            };
            let value = match column.kind {
                Kind::Int => row.try_get::<Option<i64>, _>(i).map_err(wrong)?.map(Value::Int),
                Kind::Float => row.try_get::<Option<f64>, _>(i).map_err(wrong)?.map(Value::Float),
                Kind::Text => row.try_get::<Option<String>, _>(i).map_err(wrong)?.map(Value::Text),
                Kind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i).map_err(wrong)?.map(Value::Bytes),
            };
            values.push(value.unwrap_or(Value::Null));
        }
        Ok(values)
    }
}

/// SHA-256 over a table's rows: each value tagged with its kind and, for text and bytes,
/// preceded by its length, so no two different tables of rows hash alike.
struct RowHash {
    context: digest::Context,
    rows: u64,
}

impl RowHash {
    fn new() -> RowHash {
        RowHash { context: digest::Context::new(&digest::SHA256), rows: 0 }
    }

    fn add(&mut self, values: &[Value]) {
        self.rows += 1;
        for value in values {
            match value {
                Value::Null => self.context.update(&[0]),
                Value::Int(i) => {
                    self.context.update(&[1]);
                    self.context.update(&i.to_be_bytes());
                }
                Value::Float(f) => {
                    self.context.update(&[2]);
                    self.context.update(&f.to_bits().to_be_bytes());
                }
                Value::Text(s) => {
                    self.context.update(&[3]);
                    self.context.update(&(s.len() as u64).to_be_bytes());
                    self.context.update(s.as_bytes());
                }
                Value::Bytes(b) => {
                    self.context.update(&[4]);
                    self.context.update(&(b.len() as u64).to_be_bytes());
                    self.context.update(b);
                }
            }
        }
    }

    fn finish(self) -> (u64, [u8; 32]) {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.context.finish().as_ref());
        (self.rows, out)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tables of the target (PostgreSQL), parents before the tables whose foreign keys name
/// them.
async fn target_schema(conn: &mut AnyConnection) -> Result<Vec<Table>, StoreError> {
    // information_schema's own types (sql_identifier, yes_or_no) are cast to what the Any
    // driver reads.
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT CAST(c.table_name AS TEXT), CAST(c.column_name AS TEXT), CAST(c.data_type AS TEXT), \
                CAST(c.is_identity AS TEXT) \
         FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
           AND c.table_name <> '_sqlx_migrations' \
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(k.table_name AS TEXT), CAST(k.column_name AS TEXT) \
         FROM information_schema.table_constraints t \
         JOIN information_schema.key_column_usage k ON k.constraint_schema = t.constraint_schema \
              AND k.constraint_name = t.constraint_name AND k.table_name = t.table_name \
         WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = current_schema() \
         ORDER BY k.table_name, k.ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await?;
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(c.relname AS TEXT), CAST(p.relname AS TEXT) \
         FROM pg_constraint f \
         JOIN pg_class c ON c.oid = f.conrelid \
         JOIN pg_class p ON p.oid = f.confrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE f.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (table, column, data_type, identity) in columns {
        let kind = kind_of(&table, &column, &data_type)?;
        tables
            .entry(table.clone())
            .or_insert_with(|| Table { name: table, columns: Vec::new(), key: Vec::new() })
            .columns
            .push(Column { name: column, kind, identity: identity == "YES" });
    }
    for (table, column) in keys {
        if let Some(t) = tables.get_mut(&table) {
            t.key.push(column);
        }
    }
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (child, parent) in references {
        if child != parent {
            parents.entry(child).or_default().insert(parent);
        }
    }
    // Repeatedly take the tables whose parents are all placed: alphabetical within a round,
    // so the order is the same on every run.
    let mut ordered = Vec::with_capacity(tables.len());
    let mut placed = BTreeSet::new();
    while !tables.is_empty() {
        let ready: Vec<String> = tables
            .keys()
            .filter(|name| parents.get(*name).is_none_or(|p| p.iter().all(|p| placed.contains(p))))
            .cloned()
            .collect();
        if ready.is_empty() {
            let names: Vec<&str> = tables.keys().map(String::as_str).collect();
            return Err(copy_error(format!("the tables {} reference each other in a cycle", names.join(", "))));
        }
        for name in ready {
            if let Some(table) = tables.remove(&name) {
                ordered.push(table);
            }
            placed.insert(name);
        }
    }
    Ok(ordered)
}

async fn migration_versions(conn: &mut AnyConnection) -> Result<BTreeSet<i64>, StoreError> {
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| copy_error(format!("reading the applied migrations: {e}")))?;
    Ok(versions.into_iter().collect())
}

fn listed(versions: impl IntoIterator<Item = i64>) -> String {
    versions.into_iter().map(|v| format!("{v:04}")).collect::<Vec<_>>().join(", ")
}

/// The source (SQLite) must hold the same tables and columns as the target: the same
/// migrations applied, nothing added by hand.
async fn check_source(
    source: &mut AnyConnection,
    target: &[Table],
    source_versions: &BTreeSet<i64>,
    target_versions: &BTreeSet<i64>,
) -> Result<(), StoreError> {
    let behind: Vec<i64> = target_versions.difference(source_versions).copied().collect();
    if !behind.is_empty() {
        return Err(copy_error(format!(
            "the source database lacks migrations {}: start this version of carepost on it once (it applies them), stop it, then copy",
            listed(behind)
        )));
    }
    let ahead: Vec<i64> = source_versions.difference(target_versions).copied().collect();
    if !ahead.is_empty() {
        return Err(copy_error(format!(
            "the source database has migrations {} that this version of carepost does not know: copy with the version that wrote it",
            listed(ahead)
        )));
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *source)
    .await?;
    let source_tables: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let target_tables: BTreeSet<&str> = target.iter().map(|t| t.name.as_str()).collect();
    if source_tables != target_tables {
        let only_source: Vec<&str> = source_tables.difference(&target_tables).copied().collect();
        let only_target: Vec<&str> = target_tables.difference(&source_tables).copied().collect();
        return Err(copy_error(format!(
            "the databases do not have the same tables (only in the source: {}; only in the target: {})",
            only_source.join(", "),
            only_target.join(", ")
        )));
    }
    for table in target {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY name")
            .bind(&table.name)
            .fetch_all(&mut *source)
            .await?;
        let source_columns: BTreeSet<&str> = columns.iter().map(String::as_str).collect();
        let target_columns: BTreeSet<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        if source_columns != target_columns {
            return Err(copy_error(format!(
                "table {} has the columns {} in the source but {} in the target",
                table.name,
                source_columns.into_iter().collect::<Vec<_>>().join(", "),
                target_columns.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

async fn count(conn: &mut AnyConnection, table: &str) -> Result<u64, StoreError> {
    let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {}", quoted(table));
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *conn).await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// The highest value SQLite ever gave an AUTOINCREMENT column of `table` (it may be above
/// the highest still stored, after deletions), if it keeps one.
async fn sqlite_sequence(conn: &mut AnyConnection, table: &str) -> Result<Option<i64>, StoreError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'")
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_none() {
        return Ok(None);
    }
    Ok(sqlx::query_scalar("SELECT CAST(seq AS BIGINT) FROM sqlite_sequence WHERE name = $1")
        .bind(table)
        .fetch_optional(&mut *conn)
        .await?)
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    table: &Table,
    rows: Vec<Vec<Value>>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for row in rows {
        for (value, column) in row.into_iter().zip(&table.columns) {
            query = match (value, column.kind) {
                (Value::Null, Kind::Int) => query.bind(None::<i64>),
                (Value::Null, Kind::Float) => query.bind(None::<f64>),
                (Value::Null, Kind::Text) => query.bind(None::<String>),
                (Value::Null, Kind::Bytes) => query.bind(None::<Vec<u8>>),
                (Value::Int(i), _) => query.bind(i),
                (Value::Float(f), _) => query.bind(f),
                (Value::Text(s), _) => query.bind(s),
                (Value::Bytes(b), _) => query.bind(b),
            };
        }
    }
    query
}

impl Store {
    /// Copies every row of this store (SQLite) into `target` (PostgreSQL, its migrations
    /// applied, every table empty), verifies that each table has the same number of rows and
    /// the same SHA-256 over them on both sides, and only then commits. Sealed columns are
    /// copied as bytes. Identity columns continue after the highest value the source ever
    /// gave. This store is only read. `progress` is called after each batch.
    ///
    /// Fails, leaving the target as it was, if the target is not empty, if the two do not
    /// have the same migrations and tables, or if any table differs after the copy (the
    /// error names the table and both row counts).
    pub async fn copy_into(
        &self,
        target: &Store,
        progress: &mut (dyn FnMut(&CopyProgress) + Send),
    ) -> Result<StoreCopyReport, StoreError> {
        if self.backend != Backend::Sqlite || target.backend != Backend::Postgres {
            return Err(copy_error("the copy goes from a SQLite store to a PostgreSQL store"));
        }
        let mut txn = target.pool().begin().await?;
        let tables = target_schema(&mut txn).await?;
        let target_versions = migration_versions(&mut txn).await?;
        for table in &tables {
            let rows = count(&mut txn, &table.name).await?;
            if rows > 0 {
                return Err(copy_error(format!(
                    "the target database is not empty: table {} holds {rows} rows; the copy only goes into an empty database",
                    table.name
                )));
            }
        }

        let mut source = self.pool().acquire().await?;
        // One read transaction: every table as of the same moment.
        sqlx::query("BEGIN").execute(&mut *source).await?;
        let result = copy_tables(&mut source, &mut txn, &tables, &target_versions, progress).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut *source).await;
        let report = result?;
        txn.commit().await?;
        Ok(report)
    }
}

async fn copy_tables(
    source: &mut AnyConnection,
    target: &mut AnyConnection,
    tables: &[Table],
    target_versions: &BTreeSet<i64>,
    progress: &mut (dyn FnMut(&CopyProgress) + Send),
) -> Result<StoreCopyReport, StoreError> {
    let source_versions = migration_versions(source).await?;
    check_source(source, tables, &source_versions, target_versions).await?;
    let mut counts = Vec::with_capacity(tables.len());
    for table in tables {
        counts.push(count(source, &table.name).await?);
    }
    let total: u64 = counts.iter().sum();

    let mut report = StoreCopyReport::default();
    let mut done = 0;
    for table in tables {
        let mut at = CopyProgress { phase: Phase::Copying, table: table.name.clone(), done, total };
        progress(&at);
        let batch = table.batch_rows();
        let full_insert = table.insert(batch);
        let mut hash = RowHash::new();
        let mut pending: Vec<Vec<Value>> = Vec::with_capacity(batch);
        let select = table.select(Backend::Sqlite);
        let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(&mut *source);
        let mut number = 0u64;
        loop {
            let row = rows.try_next().await.map_err(|e| {
                copy_error(format!("table {}: reading the source after {number} rows: {e}", table.name))
            })?;
            let last = row.is_none();
            if let Some(row) = row {
                number += 1;
                let values = table.read(&row, number)?;
                hash.add(&values);
                pending.push(values);
            }
            if pending.len() == batch || (last && !pending.is_empty()) {
                let n = pending.len();
                let sql = if n == batch { full_insert.clone() } else { table.insert(n) };
                let rows_in = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                bind_all(sqlx::query(AssertSqlSafe(sql)), table, rows_in).execute(&mut *target).await.map_err(|e| {
                    copy_error(format!("table {}: writing rows {} to {number}: {e}", table.name, number - n as u64 + 1))
                })?;
                done += n as u64;
                at.done = done;
                progress(&at);
            }
            if last {
                break;
            }
        }
        drop(rows);
        let (rows, sha256) = hash.finish();
        report.tables.push(TableCopy { table: table.name.clone(), rows, sha256 });
    }

    // Identity columns hand out values after the highest the source ever gave, so a value
    // that names a deleted row (a webhook cursor past purged events) is never given again.
    for table in tables {
        for column in table.columns.iter().filter(|c| c.identity) {
            let max_sql = format!("SELECT CAST(MAX({}) AS BIGINT) FROM {}", quoted(&column.name), quoted(&table.name));
            let stored: Option<i64> = sqlx::query_scalar(AssertSqlSafe(max_sql)).fetch_one(&mut *target).await?;
            let given = sqlite_sequence(source, &table.name).await?;
            let high = stored.unwrap_or(0).max(given.unwrap_or(0));
            // setval(seq, 1, false): the next value is 1; setval(seq, n, true): n + 1.
            sqlx::query("SELECT CAST(setval(pg_get_serial_sequence($1, $2), $3, $4) AS BIGINT)")
                .bind(&table.name)
                .bind(&column.name)
                .bind(high.max(1))
                .bind(high > 0)
                .execute(&mut *target)
                .await?;
        }
    }

    let mut checked = 0;
    for (table, copied) in tables.iter().zip(&report.tables) {
        let mut at = CopyProgress { phase: Phase::Verifying, table: table.name.clone(), done: checked, total };
        progress(&at);
        let mut hash = RowHash::new();
        let select = table.select(Backend::Postgres);
        let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(&mut *target);
        let mut number = 0u64;
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| copy_error(format!("table {}: reading the target after {number} rows: {e}", table.name)))?
        {
            number += 1;
            hash.add(&table.read(&row, number)?);
            if number.is_multiple_of(BATCH_ROWS as u64) {
                at.done = checked + number;
                progress(&at);
            }
        }
        drop(rows);
        let (rows, sha256) = hash.finish();
        if rows != copied.rows {
            return Err(copy_error(format!(
                "table {}: {} rows in the source, {rows} in the target; nothing was committed",
                table.name, copied.rows
            )));
        }
        if sha256 != copied.sha256 {
            return Err(copy_error(format!(
                "table {}: the {rows} rows differ between source and target (SHA-256 {} against {}); nothing was committed",
                table.name,
                hex(&copied.sha256),
                hex(&sha256)
            )));
        }
        checked += rows;
        at.done = checked;
        progress(&at);
    }
    Ok(report)
}
