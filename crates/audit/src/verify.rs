//! Walking the chain and its checkpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use carepost_store::audit_log::{AuditRow, CheckpointRow};

use crate::chain::{GENESIS, record_hash};
use crate::{Audit, AuditError};

const PAGE: i64 = 5_000;

/// Something wrong with the log, named by the sequence number where it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The record's contents no longer match its hash.
    Altered { seq: i64 },
    /// The record at `seq` is intact but was record `from`: records were reordered, or one was
    /// inserted or deleted before it and the rest renumbered.
    Moved { seq: i64, from: i64 },
    /// No record has this sequence number.
    Missing { seq: i64 },
    /// The record is intact but does not follow its predecessor: inserted or reordered.
    Unlinked { seq: i64 },
    /// The log ends at `last` but a checkpoint says it reached `covered`.
    Truncated { last: i64, covered: i64 },
    BadSignature { seq: i64 },
    CheckpointMismatch { seq: i64 },
    /// The anchor file holds a checkpoint the database no longer has.
    AnchorMissing { seq: i64 },
}

impl Problem {
    /// The sequence number where the problem first shows; problems are reported in this order.
    pub fn seq(&self) -> i64 {
        match *self {
            Problem::Altered { seq }
            | Problem::Moved { seq, .. }
            | Problem::Missing { seq }
            | Problem::Unlinked { seq }
            | Problem::BadSignature { seq }
            | Problem::CheckpointMismatch { seq }
            | Problem::AnchorMissing { seq } => seq,
            Problem::Truncated { last, .. } => last + 1,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Altered { seq } => write!(f, "record {seq} was altered: its contents do not match its hash"),
            Problem::Moved { seq, from } => write!(
                f,
                "record {seq} holds record {from}: records were reordered, or one was inserted or deleted before it"
            ),
            Problem::Missing { seq } => write!(f, "record {seq} is missing: deleted"),
            Problem::Unlinked { seq } => write!(f, "record {seq} does not follow record {}: inserted or reordered", seq - 1),
            Problem::Truncated { last, covered } => write!(
                f,
                "record {} is missing: the log was truncated after record {last}, but a checkpoint covers record {covered}",
                last + 1
            ),
            Problem::BadSignature { seq } => write!(f, "checkpoint at record {seq} has an invalid signature: forged"),
            Problem::CheckpointMismatch { seq } => write!(f, "checkpoint at record {seq} does not match record {seq}"),
            Problem::AnchorMissing { seq } => {
                write!(f, "checkpoint at record {seq} is in the anchor file but missing from the database")
            }
        }
    }
}

/// The result of walking the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub records: u64,
    pub last_seq: i64,
    pub last_checkpoint: Option<i64>,
    /// Sorted by sequence number; empty when the log is intact.
    pub problems: Vec<Problem>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

pub(crate) struct Anchor {
    pub seq: i64,
    pub hash: Vec<u8>,
}

pub(crate) fn anchor_line(c: &CheckpointRow) -> String {
    format!("{} {} {} {} {}", c.seq, hex::encode(&c.hash), c.at, c.key_id, hex::encode(&c.signature))
}

pub(crate) fn read_anchors(path: &Path) -> Result<Vec<Anchor>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AuditError::Anchor { path: path.to_owned(), source }),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let seq = parts.next()?.parse().ok()?;
            let hash = hex::decode(parts.next()?).ok()?;
            Some(Anchor { seq, hash })
        })
        .collect())
}

/// Which sequence number, near `seq`, a record's contents hash correctly under.
fn original_seq(row: &AuditRow) -> Option<i64> {
    [-1i64, 1, -2, 2].into_iter().map(|d| row.seq + d).find(|&s| {
        let mut moved = row.clone();
        moved.seq = s;
        record_hash(&moved).as_slice() == row.hash.as_slice()
    })
}

impl Audit {
    /// Walks every record and checkpoint. Reads only; safe while the server runs.
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let store = &self.inner.store;
        let checkpoints: BTreeMap<i64, CheckpointRow> =
            store.audit_checkpoints().await?.into_iter().map(|c| (c.seq, c)).collect();
        let mut problems = Vec::new();
        for c in checkpoints.values() {
            if !self.inner.key.verifies(c) {
                problems.push(Problem::BadSignature { seq: c.seq });
            }
        }

        let mut expected = 1i64;
        let mut prev_hash = GENESIS.to_vec();
        let mut records = 0u64;
        let mut hashes_at_checkpoints = BTreeMap::new();
        loop {
            let page = store.audit_records_after(expected - 1, PAGE).await?;
            let Some(last) = page.last().map(|r| r.seq) else { break };
            for row in &page {
                records += 1;
                if row.seq > expected {
                    problems.push(Problem::Missing { seq: expected });
                } else if record_hash(row).as_slice() != row.hash.as_slice() {
                    problems.push(match original_seq(row) {
                        Some(from) => Problem::Moved { seq: row.seq, from },
                        None => Problem::Altered { seq: row.seq },
                    });
                } else if row.prev_hash != prev_hash {
                    problems.push(Problem::Unlinked { seq: row.seq });
                }
                if checkpoints.contains_key(&row.seq) {
                    hashes_at_checkpoints.insert(row.seq, row.hash.clone());
                }
                prev_hash = row.hash.clone();
                expected = row.seq + 1;
            }
            if problems.len() > 100 || (page.len() as i64) < PAGE {
                expected = last + 1;
                break;
            }
        }
        let last_seq = expected - 1;

        for c in checkpoints.values() {
            match hashes_at_checkpoints.get(&c.seq) {
                Some(h) if *h == c.hash => {}
                Some(_) => problems.push(Problem::CheckpointMismatch { seq: c.seq }),
                None if c.seq > last_seq => problems.push(Problem::Truncated { last: last_seq, covered: c.seq }),
                None => problems.push(Problem::Missing { seq: c.seq }),
            }
        }
        if let Some(path) = &self.inner.anchor_path {
            for anchor in read_anchors(path)? {
                match checkpoints.get(&anchor.seq) {
                    Some(c) if c.hash == anchor.hash => {}
                    Some(_) => problems.push(Problem::CheckpointMismatch { seq: anchor.seq }),
                    None if anchor.seq > last_seq => {
                        problems.push(Problem::Truncated { last: last_seq, covered: anchor.seq })
                    }
                    None => problems.push(Problem::AnchorMissing { seq: anchor.seq }),
                }
            }
        }
        problems.sort_by_key(Problem::seq);
        problems.dedup();
        Ok(Verification {
            records,
            last_seq,
            last_checkpoint: checkpoints.keys().next_back().copied(),
            problems,
        })
    }
}
