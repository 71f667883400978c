//! Tables (CSV, spreadsheets, HTML and Word tables) as text the detectors can read.
//!
//! A value in a table gets its meaning from the column header, not from the words
//! before it. When the first row looks like a header, every cell is written on its own
//! line after its header (`dob: 1984-07-28`), so the header is the label right before
//! the value; otherwise each row is one line with cells separated by ` | `.

use crate::detect::lexicon::Lexicon;
use crate::text::humanize_identifier;

/// Append the text of `rows` to `out`.
pub fn write_table(rows: &[Vec<String>], out: &mut String) {
    // a two-column form ("Date of birth | 01/02/1980") labels each value by its row
    if is_key_value(rows) {
        for row in rows {
            let mut cells = row.iter().map(|c| c.trim()).filter(|c| !c.is_empty());
            if let (Some(k), Some(v)) = (cells.next(), cells.next()) {
                push_cell(&humanize_identifier(k), out);
                out.push_str(": ");
                push_cell(v, out);
                out.push('\n');
            }
        }
        return;
    }
    let header = rows.first().filter(|h| rows.len() >= 2 && is_header(h));
    match header {
        Some(header) => {
            let names: Vec<String> = header.iter().map(|h| humanize_identifier(h.trim())).collect();
            for h in &names {
                out.push_str(h);
                out.push_str(" | ");
            }
            out.push('\n');
            for row in &rows[1..] {
                for (k, cell) in row.iter().enumerate() {
                    let cell = cell.trim();
                    if cell.is_empty() {
                        continue;
                    }
                    match names.get(k).filter(|n| !n.is_empty()) {
                        Some(name) => {
                            out.push_str(name);
                            out.push_str(": ");
                        }
                        None => out.push_str("| "),
                    }
                    push_cell(cell, out);
                    out.push('\n');
                }
                out.push('\n');
            }
        }
        None => {
            for row in rows {
                let mut first = true;
                for cell in row {
                    if !first {
                        out.push_str(" | ");
                    }
                    first = false;
                    push_cell(cell.trim(), out);
                }
                out.push('\n');
            }
        }
    }
}

/// A cell on one line: its own line breaks become spaces.
fn push_cell(cell: &str, out: &mut String) {
    for (k, line) in cell.lines().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(line.trim());
    }
}

/// Rows of two non-empty cells whose first cells read like labels, most of them known
/// label words (a two-column table with a header row has data in its first column).
fn is_key_value(rows: &[Vec<String>]) -> bool {
    let pairs: Vec<Vec<&str>> =
        rows.iter().map(|r| r.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect::<Vec<_>>()).collect();
    let lexicon = Lexicon::get();
    let labeled = pairs.iter().skip(1).filter(|p| !p.is_empty() && lexicon.has_label_word(p[0])).count();
    rows.len() >= 2
        && pairs.iter().all(|p| p.len() == 2 || p.len() == 1)
        && pairs.iter().filter(|p| p.len() == 2).count() >= 2
        && pairs.iter().all(|p| is_label_cell(p[0]))
        && labeled * 2 > pairs.len() - 1
}

fn is_label_cell(c: &str) -> bool {
    c.len() <= 40 && c.chars().filter(char::is_ascii_digit).count() <= 2 && c.chars().any(char::is_alphabetic)
}

/// A header row has at least two cells, some letters, and no cell that looks like data
/// (a cell with three or more digits, or a long sentence).
fn is_header(row: &[String]) -> bool {
    let non_empty: Vec<&String> = row.iter().filter(|c| !c.trim().is_empty()).collect();
    non_empty.len() >= 2 && non_empty.iter().all(|c| is_label_cell(c.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter().map(|row| row.iter().map(|c| c.to_string()).collect()).collect()
    }

    #[test]
    fn header_rows_label_every_cell() {
        let mut out = String::new();
        write_table(&rows(&[&["name", "dateOfBirth"], &["Ann Lee", "1980-01-02"]]), &mut out);
        assert_eq!(out, "name | date Of Birth | \nname: Ann Lee\ndate Of Birth: 1980-01-02\n\n");
    }

    #[test]
    fn two_column_forms_label_by_row() {
        let mut out = String::new();
        write_table(&rows(&[&["Field", "Value"], &["DOB", "1980-01-02"], &["MRN", "12345678"]]), &mut out);
        assert_eq!(out, "Field: Value\nDOB: 1980-01-02\nMRN: 12345678\n");
    }

    #[test]
    fn rows_without_header_stay_on_one_line() {
        let mut out = String::new();
        write_table(&rows(&[&["12", "1980-01-02", "x"], &["13", "12345678", "y"]]), &mut out);
        assert_eq!(out, "12 | 1980-01-02 | x\n13 | 12345678 | y\n");
    }
}
