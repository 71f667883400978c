//! The portal passphrase a sender may set: checked, taken out of the message before anything
//! is stored, and kept only as an argon2id hash sealed with the envelope.

/// The header an SMTP sender sets a portal passphrase with. carepost removes it from every
/// message before anything is stored, and honours it only from its own senders (submission,
/// relay networks): never from the Internet.
pub const PASSPHRASE_HEADER: &str = "X-Carepost-Passphrase";

/// Shortest and longest portal passphrase accepted.
pub const PASSPHRASE_LENGTH: std::ops::RangeInclusive<usize> = 8..=256;

/// What is wrong with a portal passphrase (compared trimmed, as it is kept), if anything.
pub fn passphrase_problem(passphrase: &str) -> Option<String> {
    (!PASSPHRASE_LENGTH.contains(&passphrase.trim().chars().count())).then(|| {
        format!("a portal passphrase has {} to {} characters", PASSPHRASE_LENGTH.start(), PASSPHRASE_LENGTH.end())
    })
}

/// Removes every `X-Carepost-Passphrase` field (with its folded lines) from the header block of
/// `body`; returns the message without them and the last value, or `None` when there is none
/// (the common case, which copies nothing).
pub fn take_passphrase_header(body: &[u8]) -> Option<(Vec<u8>, String)> {
    let header_end = find_header_end(body);
    if !lines(&body[..header_end]).any(|line| passphrase_colon(line).is_some()) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut value = String::new();
    let mut skipping = false;
    for line in lines(&body[..header_end]) {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation && skipping {
            value.push(' ');
            value.push_str(String::from_utf8_lossy(line).trim());
        } else if let Some(colon) = passphrase_colon(line) {
            skipping = true;
            value = String::from_utf8_lossy(&line[colon + 1..]).trim().to_owned();
        } else {
            skipping = false;
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&body[header_end..]);
    Some((out, value))
}

/// The lines of `text`, each with its line ending.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
}

/// Where the colon is when `line` starts an `X-Carepost-Passphrase` field. RFC 5322's obsolete
/// syntax allows blanks between the name and the colon.
fn passphrase_colon(line: &[u8]) -> Option<usize> {
    let name = PASSPHRASE_HEADER.as_bytes();
    let rest = line.get(name.len()..)?;
    if !line[..name.len()].eq_ignore_ascii_case(name) {
        return None;
    }
    let colon = name.len() + rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    (line.get(colon) == Some(&b':')).then_some(colon)
}

/// Where the header block ends: just after the blank line, or the whole input if there is none.
fn find_header_end(body: &[u8]) -> usize {
    let mut at = 0;
    while at < body.len() {
        let line_end = body[at..].iter().position(|&b| b == b'\n').map_or(body.len(), |p| at + p + 1);
        let line = &body[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            return at;
        }
        at = line_end;
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passphrase_header_is_taken_out_with_its_folded_lines() {
        let body = b"From: a@x.example\r\nX-Carepost-Passphrase: blue\r\n  harbour 42\r\nSubject: hi\r\n\r\nX-Carepost-Passphrase: in the body stays\r\n";
        let (without, value) = take_passphrase_header(body).unwrap();
        assert_eq!(value, "blue harbour 42");
        assert_eq!(without, b"From: a@x.example\r\nSubject: hi\r\n\r\nX-Carepost-Passphrase: in the body stays\r\n");
        let (without, value) = take_passphrase_header(b"X-Carepost-Passphrase \t: spaced out\r\n\r\nbody").unwrap();
        assert_eq!((without.as_slice(), value.as_str()), (&b"\r\nbody"[..], "spaced out"));
        let lower = b"x-carepost-passphrase:one two three\nTo: b@y.example\n\nbody";
        let (without, value) = take_passphrase_header(lower).unwrap();
        assert_eq!((without.as_slice(), value.as_str()), (&b"To: b@y.example\n\nbody"[..], "one two three"));
    }

    #[test]
    fn messages_without_the_header_are_left_alone() {
        assert!(take_passphrase_header(b"Subject: x\r\n\r\nX-Carepost-Passphrase: body\r\n").is_none());
        assert!(take_passphrase_header(b"X-Carepost-Passphrases: other field\r\n\r\n").is_none());
        assert!(take_passphrase_header(b"").is_none());
        assert!(take_passphrase_header(b"X-Carepost-Passphrase").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_input_keeps_everything_but_the_field(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            if let Some((without, _)) = take_passphrase_header(&body) {
                proptest::prop_assert!(without.len() < body.len());
                let end = find_header_end(&body);
                proptest::prop_assert!(without.ends_with(&body[end..]));
            }
        }
    }
}
