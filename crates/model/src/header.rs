//! Reading a message's header block without parsing the whole message: where it ends, and
//! the From field as DMARC verifiers read it. The submission check, DKIM signing and DSNs
//! all read it here, so what is checked is what gets signed.

/// The header block of a message (up to the first empty line).
pub fn headers_of(message: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < message.len() {
        let rest = &message[i..];
        if rest.starts_with(b"\r\n") {
            return &message[..i];
        }
        if rest.starts_with(b"\n") {
            return &message[..i];
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => i += nl + 1,
            None => return message,
        }
    }
    message
}

/// The addresses of the From header field, lowercased, read the way DMARC verifiers read
/// them (mail-parser's address parser, which mail-auth uses). `None` when the message has no
/// From field, more than one, or one without an address. Signing and the submission check
/// both use this, so what is checked is what gets signed.
pub fn header_from(message: &[u8]) -> Option<Vec<String>> {
    let values = from_fields(message);
    let [value] = <[Vec<u8>; 1]>::try_from(values).ok()?;
    from_addresses(value)
}

/// Whether the message has at least one From header field, readable or not.
pub fn has_from_field(message: &[u8]) -> bool {
    !from_fields(message).is_empty()
}

/// The values of every From header field, unfolded lines kept as they are.
fn from_fields(message: &[u8]) -> Vec<Vec<u8>> {
    let headers = headers_of(message);
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in headers.split_inclusive(|&b| b == b'\n') {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if let Some(v) = current.as_mut() {
                v.extend_from_slice(line);
            }
            continue;
        }
        values.extend(current.take());
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && line[..colon].trim_ascii().eq_ignore_ascii_case(b"from")
        {
            current = Some(line[colon + 1..].to_vec());
        }
    }
    values.extend(current);
    values
}

/// The addresses of one From field's value; `None` when it names none.
fn from_addresses(mut value: Vec<u8>) -> Option<Vec<String>> {
    if !value.ends_with(b"\n") {
        value.extend_from_slice(b"\r\n");
    }
    // mail-parser has panicked on hostile input before; a message it cannot read has no From.
    let parsed = std::panic::catch_unwind(|| {
        let addresses = |list: &[mail_parser::Addr]| -> Vec<String> {
            list.iter().filter_map(|a| a.address.as_ref().map(|a| a.trim().to_lowercase())).collect()
        };
        match mail_parser::parsers::MessageStream::new(&value).parse_address() {
            mail_parser::HeaderValue::Address(mail_parser::Address::List(list)) => addresses(&list),
            mail_parser::HeaderValue::Address(mail_parser::Address::Group(groups)) => {
                groups.iter().flat_map(|g| addresses(&g.addresses)).collect()
            }
            _ => Vec::new(),
        }
    })
    .ok()?;
    (!parsed.is_empty()).then_some(parsed)
}

/// The domain the From header's addresses share, lowercased; `None` when there is none or
/// they are in different domains (no one domain's key may vouch for them all).
pub fn from_domain(message: &[u8]) -> Option<String> {
    let from = header_from(message)?;
    let domain_of = |a: &String| a.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_owned());
    let domain = domain_of(from.first()?)?;
    (!domain.is_empty() && from.iter().all(|a| domain_of(a).as_deref() == Some(domain.as_str()))).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_end_at_the_first_empty_line() {
        assert_eq!(headers_of(b"A: 1\r\nB: 2\r\n\r\nbody"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(headers_of(b"A: 1\nB: 2\n\nbody"), b"A: 1\nB: 2\n");
        assert_eq!(headers_of(b"A: 1"), b"A: 1");
    }

    #[test]
    fn finds_the_from_domain() {
        assert_eq!(
            from_domain(b"Subject: x\r\nFrom: \"Clinic\" <Billing@Clinic.Example>\r\n\r\nFrom: no@body.example\r\n"),
            Some("clinic.example".into())
        );
        assert_eq!(from_domain(b"FROM: a@b.example\r\n\r\n"), Some("b.example".into()));
        assert_eq!(from_domain(b"From:\r\n <x@folded.example>\r\n\r\n"), Some("folded.example".into()));
        assert_eq!(from_domain(b"Subject: none\r\n\r\n"), None);
        // Read as a verifier reads it: the comment is not the address.
        assert_eq!(
            from_domain(b"From: attacker@evil.example (<boss@clinic.example>)\r\n\r\n"),
            Some("evil.example".into())
        );
        assert_eq!(
            header_from(b"From: \"a@evil.example\" <Boss@Clinic.example>\r\n\r\n"),
            Some(vec!["boss@clinic.example".to_owned()])
        );
        assert_eq!(from_domain(b"From: a@clinic.example\r\nFrom: b@evil.example\r\n\r\n"), None, "two From fields");
        assert_eq!(from_domain(b"From: a@clinic.example, b@evil.example\r\n\r\n"), None, "two domains");
        assert_eq!(header_from(b"From: a@clinic.example, B@clinic.example\r\n\r\n").map(|v| v.len()), Some(2));
    }
}
