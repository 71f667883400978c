//! PDF text, in pure Rust and within the decompression budget.
//!
//! A deliberately small reader: it finds the objects of the file by scanning for
//! `N G obj` (so broken cross-reference tables do not matter), unpacks object streams,
//! inflates content streams (Flate, ASCII85, ASCIIHex), maps fonts to their ToUnicode
//! CMaps through each page's resources, and runs the text operators (`Tj`, `TJ`, `'`,
//! `"`) with enough positioning (`Td`, `Tm`, `T*`) to put lines and words apart.
//! Encrypted files and image-only pages yield no text; the caller marks those.

use std::collections::HashMap;

use super::Sink;
use crate::report::IncompleteReason;

/// The text of a PDF, or `None` if it is not a readable PDF (encrypted, or broken).
pub fn pdf_to_text(bytes: &[u8], sink: &mut Sink<'_>) -> Option<String> {
    if !bytes.starts_with(b"%PDF") && memchr::memmem::find(&bytes[..bytes.len().min(1024)], b"%PDF").is_none() {
        return None;
    }
    let mut doc = Document::parse(bytes, sink);
    if doc.encrypted {
        return None;
    }
    let text = doc.text(sink);
    Some(text)
}

struct Object {
    dict: Vec<u8>,
    /// Raw (still encoded) stream data.
    raw_stream: Option<(usize, usize)>,
}

struct Document<'a> {
    bytes: &'a [u8],
    objects: HashMap<u32, Object>,
    /// Object numbers in file order.
    order: Vec<u32>,
    decoded: HashMap<u32, Option<Vec<u8>>>,
    budget: usize,
    encrypted: bool,
}

const MAX_OBJECTS: usize = 200_000;

