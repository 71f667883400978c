//! JSON: every scalar on its own line after its key (`date of birth: 1980-01-02`), with
//! the parent key when the key alone says little (`patient name: ...`).

use serde_json::Value;

use crate::text::humanize_identifier;

/// The text of a JSON document, or `None` if it is not JSON.
pub fn json_to_text(src: &str, out: &mut String) -> Option<()> {
    let value: Value = serde_json::from_str(src.trim_start_matches('\u{FEFF}')).ok()?;
    // explicit stack: (value, key, context): the context is the parent key, or what the
    // object says about itself (FHIR-style {"system": "phone", "value": "..."} or
    // {"type": "MRN", "value": "..."} reads "phone value: ...", "MRN value: ...")
    let mut stack: Vec<(&Value, String, String)> = vec![(&value, String::new(), String::new())];
    while let Some((v, key, parent)) = stack.pop() {
        match v {
            Value::Object(map) => {
                let descriptor = ["type", "system", "use", "kind", "label", "qualifier", "idType", "code_system"]
                    .iter()
                    .find_map(|k| match map.get(*k) {
                        Some(Value::String(s)) if s.len() <= 40 => Some(s.as_str()),
                        Some(Value::Object(o)) => o.get("text").and_then(Value::as_str),
                        _ => None,
                    });
                let context = match descriptor {
                    Some(d) => humanize_identifier(d),
                    None => key.clone(),
                };
                for (k, child) in map.iter().rev() {
                    stack.push((child, humanize_identifier(k), context.clone()));
                }
            }
            Value::Array(items) => {
                for child in items.iter().rev() {
                    stack.push((child, key.clone(), parent.clone()));
                }
                out.push('\n');
            }
            Value::Null => {}
            scalar => {
                if !parent.is_empty() {
                    out.push_str(&parent);
                    out.push(' ');
                }
                if !key.is_empty() {
                    out.push_str(&key);
                    out.push_str(": ");
                }
                match scalar {
                    Value::String(s) => out.push_str(&s.replace(['\n', '\r'], " ")),
                    other => out.push_str(&other.to_string()),
                }
                out.push('\n');
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_label_values() {
        let mut out = String::new();
        json_to_text(r#"{"patient":{"name":"Ann Lee","dob":"1980-01-02","ids":{"mrn":12345678}}}"#, &mut out).unwrap();
        assert!(out.contains("patient name: Ann Lee\n"), "{out}");
        assert!(out.contains("patient dob: 1980-01-02\n"), "{out}");
        assert!(out.contains("ids mrn: 12345678\n"), "{out}");
        assert!(json_to_text("not json", &mut String::new()).is_none());
        let mut out = String::new();
        json_to_text(
            r#"{"identifier":[{"type":"MRN","value":"12345678"}],"code":{"system":"icd-10-cm","code":"I10"}}"#,
            &mut out,
        )
        .unwrap();
        assert!(out.contains("MRN value: 12345678\n"), "{out}");
        assert!(out.contains("icd 10 cm code: I10\n"), "{out}");
    }
}
