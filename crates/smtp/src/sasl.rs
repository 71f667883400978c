//! SASL PLAIN (RFC 4616) and LOGIN as SMTP AUTH carries them (RFC 4954): base64 lines.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("malformed credentials")]
    Malformed,
}

/// Decodes one base64 response; `=` is the empty response.
pub fn decode(b64: &str) -> Result<Vec<u8>, SaslError> {
    let b64 = b64.trim();
    if b64 == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(b64).map_err(|_| SaslError::Base64)
}

pub fn encode(text: &str) -> String {
    STANDARD.encode(text)
}

/// A PLAIN response `authzid NUL authcid NUL passwd` into (login, password). An
/// authorization identity other than the login itself is refused: nobody signs in as
/// someone else.
pub fn plain(response: &[u8]) -> Result<(String, String), SaslError> {
    let mut parts = response.split(|&b| b == 0);
    let (Some(authz), Some(login), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let login = std::str::from_utf8(login).map_err(|_| SaslError::Malformed)?;
    let password = std::str::from_utf8(password).map_err(|_| SaslError::Malformed)?;
    if login.is_empty() || password.is_empty() || (!authz.is_empty() && authz != login.as_bytes()) {
        return Err(SaslError::Malformed);
    }
    Ok((login.to_owned(), password.to_owned()))
}

/// One LOGIN response (user name or password) as text.
pub fn login_field(response: &[u8]) -> Result<String, SaslError> {
    let text = std::str::from_utf8(response).map_err(|_| SaslError::Malformed)?;
    if text.is_empty() || text.contains('\0') {
        return Err(SaslError::Malformed);
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_responses() {
        assert_eq!(plain(b"\0jane\0secret").unwrap(), ("jane".into(), "secret".into()));
        assert_eq!(plain(b"jane\0jane\0secret").unwrap(), ("jane".into(), "secret".into()));
        assert!(plain(b"boss\0jane\0secret").is_err());
        assert!(plain(b"\0jane").is_err());
        assert!(plain(b"\0jane\0").is_err());
        assert!(plain(b"\0jane\0a\0b").is_err());
        assert_eq!(decode(&encode("\0jane\0secret")).unwrap(), b"\0jane\0secret");
        assert_eq!(decode("=").unwrap(), b"");
        assert!(decode("***").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,100}", b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode(&s);
            let _ = plain(&b);
            let _ = login_field(&b);
        }
    }
}
