//! Generic XML (CDA documents, exports): text of each element on a line after the
//! element's name, and attribute values after `element attribute`, so that
//! `<birthTime value="19800102"/>` reads `birth Time value: 19800102`.

use super::markup::{Item, Tokenizer, attributes, decode_entities};
use crate::text::humanize_identifier;

/// The text of an XML document.
pub fn xml_to_text(src: &str, out: &mut String) {
    let mut stack: Vec<&str> = Vec::new();
    let mut text = String::new();
    for item in Tokenizer::new(src) {
        match item {
            Item::Open { name, attrs, self_closing } => {
                flush(&stack, &mut text, out);
                for (attr, value) in attributes(attrs) {
                    if attr.starts_with("xmlns") || value.trim().is_empty() || attr == "schemaLocation" {
                        continue;
                    }
                    out.push_str(&humanize_identifier(name));
                    out.push(' ');
                    out.push_str(&humanize_identifier(attr));
                    out.push_str(": ");
                    out.push_str(&decode_entities(value));
                    out.push('\n');
                }
                if !self_closing {
                    stack.push(name);
                    if stack.len() > 256 {
                        stack.remove(0);
                    }
                }
            }
            Item::Close { .. } => {
                flush(&stack, &mut text, out);
                stack.pop();
            }
            Item::Text(t) => text.push_str(&decode_entities(t)),
            Item::CData(t) => text.push_str(t),
        }
    }
    flush(&stack, &mut text, out);
}

fn flush(stack: &[&str], text: &mut String, out: &mut String) {
    let t = text.trim();
    if !t.is_empty() {
        if let Some(name) = stack.last() {
            out.push_str(&humanize_identifier(name));
            out.push_str(": ");
        }
        out.push_str(&t.replace(['\n', '\r'], " "));
        out.push('\n');
    }
    text.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_names_label_text_and_attributes() {
        let mut out = String::new();
        xml_to_text(
            "<?xml version=\"1.0\"?><patient><name>Ann &amp; Lee</name><birthTime value=\"19800102\"/></patient>",
            &mut out,
        );
        assert!(out.contains("name: Ann & Lee\n"), "{out}");
        assert!(out.contains("birth Time value: 19800102\n"), "{out}");
    }
}