impl<'a> Document<'a> {
    fn parse(bytes: &'a [u8], sink: &mut Sink<'_>) -> Document<'a> {
        let mut doc = Document {
            bytes,
            objects: HashMap::new(),
            order: Vec::new(),
            decoded: HashMap::new(),
            budget: sink.limits.max_decompressed_bytes,
            encrypted: false,
        };
        // object headers ("N G obj") and "endobj" positions, found once each: an
        // object's body ends at its endobj or at the next header, whichever is first,
        // so broken files without endobj cost linear time too
        let endobjs: Vec<usize> = memchr::memmem::find_iter(bytes, b"endobj").collect();
        let mut headers: Vec<(u32, usize)> = Vec::new();
        for at in memchr::memmem::find_iter(bytes, b"obj") {
            if at > 0 && bytes[at - 1] == b'd' {
                continue; // endobj
            }
            if let Some(num) = object_number_before(bytes, at) {
                headers.push((num, at));
            }
        }
        for (k, &(num, at)) in headers.iter().enumerate() {
            let body_start = at + 3;
            let next_end = endobjs.get(endobjs.partition_point(|&e| e < body_start)).copied().unwrap_or(bytes.len());
            let next_header = headers.get(k + 1).map_or(bytes.len(), |h| h.1);
            let end = next_end.min(next_header).max(body_start);
            let body = &bytes[body_start..end];
            let (dict, raw_stream) = match memchr::memmem::find(body, b"stream") {
                Some(s) if !body[..s].ends_with(b"end") => {
                    let mut data_start = body_start + s + 6;
                    if bytes.get(data_start) == Some(&b'\r') {
                        data_start += 1;
                    }
                    if bytes.get(data_start) == Some(&b'\n') {
                        data_start += 1;
                    }
                    let data_start = data_start.min(end);
                    let data_end =
                        memchr::memmem::find(&bytes[data_start..end], b"endstream").map_or(end, |e| data_start + e);
                    (body[..s].to_vec(), Some((data_start, data_end)))
                }
                _ => (body.to_vec(), None),
            };
            if doc.objects.len() >= MAX_OBJECTS {
                sink.incomplete.insert(IncompleteReason::StructureLimit);
                break;
            }
            if doc.objects.insert(num, Object { dict, raw_stream }).is_none() {
                doc.order.push(num);
            }
        }
        doc.encrypted = memchr::memmem::find(bytes, b"/Encrypt").is_some_and(|_| {
            // the trailer (or an xref stream dictionary) names an encryption dictionary
            doc.objects.values().any(|o| has_key_value_ref(&o.dict, b"/Encrypt"))
                || memchr::memmem::rfind(bytes, b"trailer")
                    .is_some_and(|t| memchr::memmem::find(&bytes[t..], b"/Encrypt").is_some())
        });
        doc.unpack_object_streams(sink);
        doc
    }

    /// Objects stored inside `/Type /ObjStm` streams become objects of their own.
    fn unpack_object_streams(&mut self, sink: &mut Sink<'_>) {
        let streams: Vec<u32> =
            self.order.iter().copied().filter(|n| dict_has_name(&self.objects[n].dict, b"/Type", b"/ObjStm")).collect();
        for num in streams {
            let Some(data) = self.stream(num, sink) else {
                continue;
            };
            let dict = &self.objects[&num].dict;
            let first = dict_int(dict, b"/First").unwrap_or(0) as usize;
            let count = dict_int(dict, b"/N").unwrap_or(0) as usize;
            if first > data.len() {
                continue;
            }
            let header = String::from_utf8_lossy(&data[..first]);
            let nums: Vec<usize> = header.split_ascii_whitespace().filter_map(|t| t.parse().ok()).collect();
            let pairs: Vec<(usize, usize)> =
                nums.chunks_exact(2).take(count.min(100_000)).map(|c| (c[0], c[1])).collect();
            for (k, &(obj, off)) in pairs.iter().enumerate() {
                let start = first.saturating_add(off).min(data.len());
                let end = pairs.get(k + 1).map_or(data.len(), |p| first.saturating_add(p.1).min(data.len())).max(start);
                let Ok(obj) = u32::try_from(obj) else {
                    continue;
                };
                if self.objects.len() >= MAX_OBJECTS {
                    break;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = self.objects.entry(obj) {
                    e.insert(Object { dict: data[start..end].to_vec(), raw_stream: None });
                    self.order.push(obj);
                }
            }
        }
    }

    /// Decoded stream data of object `num` (cached).
    fn stream(&mut self, num: u32, sink: &mut Sink<'_>) -> Option<Vec<u8>> {
        if let Some(d) = self.decoded.get(&num) {
            return d.clone();
        }
        let obj = self.objects.get(&num)?;
        let (s, e) = obj.raw_stream?;
        let raw = self.bytes.get(s..e)?;
        let filters = filters(&obj.dict);
        let mut data = raw.to_vec();
        let mut ok = true;
        for f in filters {
            let limit = self.budget.min(data.len().saturating_mul(sink.limits.max_compression_ratio).max(256 << 10));
            data = match f.as_str() {
                "FlateDecode" | "Fl" => match inflate(&data, limit) {
                    Inflated::Done(v) => v,
                    Inflated::Limit => {
                        sink.incomplete.insert(IncompleteReason::DecompressionLimit);
                        ok = false;
                        break;
                    }
                    Inflated::Error => {
                        ok = false;
                        break;
                    }
                },
                "ASCII85Decode" | "A85" => ascii85(&data),
                "ASCIIHexDecode" | "AHx" => ascii_hex(&data),
                _ => {
                    ok = false;
                    break;
                }
            };
        }
        let result = if ok {
            self.budget = self.budget.saturating_sub(data.len());
            Some(data)
        } else {
            None
        };
        self.decoded.insert(num, result.clone());
        result
    }

    fn text(&mut self, sink: &mut Sink<'_>) -> String {
        let mut out = String::new();
        let mut cmaps: HashMap<u32, CMap> = HashMap::new();
        let pages: Vec<u32> =
            self.order.iter().copied().filter(|n| dict_has_name(&self.objects[n].dict, b"/Type", b"/Page")).collect();
        let global_fonts = self.all_font_names();
        let mut done: std::collections::HashSet<u32> = std::collections::HashSet::new();
        for page in &pages {
            let dict = self.objects[page].dict.clone();
            let mut fonts = self.page_fonts(&dict);
            if fonts.is_empty() {
                fonts = global_fonts.clone();
            }
            for content in self.contents(&dict) {
                if done.insert(content) {
                    self.run_content(content, &fonts, &mut cmaps, &mut out, sink);
                }
            }
            out.push('\n');
        }
        // form XObjects, and every content-looking stream when there was no page tree
        let rest: Vec<u32> = self
            .order
            .iter()
            .copied()
            .filter(|n| {
                let o = &self.objects[n];
                o.raw_stream.is_some()
                    && !done.contains(n)
                    && (dict_has_name(&o.dict, b"/Subtype", b"/Form") || (pages.is_empty() && !is_non_content(&o.dict)))
            })
            .collect();
        for n in rest {
            self.run_content(n, &global_fonts, &mut cmaps, &mut out, sink);
            out.push('\n');
        }
        self.form_fields(&mut out);
        out
    }

    /// Values typed into form fields (`/T (name) /V (value)`).
    fn form_fields(&self, out: &mut String) {
        for n in &self.order {
            let d = &self.objects[n].dict;
            let (Some(t), Some(v)) = (dict_string(d, b"/T"), dict_string(d, b"/V")) else {
                continue;
            };
            out.push_str(&pdf_text_string(&t));
            out.push_str(": ");
            out.push_str(&pdf_text_string(&v));
            out.push('\n');
        }
    }

    /// Content stream objects of a page.
    fn contents(&self, page: &[u8]) -> Vec<u32> {
        let Some(v) = dict_value(page, b"/Contents") else {
            return Vec::new();
        };
        let refs = references(v);
        // /Contents may point to an array object holding the references
        if refs.len() == 1
            && let Some(o) = self.objects.get(&refs[0])
            && o.raw_stream.is_none()
        {
            return references(&o.dict);
        }
        refs
    }

    /// Font resource names of a page mapped to font objects.
    fn page_fonts(&self, page: &[u8]) -> HashMap<Vec<u8>, u32> {
        let mut resources = match dict_value(page, b"/Resources") {
            Some(v) => v.to_vec(),
            None => return HashMap::new(),
        };
        if let Some(&r) = references(&resources).first()
            && !resources.trim_ascii_start().starts_with(b"<<")
        {
            resources = self.objects.get(&r).map(|o| o.dict.clone()).unwrap_or_default();
        }
        let Some(fonts) = dict_value(&resources, b"/Font") else {
            return HashMap::new();
        };
        let fonts = if fonts.trim_ascii_start().starts_with(b"<<") {
            fonts.to_vec()
        } else {
            references(fonts).first().and_then(|r| self.objects.get(r)).map(|o| o.dict.clone()).unwrap_or_default()
        };
        name_refs(&fonts)
    }

    /// Every `/Font << /F1 n 0 R >>` of the file, for content outside a page.
    fn all_font_names(&self) -> HashMap<Vec<u8>, u32> {
        let mut out = HashMap::new();
        for n in &self.order {
            let d = &self.objects[n].dict;
            if let Some(f) = dict_value(d, b"/Font")
                && f.trim_ascii_start().starts_with(b"<<")
            {
                for (k, v) in name_refs(f) {
                    out.entry(k).or_insert(v);
                }
            }
        }
        out
    }

    fn cmap_for(&mut self, font: u32, cmaps: &mut HashMap<u32, CMap>, sink: &mut Sink<'_>) -> Option<CMap> {
        if let Some(c) = cmaps.get(&font) {
            return Some(c.clone());
        }
        let dict = self.objects.get(&font)?.dict.clone();
        let to_unicode = references(dict_value(&dict, b"/ToUnicode")?).first().copied()?;
        let data = self.stream(to_unicode, sink)?;
        let cmap = CMap::parse(&data);
        cmaps.insert(font, cmap.clone());
        Some(cmap)
    }

    fn run_content(
        &mut self,
        num: u32,
        fonts: &HashMap<Vec<u8>, u32>,
        cmaps: &mut HashMap<u32, CMap>,
        out: &mut String,
        sink: &mut Sink<'_>,
    ) {
        let Some(data) = self.stream(num, sink) else {
            return;
        };
        let mut lexer = ContentLexer { b: &data, pos: 0 };
        let mut operands: Vec<Operand> = Vec::new();
        let mut cmap: Option<CMap> = None;
        let mut y = 0f32;
        let mut last_y: Option<f32> = None;
        let mut leading = 0f32;
        let mut pending_space = false;
        while let Some(tok) = lexer.next() {
            let op = match tok {
                Lexed::Operand(o) => {
                    if operands.len() < 64 {
                        operands.push(o);
                    }
                    continue;
                }
                Lexed::Operator(op) => op,
            };
            let num_at = |k: usize| match operands.get(k) {
                Some(Operand::Num(n)) => *n,
                _ => 0.0,
            };
            match op.as_slice() {
                b"Tf" => {
                    cmap = None;
                    if let Some(Operand::Name(name)) = operands.first()
                        && let Some(&font) = fonts.get(name.as_slice())
                    {
                        cmap = self.cmap_for(font, cmaps, sink);
                    }
                }
                b"Td" | b"TD" => {
                    let (tx, ty) = (num_at(0), num_at(1));
                    if op == b"TD" {
                        leading = -ty;
                    }
                    y += ty;
                    if tx != 0.0 {
                        pending_space = true;
                    }
                }
                b"Tm" => {
                    y = num_at(5);
                    pending_space = true;
                }
                b"TL" => leading = num_at(0),
                b"T*" => y -= if leading == 0.0 { 1.0 } else { leading },
                b"BT" => {}
                b"ET" => pending_space = true,
                b"ID" => lexer.skip_inline_image(),
                b"Tj" | b"'" | b"\"" | b"TJ" => {
                    if op == b"'" || op == b"\"" {
                        y -= if leading == 0.0 { 1.0 } else { leading };
                    }
                    if last_y.is_some_and(|ly| (ly - y).abs() > 0.5) {
                        out.push('\n');
                    } else if pending_space && !out.ends_with([' ', '\n']) && !out.is_empty() {
                        out.push(' ');
                    }
                    pending_space = false;
                    last_y = Some(y);
                    for operand in &operands {
                        match operand {
                            Operand::Str(s) => decode_show(s, cmap.as_ref(), out),
                            Operand::Array(items) => {
                                for item in items {
                                    match item {
                                        Operand::Str(s) => decode_show(s, cmap.as_ref(), out),
                                        Operand::Num(n) if *n < -250.0 && !out.ends_with(' ') => out.push(' '),
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            operands.clear();
        }
        out.push('\n');
    }
}

/// Append shown text: through the font's ToUnicode map, or as single-byte text.
fn decode_show(s: &[u8], cmap: Option<&CMap>, out: &mut String) {
    match cmap {
        Some(c) if !c.map.is_empty() => {
            let width = c.code_len.max(1);
            let mut i = 0;
            while i < s.len() {
                let w = if width == 2 && i + 1 < s.len() { 2 } else { 1 };
                let code = s[i..i + w].iter().fold(0u32, |a, &b| a << 8 | u32::from(b));
                if let Some(t) = c.map.get(&code) {
                    out.push_str(t);
                }
                i += w;
            }
        }
        _ => out.extend(s.iter().map(|&b| pdf_doc_char(b))),
    }
}

/// Single-byte font encodings are close enough to Latin-1 for digits and letters.
fn pdf_doc_char(b: u8) -> char {
    match b {
        0x92 | 0x27 => '\'',
        0x96 | 0x97 | 0x85 => '-',
        b if b < 0x20 => ' ',
        b => char::from(b),
    }
}

/// A text string of the document (form values, titles): UTF-16BE with a BOM, or
/// PDFDocEncoding.
fn pdf_text_string(s: &[u8]) -> String {
    if let Some(rest) = s.strip_prefix(b"\xFE\xFF") {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    s.iter().map(|&b| pdf_doc_char(b)).collect()
}

#[derive(Clone, Default)]
struct CMap {
    code_len: usize,
    map: HashMap<u32, String>,
}

impl CMap {
    fn parse(data: &[u8]) -> CMap {
        let mut cmap = CMap { code_len: 0, map: HashMap::new() };
        let mut lexer = ContentLexer { b: data, pos: 0 };
        let mut operands: Vec<Operand> = Vec::new();
        let mut mode = 0u8; // 1 codespace, 2 bfchar, 3 bfrange
        while let Some(tok) = lexer.next() {
            match tok {
                Lexed::Operand(o) => {
                    operands.push(o);
                    if mode == 2 && operands.len() == 2 {
                        if let (Operand::Str(src), Operand::Str(dst)) = (&operands[0], &operands[1]) {
                            cmap.note_len(src.len());
                            cmap.map.insert(code(src), utf16be(dst));
                        }
                        operands.clear();
                    } else if mode == 3 && operands.len() == 3 {
                        if let (Operand::Str(lo), Operand::Str(hi)) = (&operands[0], &operands[1]) {
                            cmap.note_len(lo.len());
                            let (lo_c, hi_c) = (code(lo), code(hi));
                            let span = hi_c.saturating_sub(lo_c).min(0xFFFF);
                            match &operands[2] {
                                Operand::Str(dst) => {
                                    let base = utf16be(dst);
                                    let mut chars: Vec<char> = base.chars().collect();
                                    for k in 0..=span {
                                        cmap.map.insert(lo_c + k, chars.iter().collect());
                                        if let Some(last) = chars.last_mut() {
                                            *last = char::from_u32(*last as u32 + 1).unwrap_or(*last);
                                        }
                                    }
                                }
                                Operand::Array(items) => {
                                    for (k, item) in items.iter().enumerate().take(span as usize + 1) {
                                        if let Operand::Str(dst) = item {
                                            cmap.map.insert(lo_c + k as u32, utf16be(dst));
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                        operands.clear();
                    } else if mode == 1 && operands.len() == 2 {
                        if let Operand::Str(lo) = &operands[0] {
                            cmap.note_len(lo.len());
                        }
                        operands.clear();
                    }
                }
                Lexed::Operator(op) => {
                    mode = match op.as_slice() {
                        b"begincodespacerange" => 1,
                        b"beginbfchar" => 2,
                        b"beginbfrange" => 3,
                        _ => 0,
                    };
                    operands.clear();
                }
            }
        }
        cmap
    }

    fn note_len(&mut self, n: usize) {
        if self.code_len == 0 {
            self.code_len = n.min(4);
        }
    }
}

fn code(s: &[u8]) -> u32 {
    s.iter().take(4).fold(0u32, |a, &b| a << 8 | u32::from(b))
}

fn utf16be(s: &[u8]) -> String {
    let units: Vec<u16> =
        s.chunks(2).map(|c| if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) }).collect();
    String::from_utf16_lossy(&units)
}

// ---------------------------------------------------------------- content lexer

#[derive(Debug, Clone)]
enum Operand {
    Num(f32),
    Str(Vec<u8>),
    Name(Vec<u8>),
    Array(Vec<Operand>),
    Other,
}

enum Lexed {
    Operand(Operand),
    Operator(Vec<u8>),
}

struct ContentLexer<'a> {
    b: &'a [u8],
    pos: usize,
}

/// Arrays nest at most this deep (`[[[...`); deeper ones are read flat, so hostile
/// input cannot exhaust the stack.
const MAX_ARRAY_DEPTH: usize = 16;

fn is_delim(c: u8) -> bool {
    matches!(c, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

impl ContentLexer<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            if c.is_ascii_whitespace() || c == 0 {
                self.pos += 1;
            } else if c == b'%' {
                while self.pos < self.b.len() && self.b[self.pos] != b'\n' && self.b[self.pos] != b'\r' {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// After `ID`: skip the image data up to ` EI`.
    fn skip_inline_image(&mut self) {
        let rest = &self.b[self.pos.min(self.b.len())..];
        let mut k = 0;
        while let Some(off) = memchr::memmem::find(&rest[k..], b"EI") {
            let at = k + off;
            let before = if at == 0 { b' ' } else { rest[at - 1] };
            let after = rest.get(at + 2).copied().unwrap_or(b' ');
            if before.is_ascii_whitespace() && (after.is_ascii_whitespace()) {
                self.pos += at + 2;
                return;
            }
            k = at + 2;
        }
        self.pos = self.b.len();
    }

    fn next(&mut self) -> Option<Lexed> {
        self.next_at(0)
    }

    fn next_at(&mut self, depth: usize) -> Option<Lexed> {
        self.skip_ws();
        let c = *self.b.get(self.pos)?;
        match c {
            b'[' if depth >= MAX_ARRAY_DEPTH => {
                self.pos += 1;
                Some(Lexed::Operand(Operand::Other))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.b.get(self.pos) {
                        None => break,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => match self.next_at(depth + 1)? {
                            Lexed::Operand(o) => {
                                if items.len() < 4096 {
                                    items.push(o);
                                }
                            }
                            Lexed::Operator(_) => {}
                        },
                    }
                }
                Some(Lexed::Operand(Operand::Array(items)))
            }
            b']' | b'{' | b'}' | b')' | b'>' => {
                self.pos += 1;
                Some(Lexed::Operand(Operand::Other))
            }
            b'(' => Some(Lexed::Operand(Operand::Str(self.literal()))),
            b'<' if self.b.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                Some(Lexed::Operand(Operand::Other))
            }
            b'<' => {
                let start = self.pos + 1;
                let end = memchr::memchr(b'>', &self.b[start..]).map_or(self.b.len(), |e| start + e);
                self.pos = (end + 1).min(self.b.len());
                Some(Lexed::Operand(Operand::Str(ascii_hex(&self.b[start..end]))))
            }
            b'/' => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.b.len() && !self.b[self.pos].is_ascii_whitespace() && !is_delim(self.b[self.pos])
                {
                    self.pos += 1;
                }
                Some(Lexed::Operand(Operand::Name(self.b[start..self.pos].to_vec())))
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.b.len() && matches!(self.b[self.pos], b'0'..=b'9' | b'.') {
                    self.pos += 1;
                }
                let s = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("0");
                Some(Lexed::Operand(Operand::Num(s.parse().unwrap_or(0.0))))
            }
            _ => {
                let start = self.pos;
                while self.pos < self.b.len() && !self.b[self.pos].is_ascii_whitespace() && !is_delim(self.b[self.pos])
                {
                    self.pos += 1;
                }
                if self.pos == start {
                    self.pos += 1;
                }
                Some(Lexed::Operator(self.b[start..self.pos].to_vec()))
            }
        }
    }

    /// A literal string `( ... )` with escapes and balanced parentheses.
    fn literal(&mut self) -> Vec<u8> {
        let b = self.b;
        let mut out = Vec::new();
        let mut depth = 0usize;
        self.pos += 1;
        while self.pos < b.len() {
            let c = b[self.pos];
            self.pos += 1;
            match c {
                b'\\' => {
                    let Some(&e) = b.get(self.pos) else { break };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match b.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xFF) as u8);
                        }
                        b'\r' => {
                            if b.get(self.pos) == Some(&b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                b'(' => {
                    depth += 1;
                    out.push(c);
                }
                b')' => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out
    }
}

// ---------------------------------------------------------------- dictionaries

/// `N G obj`: the object number written before `obj` at `at`.
fn object_number_before(b: &[u8], at: usize) -> Option<u32> {
    let mut i = at;
    let skip_ws = |i: &mut usize| {
        while *i > 0 && b[*i - 1].is_ascii_whitespace() {
            *i -= 1;
        }
    };
    let digits = |i: &mut usize| {
        let end = *i;
        while *i > 0 && b[*i - 1].is_ascii_digit() && end - *i < 10 {
            *i -= 1;
        }
        (*i < end).then_some((*i, end))
    };
    skip_ws(&mut i);
    digits(&mut i)?;
    let ws_end = i;
    skip_ws(&mut i);
    if i == ws_end {
        return None;
    }
    let (s, e) = digits(&mut i)?;
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    std::str::from_utf8(&b[s..e]).ok()?.parse().ok()
}

/// The raw value after `key` in a dictionary (up to the next key at the same level).
fn dict_value<'d>(dict: &'d [u8], key: &[u8]) -> Option<&'d [u8]> {
    let mut from = 0;
    loop {
        let at = from + memchr::memmem::find(&dict[from..], key)?;
        let after = at + key.len();
        if dict.get(after).is_some_and(|c| c.is_ascii_alphanumeric()) {
            from = after;
            continue;
        }
        let rest = &dict[after..];
        let mut depth = 0i32;
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                b'<' if rest.get(i + 1) == Some(&b'<') => {
                    depth += 1;
                    i += 1;
                }
                b'>' if rest.get(i + 1) == Some(&b'>') => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b'[' => depth += 1,
                b']' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b'/' if depth == 0 && i > 0 && rest[..i].iter().any(|c| !c.is_ascii_whitespace()) => {
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        return Some(&rest[..i.min(rest.len())]);
    }
}

fn dict_has_name(dict: &[u8], key: &[u8], name: &[u8]) -> bool {
    dict_value(dict, key).is_some_and(|v| {
        let v = v.trim_ascii();
        v.starts_with(name) && !v.get(name.len()).is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

fn dict_int(dict: &[u8], key: &[u8]) -> Option<i64> {
    let v = dict_value(dict, key)?;
    std::str::from_utf8(v).ok()?.split_ascii_whitespace().next()?.parse().ok()
}

fn dict_string(dict: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let v = dict_value(dict, key)?.trim_ascii_start();
    if !(v.starts_with(b"(") || (v.starts_with(b"<") && !v.starts_with(b"<<"))) {
        return None;
    }
    match (ContentLexer { b: v, pos: 0 }).next()? {
        Lexed::Operand(Operand::Str(s)) => Some(s),
        _ => None,
    }
}

fn has_key_value_ref(dict: &[u8], key: &[u8]) -> bool {
    dict_value(dict, key).is_some_and(|v| !references(v).is_empty() || v.trim_ascii_start().starts_with(b"<<"))
}

/// `n 0 R` references in a value, in order.
fn references(v: &[u8]) -> Vec<u32> {
    let s = String::from_utf8_lossy(v);
    let toks: Vec<&str> =
        s.split(|c: char| c.is_ascii_whitespace() || c == '[' || c == ']').filter(|t| !t.is_empty()).collect();
    toks.windows(3).filter(|w| w[2] == "R" && w[1].parse::<u32>().is_ok()).filter_map(|w| w[0].parse().ok()).collect()
}

/// `/Name n 0 R` pairs of a dictionary.
fn name_refs(dict: &[u8]) -> HashMap<Vec<u8>, u32> {
    let s = String::from_utf8_lossy(dict);
    let spaced = s.replace('/', " /").replace("<<", " ").replace(">>", " ");
    let toks: Vec<&str> = spaced.split_ascii_whitespace().collect();
    toks.windows(4)
        .filter(|w| w[0].starts_with('/') && w[3] == "R")
        .filter_map(|w| Some((w[0].as_bytes().to_vec(), w[1].parse().ok()?)))
        .collect()
}

fn filters(dict: &[u8]) -> Vec<String> {
    let Some(v) = dict_value(dict, b"/Filter") else {
        return Vec::new();
    };
    String::from_utf8_lossy(v)
        .split(|c: char| c == '/' || c.is_ascii_whitespace() || c == '[' || c == ']')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Streams that are never page content: images, fonts, metadata, cross references.
fn is_non_content(dict: &[u8]) -> bool {
    dict_has_name(dict, b"/Subtype", b"/Image")
        || dict_value(dict, b"/Length1").is_some()
        || dict_value(dict, b"/Length2").is_some()
        || dict_has_name(dict, b"/Type", b"/XRef")
        || dict_has_name(dict, b"/Type", b"/ObjStm")
        || dict_has_name(dict, b"/Type", b"/Metadata")
        || dict_has_name(dict, b"/Subtype", b"/Type1C")
        || dict_has_name(dict, b"/Subtype", b"/CIDFontType0C")
        || dict_has_name(dict, b"/Subtype", b"/OpenType")
}

// ---------------------------------------------------------------- filters

enum Inflated {
    Done(Vec<u8>),
    Limit,
    Error,
}

fn inflate(data: &[u8], limit: usize) -> Inflated {
    use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_with_limit, decompress_to_vec_zlib_with_limit};
    match decompress_to_vec_zlib_with_limit(data, limit) {
        Ok(v) => Inflated::Done(v),
        Err(e) if e.status == TINFLStatus::HasMoreOutput => Inflated::Limit,
        // truncated streams still hold text up to the break
        Err(e) if !e.output.is_empty() => Inflated::Done(e.output),
        Err(_) => match decompress_to_vec_with_limit(data, limit) {
            Ok(v) => Inflated::Done(v),
            Err(e) if e.status == TINFLStatus::HasMoreOutput => Inflated::Limit,
            Err(e) if !e.output.is_empty() => Inflated::Done(e.output),
            Err(_) => Inflated::Error,
        },
    }
}

fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let digits: Vec<u8> =
        data.iter().take_while(|&&c| c != b'>').filter_map(|&c| (c as char).to_digit(16).map(|d| d as u8)).collect();
    digits.chunks(2).map(|c| c[0] << 4 | c.get(1).copied().unwrap_or(0)).collect()
}

fn ascii85(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4 / 5);
    let mut group = [0u32; 5];
    let mut n = 0;
    let body = data.strip_prefix(b"<~").unwrap_or(data);
    for &c in body {
        match c {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0, 0, 0, 0]),
            b'!'..=b'u' => {
                group[n] = u32::from(c - b'!');
                n += 1;
                if n == 5 {
                    let v = group.iter().fold(0u32, |a, &d| a.wrapping_mul(85).wrapping_add(d));
                    out.extend_from_slice(&v.to_be_bytes());
                    n = 0;
                }
            }
            _ => {}
        }
    }
    if n > 1 {
        for g in group.iter_mut().skip(n) {
            *g = 84;
        }
        let v = group.iter().fold(0u32, |a, &d| a.wrapping_mul(85).wrapping_add(d));
        out.extend_from_slice(&v.to_be_bytes()[..n - 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    fn sink(limits: &Limits) -> Sink<'_> {
        Sink { limits, incomplete: Default::default(), embedded: Vec::new() }
    }

    #[test]
    fn deeply_nested_arrays_do_not_exhaust_the_stack() {
        let mut content = b"BT ".to_vec();
        content.extend(std::iter::repeat_n(b'[', 200_000));
        content.extend(b"(x) TJ ET");
        let mut lexer = ContentLexer { b: &content, pos: 0 };
        let mut n = 0;
        while lexer.next().is_some() {
            n += 1;
        }
        assert!(n > 0);
    }

    #[test]
    fn ascii85_round_trip() {
        assert_eq!(ascii85(b"<~87cURD]i,\"Ebo80~>"), b"Hello World!");
    }

    #[test]
    fn simple_pdf_with_literal_strings() {
        let pdf = b"%PDF-1.4\n1 0 obj << /Type /Page /Contents 2 0 R >> endobj\n2 0 obj << /Length 60 >> stream\nBT /F1 12 Tf 72 700 Td (DOB: 01/02/1980) Tj 0 -14 Td (SSN 123-45-6789) Tj ET\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF";
        let limits = Limits::default();
        let text = pdf_to_text(pdf, &mut sink(&limits)).unwrap();
        assert!(text.contains("DOB: 01/02/1980\nSSN 123-45-6789"), "{text:?}");
    }

    #[test]
    fn tounicode_cmaps_decode_two_byte_codes() {
        let cmap = CMap::parse(b"begincodespacerange <0000> <FFFF> endcodespacerange 2 beginbfchar <0001> <0041> <0002> <0042> endbfchar 1 beginbfrange <0010> <0012> <0030> endbfrange");
        let mut out = String::new();
        decode_show(&[0, 1, 0, 2, 0, 0x10, 0, 0x12], Some(&cmap), &mut out);
        assert_eq!(out, "AB02");
    }
}
