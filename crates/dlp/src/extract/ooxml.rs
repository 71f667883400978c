//! Word (DOCX) and Excel (XLSX) documents: zip archives of XML parts.
//!
//! DOCX: the text runs of the body, headers, footers, footnotes and comments; runs are
//! joined without spaces (Word splits words into runs freely), paragraphs end lines,
//! and tables go through [`super::table`]. XLSX: every sheet as a table, shared
//! strings resolved, and numbers formatted as dates turned back into dates.

use super::Sink;
use super::markup::{Item, Tokenizer, attributes, decode_entities};
use super::table::write_table;
use super::zip::Archive;
use crate::report::TextFormat;

/// The text of an Office Open XML document, and which kind it was. `None` text when the
/// archive is neither a DOCX nor an XLSX, or cannot be read.
pub fn office_to_text(bytes: &[u8], ext: &str, sink: &mut Sink<'_>) -> (TextFormat, Option<String>) {
    let Some(mut archive) = Archive::open(bytes, sink) else {
        let format = if matches!(ext, "docx" | "xlsx") { TextFormat::Xml } else { TextFormat::Binary };
        return (format, None);
    };
    let names = archive.names(sink);
    if names.iter().any(|n| n == "word/document.xml") {
        return (TextFormat::Docx, Some(docx(&mut archive, &names, sink)));
    }
    if names.iter().any(|n| n == "xl/workbook.xml") {
        return (TextFormat::Xlsx, Some(xlsx(&mut archive, &names, sink)));
    }
    // OpenDocument (odt, ods): the content is one XML file
    if names.iter().any(|n| n == "content.xml") && names.iter().any(|n| n == "mimetype") {
        let text = archive.read("content.xml", sink).map(|x| {
            let mut out = String::new();
            super::xml::xml_to_text(&utf8(x), &mut out);
            out
        });
        return (TextFormat::Xml, text);
    }
    // any other archive: its text files are scanned as parts of their own; anything
    // else in it (images, binaries) is left unread, which makes the scan incomplete
    if names.iter().any(|n| !is_text_file(n)) {
        sink.incomplete.insert(crate::report::IncompleteReason::UnsupportedFormat);
    }
    let mut found = false;
    for name in names.iter().filter(|n| is_text_file(n)) {
        if let Some(bytes) = archive.read(name, sink) {
            let text = utf8(bytes);
            let (rendered, format) = super::render_text(super::text_format("", Some(name), &text), &text);
            sink.embedded.push((name.clone(), rendered, format));
            found = true;
        }
    }
    if found { (TextFormat::Plain, Some(String::new())) } else { (TextFormat::Binary, None) }
}

/// Files inside an archive worth reading as text.
fn is_text_file(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    matches!(
        ext.as_str(),
        "txt" | "csv" | "tsv" | "json" | "xml" | "html" | "htm" | "hl7" | "x12" | "edi" | "837" | "835" | "eml"
    )
}

fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

// ---------------------------------------------------------------- DOCX

fn docx(archive: &mut Archive<'_>, names: &[String], sink: &mut Sink<'_>) -> String {
    let mut parts: Vec<&String> = names
        .iter()
        .filter(|n| {
            let n = n.as_str();
            n == "word/document.xml"
                || ((n.starts_with("word/header") || n.starts_with("word/footer")) && n.ends_with(".xml"))
                || matches!(n, "word/footnotes.xml" | "word/endnotes.xml" | "word/comments.xml")
        })
        .collect();
    parts.sort_by_key(|n| *n != "word/document.xml");
    let mut out = String::new();
    for name in parts {
        if let Some(xml) = archive.read(name, sink) {
            word_xml_to_text(&utf8(xml), &mut out);
            out.push('\n');
        }
    }
    out
}

