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
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Character class of a byte for tokenizing.
#[inline]
fn class(b: u8) -> u8 {
    // 0 = separator, 1 = digit, 2 = letter, 3 = non-ASCII (decide per char)
    match b {
        b'0'..=b'9' => 1,
        b'a'..=b'z' | b'A'..=b'Z' => 2,
        0x80..=0xFF => 3,
        _ => 0,
    }
}

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
        let c = class(bytes[i]);
        if c == 0 {
            i += 1;
            continue;
        }
        if c == 3 && !starts_word_char(text, i) {
            i += utf8_len(bytes[i]);
            continue;
        }
        let start = i;
        let mut digits = false;
        let mut letters = false;
        let mut ascii = true;
        while i < n {
            match class(bytes[i]) {
                1 => {
                    digits = true;
                    i += 1;
                }
                2 => {
                    letters = true;
                    i += 1;
                }
                3 if starts_word_char(text, i) => {
                    letters = true;
                    ascii = false;
                    i += utf8_len(bytes[i]);
                }
                _ => break,
            }
        }
        let i_end = i.min(n);
        let shape = match (digits, letters) {
            (true, false) => Shape::Digits,
            (false, _) => Shape::Alpha,
            (true, true) => Shape::Mixed,
        };
        let mut tok = Token {
            start: start as u32,
            end: i_end as u32,
            shape,
            capital: bytes[start].is_ascii_uppercase(),
            word: 0,
            month: 0,
            has_phrases: false,
            label: 0,
        };
        let len = i_end - start;
        if shape != Shape::Digits && ascii && len <= MAX_WORD {
            let mut buf = [0u8; MAX_WORD];
            for (d, s) in buf.iter_mut().zip(&bytes[start..i_end]) {
                *d = s.to_ascii_lowercase();
            }
            if let Some(info) = lexicon.lookup(&buf[..len]) {
                tok.word = info.flags;
                tok.month = info.month;
                tok.has_phrases = !info.phrases.is_empty();
            }
        }
        out.push(tok);
    }
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
    fn splits_on_ascii_punctuation_and_cjk() {
        assert_eq!(words("SSN: 123-45-6789."), ["SSN", "123", "45", "6789"]);
        assert_eq!(words("José Núñez"), ["José", "Núñez"]);
        assert_eq!(words("生年月日1980年5月4日"), ["1980", "5", "4"]);
        assert_eq!(words("E11.9 (x)"), ["E11", "9", "x"]);
    }
}
