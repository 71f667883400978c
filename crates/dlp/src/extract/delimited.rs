//! CSV and TSV: parsed with quoting (RFC 4180), the delimiter guessed from the first
//! line, and written as a table so that the header row labels each column.

use super::table::write_table;

/// The text of a delimited file.
pub fn delimited_to_text(src: &str, out: &mut String) {
    let delim = guess_delimiter(src);
    let rows = parse(src, delim);
    write_table(&rows, out);
}

/// Does this look like delimited data (several lines with the same number of
/// delimiters)? Used for attachments whose type does not say.
pub fn looks_delimited(src: &str) -> bool {
    let delim = guess_delimiter(src);
    let mut lines = src.lines().filter(|l| !l.trim().is_empty()).take(6);
    let Some(first) = lines.next() else {
        return false;
    };
    let n = first.matches(delim as char).count();
    let rest: Vec<usize> = lines.map(|l| l.matches(delim as char).count()).collect();
    n >= 2 && !rest.is_empty() && rest.iter().all(|&m| m == n)
}

fn guess_delimiter(src: &str) -> u8 {
    let first = src.lines().next().unwrap_or("");
    let mut best = (b',', 0usize);
    for d in [b',', b'\t', b';', b'|'] {
        let n = first.bytes().filter(|&b| b == d).count();
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

fn parse(src: &str, delim: u8) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut in_quotes = false;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cell.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cell.push(c);
            }
        } else if c == '"' && cell.trim().is_empty() {
            cell.clear();
            in_quotes = true;
        } else if c as u32 == u32::from(delim) {
            row.push(std::mem::take(&mut cell));
        } else if c == '\n' {
            row.push(std::mem::take(&mut cell));
            rows.push(std::mem::take(&mut row));
        } else if c != '\r' {
            cell.push(c);
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows.retain(|r| r.iter().any(|c| !c.trim().is_empty()));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_and_header_labels() {
        let mut out = String::new();
        delimited_to_text("name,dob,notes\r\n\"Lee, Ann\",1980-01-02,\"said \"\"hi\"\"\"\r\n", &mut out);
        assert!(out.contains("name: Lee, Ann\ndob: 1980-01-02\nnotes: said \"hi\"\n"), "{out}");
    }

    #[test]
    fn tabs_are_detected() {
        let mut out = String::new();
        delimited_to_text("mrn\tssn\n12345678\t123-45-6789\n", &mut out);
        assert!(out.contains("mrn: 12345678\nssn: 123-45-6789\n"), "{out}");
        assert!(looks_delimited("a,b,c\n1,2,3\n4,5,6\n"));
        assert!(!looks_delimited("Hello, world.\nHow are you?\n"));
    }
}
