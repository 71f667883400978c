//! A forgiving tokenizer for HTML and XML: tags with attributes, text, comments,
//! CDATA, and character references. Never fails: malformed markup degrades to text.

use std::borrow::Cow;

#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// Text between tags, character references not yet decoded.
    Text(&'a str),
    /// CDATA content (literal).
    CData(&'a str),
    /// `<name attr="v">` or `<name/>`; `name` without namespace prefix, as written.
    Open {
        name: &'a str,
        attrs: &'a str,
        self_closing: bool,
    },
    Close {
        name: &'a str,
    },
}

/// Iterate over the items of `src`. Comments, doctypes and processing instructions are
/// skipped (they join the text around them, as a browser renders it).
pub struct Tokenizer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Tokenizer<'a> {
    pub fn new(src: &'a str) -> Self {
        Tokenizer { src, pos: 0 }
    }

    /// The raw text from the current position to `</name>` (for script/style), and
    /// moves past it.
    pub fn skip_raw_text(&mut self, name: &str) {
        let rest = &self.src[self.pos..];
        let mut search = 0;
        while let Some(off) = rest[search..].find("</") {
            let at = search + off;
            let after = &rest[at + 2..];
            if after.len() >= name.len()
                && after.is_char_boundary(name.len())
                && after[..name.len()].eq_ignore_ascii_case(name)
            {
                self.pos += at;
                return;
            }
            search = at + 2;
        }
        self.pos = self.src.len();
    }
}

impl<'a> Iterator for Tokenizer<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            let src = self.src;
            let rest = src.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            if !rest.starts_with('<') {
                let end = rest.find('<').unwrap_or(rest.len());
                self.pos += end;
                return Some(Item::Text(&rest[..end]));
            }
            if let Some(body) = rest.strip_prefix("<!--") {
                let end = body.find("-->").map_or(rest.len(), |e| 4 + e + 3);
                self.pos += end;
                continue;
            }
            if let Some(body) = rest.strip_prefix("<![CDATA[") {
                let (text, len) = match body.find("]]>") {
                    Some(e) => (&body[..e], 9 + e + 3),
                    None => (body, rest.len()),
                };
                self.pos += len;
                return Some(Item::CData(text));
            }
            let bytes = rest.as_bytes();
            let second = bytes.get(1).copied().unwrap_or(b' ');
            if second == b'!' || second == b'?' {
                let end = rest.find('>').map_or(rest.len(), |e| e + 1);
                self.pos += end;
                continue;
            }
            let closing = second == b'/';
            let name_start = if closing { 2 } else { 1 };
            let name_len = bytes[name_start..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.')))
                .unwrap_or(bytes.len() - name_start);
            if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
                // a lone '<' in text
                self.pos += 1;
                return Some(Item::Text(&rest[..1]));
            }
            let name_full = &rest[name_start..name_start + name_len];
            let name = name_full.rsplit(':').next().unwrap_or(name_full);
            // find the closing '>' outside quotes
            let mut quote = 0u8;
            let mut end = None;
            for (k, &b) in bytes.iter().enumerate().skip(name_start + name_len) {
                if quote != 0 {
                    if b == quote {
                        quote = 0;
                    }
                } else if b == b'"' || b == b'\'' {
                    quote = b;
                } else if b == b'>' {
                    end = Some(k);
                    break;
                }
            }
            let Some(end) = end else {
                self.pos = src.len();
                return None;
            };
            let inner = &rest[name_start + name_len..end];
            self.pos += end + 1;
            if closing {
                return Some(Item::Close { name });
            }
            let self_closing = inner.ends_with('/');
            let attrs = inner.strip_suffix('/').unwrap_or(inner);
            return Some(Item::Open { name, attrs, self_closing });
        }
    }
}

/// Attributes of a tag: `(name, raw value)` pairs.
pub fn attributes(attrs: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let b = attrs.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if ns == i {
            i += 1;
            continue;
        }
        let name = &attrs[ns..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let (vs, ve);
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                vs = i + 1;
                let mut k = vs;
                while k < b.len() && b[k] != q {
                    k += 1;
                }
                ve = k;
                i = (k + 1).min(b.len());
            } else {
                vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                ve = i;
            }
            out.push((name.rsplit(':').next().unwrap_or(name), &attrs[vs..ve]));
        } else {
            out.push((name, ""));
        }
    }
    out
}

