//! Text normalization applied to every extracted text before detection.
//!
//! Identifiers hide behind look-alike characters: a non-breaking hyphen or an en dash in
//! an SSN, fullwidth digits in a Japanese message, a zero-width space or soft hyphen
//! inserted into a number. Mapping them to their ASCII counterparts (and dropping the
//! invisible ones) lets one set of ASCII detectors see through all of them.

use std::borrow::Cow;

/// Map look-alike punctuation, spaces and fullwidth forms to ASCII and drop invisible
/// characters. ASCII input is returned as is, without copying.
pub fn normalize(input: &str) -> Cow<'_, str> {
    if input.is_ascii() {
        return Cow::Borrowed(input);
    }
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            // soft hyphen, zero-width space/joiners, word joiner, BOM, Mongolian vowel separator
            '\u{AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}' => {}
            '\u{A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => out.push(' '),
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => out.push('-'),
            '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201F}' | '\u{2033}' => out.push('"'),
            '\u{2024}' => out.push('.'),
            '\u{2044}' | '\u{2215}' => out.push('/'),
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            // fullwidth ASCII forms
            '\u{FF01}'..='\u{FF5E}' => {
                out.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Split an identifier such as `dateOfBirth`, `PatientDOB` or `member_id` into words,
/// so that column headers, JSON keys and XML element names give context like prose.
pub fn humanize_identifier(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == '.' {
            out.push(' ');
            continue;
        }
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lookalikes_to_ascii() {
        assert_eq!(normalize("123\u{2011}45\u{2013}6789"), "123-45-6789");
        assert_eq!(normalize("\u{FF11}\u{FF12}\u{FF13}"), "123");
        assert_eq!(normalize("12\u{200B}34\u{AD}56"), "123456");
        assert_eq!(normalize("a\u{A0}b"), "a b");
        assert!(matches!(normalize("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
        assert_eq!(truncate_at_char_boundary("abc", 10), "abc");
    }

    #[test]
    fn humanizes_identifiers() {
        assert_eq!(humanize_identifier("dateOfBirth"), "date Of Birth");
        assert_eq!(humanize_identifier("PatientDOB"), "Patient DOB");
        assert_eq!(humanize_identifier("member_id"), "member id");
        assert_eq!(humanize_identifier("MRNNumber"), "MRN Number");
    }
}
