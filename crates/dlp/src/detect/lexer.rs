//! Splits text into words and numbers in one pass, looking each word up in the
//! [`Lexicon`] as it goes. Separators are ASCII punctuation, white space, and
//! non-Latin characters (so digits written inside CJK text stand alone); token
//! boundaries therefore always fall on char boundaries.

use super::lexicon::{Lexicon, MAX_WORD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Digits,
    Alpha,
    Mixed,
}

#[derive(Debug, Clone, Copy)]
pub struct Token {
    pub start: u32,
    pub end: u32,
    pub shape: Shape,
    /// First character is an ASCII capital.
    pub capital: bool,
    /// Word flags from the lexicon ([`super::lexicon::word`]).
    pub word: u32,
    /// 1-12 when the word names a month.
    pub month: u8,
    /// Lexicon entry id + 1 (0: not in the lexicon).
    pub entry: u32,
    /// Some phrase of the lexicon starts with this word.
    pub has_phrases: bool,
    /// Label classes set by the phrase pass ([`super::lexicon::label`]).
    pub label: u32,
}

impl Token {
    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    #[inline]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

const DIGIT: u8 = 1;
const LETTER: u8 = 2;
const NON_ASCII: u8 = 4;

/// Character class of each byte: ASCII digit, ASCII letter, non-ASCII (decided per
/// char), or 0 for separators.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'0'..=b'9' => DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' => LETTER,
            0x80..=0xFF => NON_ASCII,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// Letters of Latin, Greek and Cyrillic scripts join words; everything else outside
/// ASCII (CJK, symbols, punctuation) separates them.
#[inline]
fn is_word_char(c: char) -> bool {
    (c as u32) < 0x530 && c.is_alphabetic()
}

/// Tokenize `text` into `out` (cleared first).
pub fn tokenize(text: &str, out: &mut Vec<Token>) {
    out.clear();
    let bytes = text.as_bytes();
    let lexicon = Lexicon::get();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        // separators
        let c = CLASS[usize::from(bytes[i])];
        if c == 0 {
            i += 1;
            continue;
        }
        if c == NON_ASCII && !starts_word_char(text, i) {
            i += utf8_len(bytes[i]);
            continue;
        }
        let start = i;
        let mut seen = 0u8;
        let mut ascii = true;
        // eight ASCII letters or digits at a time, then byte by byte
        while let Some(chunk) = bytes.get(i..i + 8) {
            let (run, classes) = ascii_word_run(u64::from_le_bytes([
                chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
            ]));
            seen |= classes;
            i += run;
            if run < 8 {
                break;
            }
        }
        while i < n {
            let c = CLASS[usize::from(bytes[i])];
            if c & (DIGIT | LETTER) != 0 {
                seen |= c;
                i += 1;
            } else if c == NON_ASCII && starts_word_char(text, i) {
                seen |= LETTER;
                ascii = false;
                i += utf8_len(bytes[i]);
            } else {
                break;
            }
        }
        let i_end = i.min(n);
        let shape = match seen {
            DIGIT => Shape::Digits,
            LETTER => Shape::Alpha,
            _ => Shape::Mixed,
        };
        let mut tok = Token {
            start: start as u32,
            end: i_end as u32,
            shape,
            capital: bytes[start].is_ascii_uppercase(),
            word: 0,
            month: 0,
            entry: 0,
            has_phrases: false,
            label: 0,
        };
        let len = i_end - start;
        // numbers are looked up only when short: phrase words such as "type 2", "icd 10"
        if !ascii && len <= MAX_WORD {
            // accented Latin words are looked up without their accents (José, Núñez)
            if let Some((id, meta)) = fold_accents(&text[start..i_end]).and_then(|w| lexicon.lookup_id(w.as_bytes())) {
                tok.word = meta.flags();
                tok.month = meta.month();
                tok.entry = id + 1;
                tok.has_phrases = meta.has_phrases();
            }
        } else if (shape != Shape::Digits || len <= 2) && len <= MAX_WORD {
            let id = if len <= 16 {
                lexicon.lookup_token(packed_lower(bytes, start, len), tok.capital)
            } else {
                let mut buf = [0u8; MAX_WORD];
                for (d, s) in buf.iter_mut().zip(&bytes[start..i_end]) {
                    *d = s.to_ascii_lowercase();
                }
                lexicon.lookup_id(&buf[..len])
            };
            if let Some((id, meta)) = id {
                tok.word = meta.flags();
                tok.month = meta.month();
                tok.entry = id + 1;
                tok.has_phrases = meta.has_phrases();
            }
        }
        out.push(tok);
    }
}

