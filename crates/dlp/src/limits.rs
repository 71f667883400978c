//! Bounds on the work one message may cost.

use thiserror::Error;

/// A [`Limits`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitsError {
    #[error("limit `{0}` must be greater than zero")]
    Zero(&'static str),
    #[error("max_part_text_bytes ({part}) is larger than max_message_text_bytes ({message})")]
    PartAboveMessage { part: usize, message: usize },
}

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

impl Limits {
    /// Check that every limit lets a scan do something (for limits read from config).
    pub fn validate(&self) -> Result<(), LimitsError> {
        let fields = [
            ("max_message_text_bytes", self.max_message_text_bytes),
            ("max_part_text_bytes", self.max_part_text_bytes),
            ("max_attachment_bytes", self.max_attachment_bytes),
            ("max_decompressed_bytes", self.max_decompressed_bytes),
            ("max_compression_ratio", self.max_compression_ratio),
            ("max_parts", self.max_parts),
            ("max_archive_entries", self.max_archive_entries),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, v)| *v == 0) {
            return Err(LimitsError::Zero(name));
        }
        if self.max_part_text_bytes > self.max_message_text_bytes {
            return Err(LimitsError::PartAboveMessage {
                part: self.max_part_text_bytes,
                message: self.max_message_text_bytes,
            });
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeros_are_not() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let zero = Limits { max_parts: 0, ..Limits::default() };
        assert_eq!(zero.validate(), Err(LimitsError::Zero("max_parts")));
        let inverted = Limits { max_part_text_bytes: 10, max_message_text_bytes: 5, ..Limits::default() };
        assert!(matches!(inverted.validate(), Err(LimitsError::PartAboveMessage { .. })));
        assert_eq!(zero.validate().unwrap_err().to_string(), "limit `max_parts` must be greater than zero");
    }
}