/// WordprocessingML to text.
fn word_xml_to_text(xml: &str, out: &mut String) {
    let mut in_text = false;
    let mut table_depth = 0usize;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut cell: Option<String> = None;
    let target = |cell: &mut Option<String>, out: &mut String, s: &str| match cell.as_mut() {
        Some(c) => c.push_str(s),
        None => out.push_str(s),
    };
    for item in Tokenizer::new(xml) {
        match item {
            Item::Open { name, self_closing, .. } => match name {
                "t" | "delText" if !self_closing => in_text = true,
                "tab" => target(&mut cell, out, "\t"),
                "br" | "cr" => target(&mut cell, out, if table_depth > 0 { " " } else { "\n" }),
                "tbl" if !self_closing => {
                    table_depth += 1;
                    if table_depth == 1 {
                        rows.clear();
                    }
                }
                "tr" if table_depth == 1 => rows.push(Vec::new()),
                "tc" if table_depth == 1 => cell = Some(String::new()),
                _ => {}
            },
            Item::Close { name } => match name {
                "t" | "delText" => in_text = false,
                "p" => target(&mut cell, out, if table_depth > 0 { " " } else { "\n" }),
                "tc" if table_depth == 1 => {
                    if let Some(c) = cell.take() {
                        match rows.last_mut() {
                            Some(r) => r.push(c),
                            None => rows.push(vec![c]),
                        }
                    }
                }
                "tbl" => {
                    table_depth = table_depth.saturating_sub(1);
                    if table_depth == 0 {
                        write_table(&rows, out);
                        rows.clear();
                    }
                }
                _ => {}
            },
            Item::Text(t) if in_text => target(&mut cell, out, &decode_entities(t)),
            Item::CData(t) if in_text => target(&mut cell, out, t),
            _ => {}
        }
    }
    if let Some(c) = cell.take() {
        rows.push(vec![c]);
    }
    if !rows.is_empty() {
        write_table(&rows, out);
    }
}

// ---------------------------------------------------------------- XLSX

fn xlsx(archive: &mut Archive<'_>, names: &[String], sink: &mut Sink<'_>) -> String {
    let shared = archive.read("xl/sharedStrings.xml", sink).map(|x| shared_strings(&utf8(x))).unwrap_or_default();
    let date_styles = archive.read("xl/styles.xml", sink).map(|x| date_styles(&utf8(x))).unwrap_or_default();
    let mut sheets: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("xl/worksheets/") && n.ends_with(".xml") && !n.contains("/_rels/"))
        .collect();
    sheets.sort_by_key(|n| (n.len(), n.as_str()));
    let mut out = String::new();
    for name in sheets {
        if let Some(xml) = archive.read(name, sink) {
            let rows = sheet_rows(&utf8(xml), &shared, &date_styles);
            write_table(&rows, &mut out);
            out.push('\n');
        }
    }
    out
}

/// The shared string table: the text of each `<si>`, rich-text runs joined.
fn shared_strings(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut in_t = false;
    let mut in_phonetic = false;
    for item in Tokenizer::new(xml) {
        match item {
            Item::Open { name: "si", .. } => cur = Some(String::new()),
            Item::Close { name: "si" } => out.extend(cur.take()),
            Item::Open { name: "rPh", self_closing: false, .. } => in_phonetic = true,
            Item::Close { name: "rPh" } => in_phonetic = false,
            Item::Open { name: "t", self_closing: false, .. } => in_t = true,
            Item::Close { name: "t" } => in_t = false,
            Item::Text(t) if in_t && !in_phonetic => {
                if let Some(c) = cur.as_mut() {
                    c.push_str(&decode_entities(t));
                }
            }
            _ => {}
        }
    }
    out
}

/// For each cell style (`<cellXfs>` index), whether its number format is a date.
fn date_styles(xml: &str) -> Vec<bool> {
    let mut custom_dates: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    let mut in_xfs = false;
    for item in Tokenizer::new(xml) {
        match item {
            Item::Open { name: "numFmt", attrs, .. } => {
                let a = attributes(attrs);
                let id = a.iter().find(|(k, _)| *k == "numFmtId").and_then(|(_, v)| v.parse::<u32>().ok());
                let code =
                    a.iter().find(|(k, _)| *k == "formatCode").map(|(_, v)| decode_entities(v).to_ascii_lowercase());
                if let (Some(id), Some(code)) = (id, code) {
                    // a date format shows days, months or years, outside quoted text
                    let unquoted: String = code.split('"').step_by(2).collect();
                    if unquoted.contains('d')
                        || unquoted.contains('y')
                        || (unquoted.contains('m') && !unquoted.contains("h"))
                    {
                        custom_dates.push(id);
                    }
                }
            }
            Item::Open { name: "cellXfs", self_closing: false, .. } => in_xfs = true,
            Item::Close { name: "cellXfs" } => in_xfs = false,
            Item::Open { name: "xf", attrs, .. } if in_xfs => {
                let id =
                    attributes(attrs).iter().find(|(k, _)| *k == "numFmtId").and_then(|(_, v)| v.parse::<u32>().ok());
                let is_date = id
                    .is_some_and(|id| (14..=22).contains(&id) || (45..=47).contains(&id) || custom_dates.contains(&id));
                out.push(is_date);
            }
            _ => {}
        }
    }
    out
}

/// Columns kept per sheet row.
const MAX_COLUMNS: usize = 256;

