//! Bounds on the work one message may cost.

/// Limits on what one scan reads. A message that hits one is still scanned as far as
/// the limits allow, and its report is marked `incomplete` with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Extracted text scanned per message, all parts together.
    pub max_message_text_bytes: usize,
    /// Extracted text scanned per part (body part, attachment, file in an archive).
    pub max_part_text_bytes: usize,
    /// Size of one attachment (after transfer decoding) that is opened at all.
    pub max_attachment_bytes: usize,
    /// Bytes that may be inflated from one attachment (zip entries, PDF streams).
    pub max_decompressed_bytes: usize,
    /// Largest inflated/compressed ratio accepted for one zip entry or PDF stream.
    pub max_compression_ratio: usize,
    /// Parts looked at per message, nested messages included.
    pub max_parts: usize,
    /// Entries looked at per archive.
    pub max_archive_entries: usize,
    /// Levels of message/rfc822 nesting followed.
    pub max_nesting_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_text_bytes: 32 << 20,
            max_part_text_bytes: 8 << 20,
            max_attachment_bytes: 50 << 20,
            max_decompressed_bytes: 64 << 20,
            max_compression_ratio: 200,
            max_parts: 1000,
            max_archive_entries: 2000,
            max_nesting_depth: 8,
        }
    }
}