/// How many of the 8 bytes of `x` (little-endian), from the first, are ASCII letters or
/// digits; and which classes ([`DIGIT`], [`LETTER`]) those bytes have. SWAR: range
/// tests on all bytes at once (valid because bytes with the high bit set stop the run
/// before the additions could carry out of them).
#[inline]
fn ascii_word_run(x: u64) -> (usize, u8) {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let ones = |b: u8| u64::from(b) * 0x0101_0101_0101_0101;
    // per byte: high bit set iff lo <= b <= hi, for 7-bit b
    let in_range = |v: u64, lo: u8, hi: u8| {
        let v7 = v & LOW7;
        (v7 + ones(0x80 - lo)) & !(v7 + ones(0x7F - hi)) & HIGH
    };
    let ascii = !x & HIGH;
    let digits = in_range(x, b'0', b'9') & ascii;
    let letters = in_range(x | ones(0x20), b'a', b'z') & ascii;
    let word = digits | letters;
    let run = ((!word & HIGH).trailing_zeros() / 8) as usize;
    let keep = if run >= 8 { u64::MAX } else { (1u64 << (8 * run)) - 1 };
    let classes = (if digits & keep != 0 { DIGIT } else { 0 }) | (if letters & keep != 0 { LETTER } else { 0 });
    (run.min(8), classes)
}

/// The ASCII word `bytes[start..start + len]` (len <= 16) in lower case, packed like
/// [`super::lexicon::pack_word`]: one load, a mask, and `| 0x20` on every byte (which
/// lower-cases ASCII letters and leaves ASCII digits as they are).
#[inline]
fn packed_lower(bytes: &[u8], start: usize, len: usize) -> u128 {
    if len <= 8 {
        let mut buf = [0u8; 8];
        match bytes.get(start..start + 8) {
            Some(s) => buf.copy_from_slice(s),
            None => buf[..len].copy_from_slice(&bytes[start..start + len]),
        }
        let mask = u64::MAX >> (64 - 8 * len.max(1));
        return u128::from((u64::from_le_bytes(buf) | 0x2020_2020_2020_2020) & mask);
    }
    let mut buf = [0u8; 16];
    match bytes.get(start..start + 16) {
        Some(s) => buf.copy_from_slice(s),
        None => buf[..len].copy_from_slice(&bytes[start..start + len]),
    }
    let mask = if len >= 16 { u128::MAX } else { (1u128 << (8 * len)) - 1 };
    (u128::from_le_bytes(buf) | 0x2020_2020_2020_2020_2020_2020_2020_2020) & mask
}

/// A word in lower case with Latin diacritics removed, or `None` if it has letters
/// outside Latin-1 and Latin Extended-A.
fn fold_accents(word: &str) -> Option<String> {
    const FROM: &str = "àáâãäåāăąçćčďèéêëēėęěìíîïīįňñńòóôõöøōőřśšşťùúûüūůűųýÿźżž";
    const TO: &str = "aaaaaaaaacccdeeeeeeeeiiiiiinnnoooooooorssstuuuuuuuuyyzzz";
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        let c = c.to_lowercase().next().unwrap_or(c);
        if c.is_ascii() {
            out.push(c);
        } else if let Some(k) = FROM.chars().position(|f| f == c) {
            out.push(TO.chars().nth(k).unwrap_or(c));
        } else if c == 'ß' {
            out.push_str("ss");
        } else {
            return None;
        }
    }
    Some(out)
}

#[inline]
fn utf8_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[inline]
fn starts_word_char(text: &str, i: usize) -> bool {
    text.get(i..).and_then(|s| s.chars().next()).is_some_and(is_word_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        let mut toks = Vec::new();
        tokenize(text, &mut toks);
        toks.iter().map(|t| &text[t.range()]).collect()
    }

    #[test]
    fn word_runs_eight_bytes_at_a_time() {
        let run = |s: &[u8; 8]| ascii_word_run(u64::from_le_bytes(*s));
        assert_eq!(run(b"abcdefgh"), (8, LETTER));
        assert_eq!(run(b"ab12-xyz"), (4, LETTER | DIGIT));
        assert_eq!(run(b"1234 678"), (4, DIGIT));
        assert_eq!(run(b" abcdefg"), (0, 0));
        assert_eq!(run(b"AZaz09@["), (6, LETTER | DIGIT));
        assert_eq!(run(b"ab\xc3\xa9cdef"), (2, LETTER));
        assert_eq!(run(b"`{/:@[\x7f\x00"), (0, 0));
        // every single byte agrees with the byte table
        for b in 0..=255u8 {
            let (n, _) = run(&[b, b' ', 0, 0, 0, 0, 0, 0]);
            assert_eq!(n == 1, CLASS[usize::from(b)] & (DIGIT | LETTER) != 0, "byte {b}");
        }
    }

    #[test]
    fn splits_on_ascii_punctuation_and_cjk() {
        assert_eq!(words("SSN: 123-45-6789."), ["SSN", "123", "45", "6789"]);
        assert_eq!(words("José Núñez"), ["José", "Núñez"]);
        assert_eq!(fold_accents("Núñez").as_deref(), Some("nunez"));
        assert_eq!(fold_accents("山田"), None);
        assert_eq!(words("生年月日1980年5月4日"), ["1980", "5", "4"]);
        assert_eq!(words("E11.9 (x)"), ["E11", "9", "x"]);
    }
}