/// Rows of one worksheet, cells placed by their column letters.
fn sheet_rows(xml: &str, shared: &[String], date_styles: &[bool]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut col = 0usize;
    let mut kind = String::new();
    let mut style = 0usize;
    let mut value: Option<String> = None;
    let mut in_value = false;
    for item in Tokenizer::new(xml) {
        match item {
            Item::Open { name: "row", .. } => rows.push(Vec::new()),
            Item::Open { name: "c", attrs, self_closing } => {
                let a = attributes(attrs);
                col =
                    a.iter().find(|(k, _)| *k == "r").map_or(rows.last().map_or(0, Vec::len), |(_, r)| column_index(r));
                kind = a.iter().find(|(k, _)| *k == "t").map(|(_, v)| v.to_string()).unwrap_or_default();
                style = a.iter().find(|(k, _)| *k == "s").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                value = if self_closing { None } else { Some(String::new()) };
            }
            Item::Open { name: "v" | "t", self_closing: false, .. } => in_value = true,
            Item::Close { name: "v" | "t" } => in_value = false,
            Item::Text(t) if in_value => {
                if let Some(v) = value.as_mut() {
                    v.push_str(&decode_entities(t));
                }
            }
            Item::Close { name: "c" } => {
                let Some(raw) = value.take() else { continue };
                let text = match kind.as_str() {
                    "s" => raw.trim().parse::<usize>().ok().and_then(|i| shared.get(i)).cloned().unwrap_or_default(),
                    "inlineStr" | "str" | "e" => raw,
                    "b" => raw,
                    _ if date_styles.get(style).copied().unwrap_or(false) => serial_to_date(&raw).unwrap_or(raw),
                    _ => format_number(&raw),
                };
                if rows.is_empty() {
                    rows.push(Vec::new());
                }
                // cells far to the right land in one last column, so a sheet that
                // names column XFD on every row cannot blow up memory
                let col = col.min(MAX_COLUMNS - 1);
                if let Some(row) = rows.last_mut() {
                    if row.len() <= col {
                        row.resize(col + 1, String::new());
                    }
                    if !row[col].is_empty() {
                        row[col].push(' ');
                    }
                    row[col].push_str(&text);
                }
            }
            _ => {}
        }
    }
    rows.retain(|r| r.iter().any(|c| !c.trim().is_empty()));
    rows
}

/// `C12` -> 2.
fn column_index(cell_ref: &str) -> usize {
    cell_ref
        .bytes()
        .take_while(u8::is_ascii_alphabetic)
        .take(3)
        .fold(0usize, |acc, b| acc * 26 + usize::from(b.to_ascii_uppercase() - b'A' + 1))
        .saturating_sub(1)
}

/// Excel stores numbers as decimal text; whole numbers come out as integers
/// (`1.234567893E9` -> `1234567893`, `123456789.0` -> `123456789`).
fn format_number(raw: &str) -> String {
    let t = raw.trim();
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 1e17 && (t.contains('E') || t.contains('e') || t.contains('.')) => {
            format!("{}", f as i64)
        }
        _ => t.to_string(),
    }
}

/// A 1900-system serial day number as `YYYY-MM-DD`.
fn serial_to_date(raw: &str) -> Option<String> {
    let serial = raw.trim().parse::<f64>().ok()?;
    if !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    // days since 1899-12-30 (Excel's leap-year bug makes that the right epoch after 1900-03-01)
    let days = serial.floor() as i64 - 25_569; // to 1970-01-01
    let (y, m, d) = civil_from_days(days);
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_runs_join_and_paragraphs_break() {
        let mut out = String::new();
        word_xml_to_text(
            r#"<w:document><w:body><w:p><w:r><w:t>SSN: 123-4</w:t></w:r><w:r><w:t>5-6789</w:t></w:r></w:p><w:p><w:r><w:t>next</w:t></w:r></w:p></w:body></w:document>"#,
            &mut out,
        );
        assert_eq!(out, "SSN: 123-45-6789\nnext\n");
    }

    #[test]
    fn excel_serials_and_numbers() {
        assert_eq!(serial_to_date("29221").as_deref(), Some("1980-01-01"));
        assert_eq!(serial_to_date("45000.5").as_deref(), Some("2023-03-15"));
        assert_eq!(format_number("1.234567893E9"), "1234567893");
        assert_eq!(format_number("12.5"), "12.5");
        assert_eq!(column_index("C12"), 2);
        assert_eq!(column_index("AA1"), 26);
    }

    #[test]
    fn sheet_cells_resolve_shared_strings_and_dates() {
        let shared = vec!["name".to_string(), "dob".to_string(), "Ann Lee".to_string()];
        let rows = sheet_rows(
            r#"<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" s="1"><v>29221</v></c></row></sheetData>"#,
            &shared,
            &[false, true],
        );
        assert_eq!(rows, vec![vec!["name".to_string(), "dob".into()], vec!["Ann Lee".into(), "1980-01-01".into()]]);
    }
}
