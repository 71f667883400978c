//! HTML to text: tags removed, character references decoded, block elements on their
//! own lines, inline elements (`<span>`, `<b>`, `<font>`...) and comments removed
//! without a trace so that a number split by tags joins up again. Tables go through
//! [`super::table`] so that column headers label their cells.

use super::markup::{Item, Tokenizer, decode_entities};
use super::table::write_table;

/// Elements that start a new line.
fn is_block(name: &str) -> bool {
    const BLOCK: &[&str] = &[
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "br",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "head",
        "header",
        "hr",
        "html",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "title",
        "tr",
        "ul",
        "option",
        "select",
        "textarea",
        "legend",
    ];
    BLOCK.iter().any(|b| b.eq_ignore_ascii_case(name))
}

/// Elements whose content is not text.
fn is_raw(name: &str) -> bool {
    ["script", "style", "template", "noscript", "svg", "object"].iter().any(|b| b.eq_ignore_ascii_case(name))
}

struct TableBuilder {
    rows: Vec<Vec<String>>,
    cell: Option<String>,
}

/// The text of an HTML document.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    // outermost table being collected; nested tables flatten into its cells
    let mut table: Option<TableBuilder> = None;
    let mut table_depth = 0usize;
    let mut pre_depth = 0usize;
    let mut tok = Tokenizer::new(html);
    while let Some(item) = tok.next() {
        match item {
            Item::Text(t) | Item::CData(t) => {
                let decoded = decode_entities(t);
                let target = match table.as_mut() {
                    Some(tb) => match tb.cell.as_mut() {
                        Some(cell) => cell,
                        None => continue, // text between cells
                    },
                    None => &mut out,
                };
                push_collapsed(&decoded, pre_depth > 0, target);
            }
            Item::Open { name, self_closing, .. } => {
                if is_raw(name) && !self_closing {
                    tok.skip_raw_text(name);
                    continue;
                }
                if name.eq_ignore_ascii_case("pre") {
                    pre_depth += 1;
                }
                if name.eq_ignore_ascii_case("table") && !self_closing {
                    table_depth += 1;
                    if table_depth == 1 {
                        newline(&mut out);
                        table = Some(TableBuilder { rows: Vec::new(), cell: None });
                        continue;
                    }
                }
                if let Some(tb) = table.as_mut() {
                    if table_depth == 1 && name.eq_ignore_ascii_case("tr") {
                        flush_cell(tb);
                        tb.rows.push(Vec::new());
                    } else if table_depth == 1 && (name.eq_ignore_ascii_case("td") || name.eq_ignore_ascii_case("th")) {
                        flush_cell(tb);
                        if tb.rows.is_empty() {
                            tb.rows.push(Vec::new());
                        }
                        tb.cell = Some(String::new());
                    } else if is_block(name)
                        && let Some(cell) = tb.cell.as_mut()
                    {
                        cell.push(' ');
                    }
                } else if is_block(name) {
                    newline(&mut out);
                }
            }
            Item::Close { name } => {
                if name.eq_ignore_ascii_case("pre") {
                    pre_depth = pre_depth.saturating_sub(1);
                }
                if name.eq_ignore_ascii_case("table") && table_depth > 0 {
                    table_depth -= 1;
                    if table_depth == 0
                        && let Some(mut tb) = table.take()
                    {
                        flush_cell(&mut tb);
                        tb.rows.retain(|r| r.iter().any(|c| !c.trim().is_empty()));
                        write_table(&tb.rows, &mut out);
                    }
                    continue;
                }
                if let Some(tb) = table.as_mut() {
                    if let Some(cell) = tb.cell.as_mut()
                        && is_block(name)
                    {
                        cell.push(' ');
                    }
                } else if is_block(name) {
                    newline(&mut out);
                }
            }
        }
    }
    if let Some(mut tb) = table.take() {
        flush_cell(&mut tb);
        write_table(&tb.rows, &mut out);
    }
    out
}

fn flush_cell(tb: &mut TableBuilder) {
    if let Some(cell) = tb.cell.take() {
        match tb.rows.last_mut() {
            Some(row) => row.push(cell),
            None => tb.rows.push(vec![cell]),
        }
    }
}

fn newline(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Append text with HTML white-space rules: runs of white space become one space.
fn push_collapsed(text: &str, pre: bool, out: &mut String) {
    if pre {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if c.is_whitespace() && c != '\u{A0}' {
            if !(out.is_empty() || out.ends_with(' ') || out.ends_with('\n')) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_tags_and_comments_join_tokens() {
        let t = html_to_text("<p>SSN: <b>123</b>-<span>45</span>&#8209;67<!-- x -->89</p><p>next</p>");
        assert_eq!(t, "SSN: 123-45\u{2011}6789\nnext\n");
    }

    #[test]
    fn scripts_are_skipped_and_breaks_are_lines() {
        let t = html_to_text(
            "<html><head><style>p{}</style></head><body>a<br>b<script>var x='<p>';</script>c</body></html>",
        );
        assert_eq!(t, "a\nbc\n");
    }

    #[test]
    fn tables_use_header_rows() {
        let t = html_to_text(
            "<table><tr><th>Name</th><th>DOB</th></tr><tr><td>Ann <b>Lee</b></td><td>01/02/1980</td></tr></table>",
        );
        assert!(t.contains("Name: Ann Lee\nDOB: 01/02/1980\n"), "{t}");
    }
}
