//! Reading files out of a zip archive within a decompression budget.
//!
//! Each entry's declared size, its compression ratio and the total inflated across the
//! archive are bounded by [`crate::Limits`], and inflation stops at the budget whatever the
//! headers claim, so a zip bomb costs at most `max_decompressed_bytes`.

use rawzip::{CompressionMethod, ZipArchive};

use super::Sink;
use crate::report::IncompleteReason;

/// An opened archive and the bytes still allowed to be inflated from it.
pub struct Archive<'a> {
    archive: rawzip::ZipSliceArchive<&'a [u8]>,
    budget: usize,
}

impl<'a> Archive<'a> {
    /// Open `bytes` as a zip archive; `None` if it is not one.
    pub fn open(bytes: &'a [u8], sink: &Sink<'_>) -> Option<Archive<'a>> {
        let archive = ZipArchive::from_slice(bytes).ok()?;
        Some(Archive { archive, budget: sink.limits.max_decompressed_bytes })
    }

    /// Names of the archive's entries (files only), at most `max_archive_entries`.
    pub fn names(&self, sink: &mut Sink<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let mut entries = self.archive.entries();
        loop {
            match entries.next_entry() {
                Ok(Some(e)) => {
                    if out.len() >= sink.limits.max_archive_entries {
                        sink.incomplete.insert(IncompleteReason::StructureLimit);
                        break;
                    }
                    if !e.is_dir() {
                        out.push(String::from_utf8_lossy(e.file_path().as_bytes()).into_owned());
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    sink.incomplete.insert(IncompleteReason::Undecodable);
                    break;
                }
            }
        }
        out
    }

    /// The inflated content of the entry called `name`, if present and within limits.
    pub fn read(&mut self, name: &str, sink: &mut Sink<'_>) -> Option<Vec<u8>> {
        let mut entries = self.archive.entries();
        let mut seen = 0usize;
        let record = loop {
            match entries.next_entry() {
                Ok(Some(e)) => {
                    seen += 1;
                    if seen > sink.limits.max_archive_entries {
                        return None;
                    }
                    if e.file_path().as_bytes() == name.as_bytes() {
                        break e;
                    }
                }
                _ => return None,
            }
        };
        let declared = usize::try_from(record.uncompressed_size_hint()).unwrap_or(usize::MAX);
        let compressed = usize::try_from(record.compressed_size_hint()).unwrap_or(usize::MAX);
        let ratio_cap = compressed.saturating_mul(sink.limits.max_compression_ratio).max(64 << 10);
        if declared > self.budget || declared > ratio_cap {
            sink.incomplete.insert(IncompleteReason::DecompressionLimit);
            return None;
        }
        let entry = match self.archive.get_entry(record.wayfinder()) {
            Ok(e) => e,
            Err(_) => {
                sink.incomplete.insert(IncompleteReason::Undecodable);
                return None;
            }
        };
        let data = entry.data();
        let limit = self.budget.min(ratio_cap);
        let out = match record.compression_method() {
            CompressionMethod::STORE => {
                if data.len() > limit {
                    sink.incomplete.insert(IncompleteReason::DecompressionLimit);
                    return None;
                }
                data.to_vec()
            }
            CompressionMethod::DEFLATE => match miniz_oxide::inflate::decompress_to_vec_with_limit(data, limit) {
                Ok(v) => v,
                Err(e) => {
                    let reason = if e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput {
                        IncompleteReason::DecompressionLimit
                    } else {
                        IncompleteReason::Undecodable
                    };
                    sink.incomplete.insert(reason);
                    return None;
                }
            },
            _ => {
                sink.incomplete.insert(IncompleteReason::Undecodable);
                return None;
            }
        };
        self.budget -= out.len().min(self.budget);
        Some(out)
    }
}
