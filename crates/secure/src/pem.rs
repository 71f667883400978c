//! Reading PEM (RFC 7468) blocks out of text that may hold other things too.

/// The DER bytes of the first PEM block labelled `label`, or `None` if the
/// input holds no such block (or is not text).
pub(crate) fn first_block(input: &[u8], label: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(input).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    crate::mime::decode_base64_body(&text.as_bytes()[start..stop])
}

/// The DER bytes of every PEM block labelled `label`, in order.
pub(crate) fn all_blocks(input: &[u8], label: &str) -> Vec<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Vec::new();
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body_start = start + begin.len();
        let Some(len) = rest[body_start..].find(&end) else {
            break;
        };
        if let Some(der) = crate::mime::decode_base64_body(&rest.as_bytes()[body_start..body_start + len]) {
            blocks.push(der);
        }
        rest = &rest[body_start + len + end.len()..];
    }
    blocks
}