/// Decode character references (`&amp;`, `&#8209;`, `&#x2D;`, and the common named
/// ones). Unknown or malformed references are kept as written.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.bytes().take(32).position(|b| b == b';');
        let (decoded, consumed) = match end {
            Some(e) => (decode_one(&after[..e]), e + 1),
            None => {
                // legacy references without ';' (&amp, &nbsp, &lt, &gt, &quot)
                let name_len = after.bytes().take_while(u8::is_ascii_alphanumeric).count();
                match decode_one(&after[..name_len]) {
                    Some(c) if name_len > 0 && ["amp", "nbsp", "lt", "gt", "quot"].contains(&&after[..name_len]) => {
                        (Some(c), name_len)
                    }
                    _ => (None, 0),
                }
            }
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[consumed..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn decode_one(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        // C1 controls are windows-1252 in practice (&#150; is an en dash)
        let code = match code {
            0x80..=0x9F => windows_1252_c1(code as u8),
            0 => 0xFFFD,
            c => c,
        };
        return char::from_u32(code).or(Some('\u{FFFD}'));
    }
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" | "numsp" | "puncsp" | "hairsp" | "MediumSpace" | "NonBreakingSpace" => ' ',
        "shy" | "zwsp" | "zwj" | "zwnj" | "ZeroWidthSpace" | "NoBreak" | "lrm" | "rlm" | "InvisibleTimes" => '\u{200B}',
        "ndash" | "mdash" | "hyphen" | "dash" | "minus" | "horbar" => '-',
        "period" => '.',
        "commat" => '@',
        "lpar" => '(',
        "rpar" => ')',
        "sol" => '/',
        "colon" => ':',
        "comma" => ',',
        "num" => '#',
        "plus" => '+',
        "lsquo" | "rsquo" | "sbquo" => '\'',
        "ldquo" | "rdquo" | "bdquo" => '"',
        "hellip" => '…',
        "bull" | "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "plusmn" => '±',
        "micro" => 'µ',
        "times" => '×',
        "divide" => '÷',
        "sect" => '§',
        "para" => '¶',
        "euro" => '€',
        "pound" => '£',
        "cent" => '¢',
        "yen" => '¥',
        "laquo" => '«',
        "raquo" => '»',
        "iexcl" => '¡',
        "iquest" => '¿',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sup2" => '²',
        "ordm" => 'º',
        "ordf" => 'ª',
        _ => return latin1_letter(name),
    };
    Some(c)
}

/// `&eacute;`, `&Ntilde;` and the other Latin-1 letters.
fn latin1_letter(name: &str) -> Option<char> {
    const ACCENTS: &[(&str, &str, &str)] = &[
        ("acute", "AEIOUYaeiouy", "ÁÉÍÓÚÝáéíóúý"),
        ("grave", "AEIOUaeiou", "ÀÈÌÒÙàèìòù"),
        ("circ", "AEIOUaeiou", "ÂÊÎÔÛâêîôû"),
        ("uml", "AEIOUaeiouy", "ÄËÏÖÜäëïöüÿ"),
        ("tilde", "ANOano", "ÃÑÕãñõ"),
        ("cedil", "Cc", "Çç"),
        ("ring", "Aa", "Åå"),
        ("slash", "Oo", "Øø"),
    ];
    let mut chars = name.chars();
    let base = chars.next()?;
    let accent = chars.as_str();
    for (suffix, bases, out) in ACCENTS {
        if accent == *suffix
            && let Some(k) = bases.chars().position(|b| b == base)
        {
            return out.chars().nth(k);
        }
    }
    match name {
        "szlig" => Some('ß'),
        "AElig" => Some('Æ'),
        "aelig" => Some('æ'),
        _ => None,
    }
}

fn windows_1252_c1(b: u8) -> u32 {
    const MAP: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
        0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x9D, 0x017E, 0x0178,
    ];
    MAP[usize::from(b - 0x80) & 31]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_tags_text_and_comments() {
        let items: Vec<_> = Tokenizer::new("<p class=\"a>b\">12<!-- x -->3<br/></p>").collect();
        assert_eq!(
            items,
            vec![
                Item::Open { name: "p", attrs: " class=\"a>b\"", self_closing: false },
                Item::Text("12"),
                Item::Text("3"),
                Item::Open { name: "br", attrs: "", self_closing: true },
                Item::Close { name: "p" },
            ]
        );
    }

    #[test]
    fn decodes_references() {
        assert_eq!(
            decode_entities("123&#8209;45&ndash;6789 &amp; &lt;x&gt; &eacute; &#x41;&bogus;"),
            "123\u{2011}45-6789 & <x> é A&bogus;"
        );
        assert_eq!(decode_entities("AT&T"), "AT&T");
        assert_eq!(decode_entities("&#150;"), "\u{2013}");
    }

    #[test]
    fn parses_attributes() {
        assert_eq!(attributes(" a=\"1\" b='2' c=3 d"), vec![("a", "1"), ("b", "2"), ("c", "3"), ("d", "")]);
    }
}
