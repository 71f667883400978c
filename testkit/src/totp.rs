//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, six digits, 30-second steps) and the
//! base32 the enrollment pages show secrets in, computed here from the RFCs (the HMAC from
//! the RustCrypto crates), so that tests check carepost's codes (made by totp-rs) against a
//! computation of their own.

/// The code for `secret` at `unix` seconds.
pub fn code_at(secret: &[u8], unix: u64) -> String {
    let mac = hmac_sha1(secret, &(unix / 30).to_be_bytes());
    // RFC 4226 dynamic truncation.
    let offset = usize::from(mac[19] & 0x0f);
    let value = u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    format!("{:06}", value % 1_000_000)
}

/// The code for `secret` now.
pub fn code_now(secret: &[u8]) -> String {
    code_at(secret, unix_now())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 4648 base32 (padding optional), as an enrollment page shows a secret; panics, failing
/// the test, on anything else.
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in text.trim().trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&a| a == c).unwrap_or_else(|| panic!("not base32: {text:?}"));
        acc = (acc << 5) | value as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The secret an enrollment page shows in `<p class="code">`, decoded.
pub fn secret_on_page(html: &str) -> Vec<u8> {
    let at = html.find("<p class=\"code\">").unwrap_or_else(|| panic!("no TOTP secret on the page: {html}")) + 16;
    let end = html[at..].find('<').expect("the secret's paragraph ends");
    base32_decode(&html[at..at + end])
}

/// HMAC-SHA-1 (RFC 2104).
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_the_published_vectors() {
        // RFC 2202, cases 1 and 6 (a key longer than a block).
        assert_eq!(hex(&hmac_sha1(&[0x0b; 20], b"Hi There")), "b617318655057264e28bc0b6fb378c8ef146be00");
        assert_eq!(
            hex(&hmac_sha1(&[0xaa; 80], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn codes_match_rfc_6238_appendix_b() {
        // The SHA-1 rows, last six of the eight digits.
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(secret, time), code, "T = {time}");
        }
    }

    #[test]
    fn base32_decodes_the_rfc_4648_vectors() {
        assert_eq!(base32_decode("MZXW6YTBOI======"), b"foobar");
        assert_eq!(base32_decode("MZXW6YQ"), b"foob");
        assert_eq!(secret_on_page("<p class=\"code\">GEZDGNBV</p>"), b"12345");
    }
}
