//! SMTP replies with enhanced status codes (RFC 3463, RFC 2034).

use std::fmt;

/// One reply: a three-digit code, an enhanced status code (absent only in the greeting and
/// the EHLO reply, as RFC 2034 says) and text, which may span several lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<&'static str>,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Self {
        Reply { code, status: Some(status), text: text.into() }
    }

    /// A reply without an enhanced status code (greeting, EHLO).
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Reply { code, status: None, text: text.into() }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the wire form: `code-...` on every line but the last, `code ...` on the last.
    /// Text never carries CR or LF into the stream: line breaks in `text` split lines, and
    /// other control characters are replaced.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(sep as u8);
            if let Some(status) = self.status {
                out.extend_from_slice(status.as_bytes());
                out.push(b' ');
            }
            for c in line.chars() {
                if c.is_control() {
                    out.push(b'?');
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(String::from_utf8_lossy(&out).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_and_control_characters() {
        let mut out = Vec::new();
        Reply::new(250, "2.0.0", "a\nb\r").write_to(&mut out);
        assert_eq!(out, b"250-2.0.0 a\r\n250 2.0.0 b?\r\n");
        out.clear();
        Reply::plain(220, "mx ESMTP").write_to(&mut out);
        assert_eq!(out, b"220 mx ESMTP\r\n");
    }
}
