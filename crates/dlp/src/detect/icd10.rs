//! The ICD-10-CM code table (every category and code of the 2026 release, from the
//! public-domain CMS/NCHS files; see data/tools/build_tables.py). Stored compressed
//! (about 20 KB) and unpacked on first use into a sorted list of packed codes.

use std::sync::OnceLock;

static TABLE: &[u8] = include_bytes!("../../data/icd10cm.txt.zz");

fn codes() -> &'static [u64] {
    static CODES: OnceLock<Vec<u64>> = OnceLock::new();
    CODES.get_or_init(|| {
        let text = miniz_oxide::inflate::decompress_to_vec_zlib(TABLE).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let mut out = Vec::with_capacity(100_000);
        for line in text.lines() {
            let mut fields = line.split(' ');
            let Some(category) = fields.next() else {
                continue;
            };
            if let Some(p) = pack(category.as_bytes()) {
                out.push(p);
            }
            let mut prev = String::new();
            for f in fields {
                // front coding: a digit giving the length shared with the previous suffix
                let Some(shared) = f.chars().next().and_then(|c| c.to_digit(10)) else {
                    continue;
                };
                let shared = (shared as usize).min(prev.len());
                let suffix = format!("{}{}", &prev[..shared], &f[1..]);
                if let Some(p) = pack(format!("{category}{suffix}").as_bytes()) {
                    out.push(p);
                }
                prev = suffix;
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    })
}

/// Pack up to 7 characters of [0-9A-Z] into a number (base 37, 0 = end).
fn pack(code: &[u8]) -> Option<u64> {
    if code.is_empty() || code.len() > 7 {
        return None;
    }
    let mut v = 0u64;
    for &b in code {
        let d = match b {
            b'0'..=b'9' => u64::from(b - b'0') + 1,
            b'A'..=b'Z' => u64::from(b - b'A') + 11,
            b'a'..=b'z' => u64::from(b - b'a') + 11,
            _ => return None,
        };
        v = v * 37 + d;
    }
    for _ in code.len()..7 {
        v *= 37;
    }
    Some(v)
}

/// Is `code` (without its dot, any case) an ICD-10-CM category or code?
pub fn is_code(code: &[u8]) -> bool {
    match pack(code) {
        Some(p) => codes().binary_search(&p).is_ok(),
        None => false,
    }
}

/// Does `s` have the shape of an ICD-10-CM code without its dot: a letter, a digit,
/// then one to five letters or digits.
pub fn has_code_shape(s: &[u8]) -> bool {
    (3..=7).contains(&s.len())
        && s[0].is_ascii_uppercase()
        && s[1].is_ascii_digit()
        && s[2..].iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_real_codes() {
        assert!(codes().len() > 90_000);
        for c in ["E119", "E11", "I10", "J45909", "S72001A", "Z794", "B20", "C50911", "F1020", "M5450", "O24419"] {
            assert!(is_code(c.as_bytes()), "{c}");
        }
        for c in ["E1124", "I10X", "Z9999", "A0", "E11.9", "XYZ"] {
            assert!(!is_code(c.as_bytes()), "{c}");
        }
    }
}
