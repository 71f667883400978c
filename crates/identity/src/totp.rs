//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of clock skew either
//! way), the settings every authenticator app takes.

use totp_rs::{Builder, Secret};

/// A fresh 160-bit secret.
pub fn new_secret() -> Option<Vec<u8>> {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(bytes.to_vec())
}

/// The secret as authenticator apps take it typed in (base32, no padding).
pub fn encoded(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// A base32 secret back to its bytes.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    Secret::try_from_base32(text.trim()).ok().map(|s| s.as_ref().to_vec())
}

/// The `otpauth://` URI an authenticator app on the same phone opens.
pub fn uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        encoded(secret),
        enc(issuer)
    )
}

/// The time step `code` is valid for now, if any.
pub fn matching_step_now(secret: &[u8], code: &str) -> Option<u64> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    matching_step(secret, code, now)
}

/// The time step `code` is valid for at `unix_secs`, if any.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = Builder::new().with_secret(secret.to_vec()).build().ok()?;
    totp.check(&code, unix_secs)
}

/// The code for `unix_secs` (tests, and clients that compute it).
pub fn code_at(secret: &[u8], unix_secs: u64) -> Option<String> {
    let totp = Builder::new().with_secret(secret.to_vec()).build().ok()?;
    Some(totp.generate(unix_secs).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vector_and_skew() {
        // RFC 6238 appendix B, SHA-1: T = 59 gives 94287082 (8 digits); 6 digits: 287082.
        let secret = b"12345678901234567890".to_vec();
        assert_eq!(code_at(&secret, 59).unwrap(), "287082");
        assert_eq!(matching_step(&secret, "287082", 59), Some(1));
        assert_eq!(matching_step(&secret, "287 082", 75), Some(1), "one step of skew");
        assert_eq!(matching_step(&secret, "287082", 200), None);
        assert_eq!(matching_step(&secret, "28708", 59), None);
        assert!(
            uri(&secret, "Example Clinic", "p@example.net").starts_with(
                "otpauth://totp/Example%20Clinic:p%40example.net?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
            )
        );
    }
}
