//! Walking the chain and its checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use carepost_store::audit_log::{AuditRow, CheckpointRow};

use crate::chain::{GENESIS, UNANCHORED_ACTION, record_hash};
use crate::{Audit, AuditError};

const PAGE: i64 = 5_000;

/// Something wrong with the log, named by the sequence number where it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The record's contents no longer match its hash.
    Altered {
        seq: i64,
    },
    /// The record at `seq` is intact but was record `from`: records were reordered, or one was
    /// inserted or deleted before it and the rest renumbered.
    Moved {
        seq: i64,
        from: i64,
    },
    /// No record has this sequence number.
    Missing {
        seq: i64,
    },
    /// The record is intact but does not follow its predecessor: inserted or reordered.
    Unlinked {
        seq: i64,
    },
    /// The log ends at `last` but a checkpoint says it reached `covered`.
    Truncated {
        last: i64,
        covered: i64,
    },
    BadSignature {
        seq: i64,
    },
    /// Record `seq` is intact and linked, but not the record a signed checkpoint names: it,
    /// or a record before it, was rewritten and the hashes recomputed.
    CheckpointMismatch {
        seq: i64,
    },
    /// The anchor file holds a checkpoint the database no longer has.
    AnchorMissing {
        seq: i64,
    },
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
            Problem::Unlinked { seq } => {
                write!(f, "record {seq} does not follow record {}: inserted or reordered", seq - 1)
            }
            Problem::Truncated { last, covered } => write!(
                f,
                "record {} is missing: the log was truncated after record {last}, but a checkpoint covers record {covered}",
                last + 1
            ),
            Problem::BadSignature { seq } => write!(f, "checkpoint at record {seq} has an invalid signature: forged"),
            Problem::CheckpointMismatch { seq } => write!(
                f,
                "record {seq} does not match the checkpoint signed for it: it, or a record before it, was rewritten"
            ),
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
    /// Records after the newest signed head, first and last: written in the last few
    /// seconds while carepost serves, or by a process that stopped without shutting down.
    /// Nothing vouches for them yet: deleting them would go unnoticed.
    pub unanchored: Option<(i64, i64)>,
    /// Ranges that a starting server found unsigned (its predecessor crashed) and named in
    /// an `audit.unanchored` record: first, last, and that record's sequence number.
    pub recovered: Vec<(i64, i64, i64)>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub seq: i64,
    pub hash: Vec<u8>,
    /// The whole checkpoint, when the line carries one that parses.
    pub signed: Option<CheckpointRow>,
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
            let signed = (|| {
                Some(CheckpointRow {
                    seq,
                    hash: hash.clone(),
                    at: parts.next()?.parse().ok()?,
                    key_id: parts.next()?.to_owned(),
                    signature: hex::decode(parts.next()?).ok()?,
                })
            })();
            Some(Anchor { seq, hash, signed })
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
        let anchors = match &self.inner.anchor_path {
            Some(path) => read_anchors(path)?,
            None => Vec::new(),
        };
        let mut problems = Vec::new();
        for c in checkpoints.values() {
            if !self.inner.key.verifies(c) {
                problems.push(Problem::BadSignature { seq: c.seq });
            }
        }
        let wanted: BTreeSet<i64> = checkpoints.keys().copied().chain(anchors.iter().map(|a| a.seq)).collect();

        let mut expected = 1i64;
        let mut prev_hash = GENESIS.to_vec();
        let mut records = 0u64;
        let mut stored_hashes = BTreeMap::new();
        let mut recovered = Vec::new();
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
                if wanted.contains(&row.seq) {
                    stored_hashes.insert(row.seq, row.hash.clone());
                }
                if row.action == UNANCHORED_ACTION
                    && let Some(range) = unanchored_range(&row.details)
                {
                    recovered.push((range.0, range.1, row.seq));
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

        // Every signed head, from the database or the anchor file, names a record and its
        // hash: the log must still hold exactly that record.
        // Only a head with a valid signature vouches for the records up to it.
        let mut covered = 0i64;
        let mut claim = |seq: i64, hash: &[u8], valid: bool, problems: &mut Vec<Problem>| match stored_hashes.get(&seq)
        {
            Some(h) if h.as_slice() == hash => {
                if valid {
                    covered = covered.max(seq);
                }
            }
            Some(_) => problems.push(Problem::CheckpointMismatch { seq }),
            None if seq > last_seq => problems.push(Problem::Truncated { last: last_seq, covered: seq }),
            None => problems.push(Problem::Missing { seq }),
        };
        for c in checkpoints.values() {
            claim(c.seq, &c.hash, self.inner.key.verifies(c), &mut problems);
        }
        for anchor in &anchors {
            let valid = anchor.signed.as_ref().is_some_and(|c| self.inner.key.verifies(c));
            match checkpoints.get(&anchor.seq) {
                Some(c) if c.hash == anchor.hash => {}
                Some(_) => problems.push(Problem::CheckpointMismatch { seq: anchor.seq }),
                None if stored_hashes.contains_key(&anchor.seq) => {
                    // The record is there but its checkpoint was deleted: compare with the
                    // record itself first, so that a rewrite is named as one.
                    let before = problems.len();
                    claim(anchor.seq, &anchor.hash, valid, &mut problems);
                    if problems.len() == before {
                        problems.push(Problem::AnchorMissing { seq: anchor.seq });
                    }
                }
                None => claim(anchor.seq, &anchor.hash, valid, &mut problems),
            }
        }
        problems.sort_by_key(Problem::seq);
        problems.dedup();
        Ok(Verification {
            records,
            last_seq,
            last_checkpoint: checkpoints.keys().next_back().copied(),
            problems,
            unanchored: (last_seq > covered).then_some((covered + 1, last_seq)),
            recovered,
        })
    }
}

/// The range an `audit.unanchored` record names.
fn unanchored_range(details: &str) -> Option<(i64, i64)> {
    let details: BTreeMap<String, String> = serde_json::from_str(details).ok()?;
    Some((details.get("from")?.parse().ok()?, details.get("to")?.parse().ok()?))
}
