//! Claim and clinical interchange formats: X12 (837 claims, 270/271 eligibility, 835)
//! and HL7 v2 messages.
//!
//! Their values carry no words around them: what a value is comes from the segment and
//! the qualifier before it (`DMG*D8*19800102` is a birth date, `NM1*IL*...*MI*ABC123`
//! a member ID, `HI*ABK:E119` a diagnosis code). Each known segment becomes a labeled
//! line (`date of birth: 19800102`) that the detectors read like prose; segments that
//! hold no personal data are left out.

/// Does this text look like an X12 interchange or transaction set?
pub fn is_x12(text: &str) -> bool {
    let head = text.trim_start_matches('\u{FEFF}').trim_start();
    let b = head.as_bytes();
    (b.len() > 4 && b.starts_with(b"ISA") && !b[3].is_ascii_alphanumeric() && !b[3].is_ascii_whitespace())
        || (b.len() > 6 && (b.starts_with(b"ST*") || b.starts_with(b"GS*")))
}

/// Does this text look like an HL7 v2 message?
pub fn is_hl7(text: &str) -> bool {
    let head = text.trim_start_matches('\u{FEFF}').trim_start();
    let b = head.as_bytes();
    b.len() > 8
        && (b.starts_with(b"MSH") || b.starts_with(b"FHS") || b.starts_with(b"BHS"))
        && !b[3].is_ascii_alphanumeric()
}

/// Where an X12 interchange or HL7 message starts inside a longer text (at the start
/// of a line, after some prose), and which it is.
pub fn embedded_start(text: &str) -> Option<(usize, crate::report::TextFormat)> {
    for needle in ["\nISA", "\nST*", "\nMSH|"] {
        if let Some(at) = text.find(needle) {
            let rest = &text[at + 1..];
            if is_x12(rest) {
                return Some((at + 1, crate::report::TextFormat::X12));
            }
            if is_hl7(rest) {
                return Some((at + 1, crate::report::TextFormat::Hl7));
            }
        }
    }
    None
}

/// X12 as labeled lines.
pub fn x12_to_text(text: &str, out: &mut String) {
    let head = text.trim_start_matches('\u{FEFF}').trim_start();
    let element = head.strip_prefix("ISA").and_then(|rest| rest.chars().next()).unwrap_or('*');
    // the component separator is the last element of ISA (ISA16)
    let component = if head.starts_with("ISA") {
        head.split(element)
            .nth(16)
            .and_then(|e| e.trim().chars().next())
            .filter(|c| !c.is_alphanumeric())
            .unwrap_or(':')
    } else {
        ':'
    };
    let terminator = if head.contains('~') { '~' } else { '\n' };
    for segment in head.split(terminator) {
        let e: Vec<&str> = segment.trim().split(element).collect();
        let get = |k: usize| e.get(k).map(|s| s.trim()).unwrap_or("");
        match get(0) {
            "NM1" => {
                let role = match get(1) {
                    "IL" => "subscriber",
                    "QC" => "patient",
                    "85" => "billing provider",
                    "82" => "rendering provider",
                    "DN" | "DK" | "P3" => "referring provider",
                    "77" | "FA" => "facility",
                    "PR" => "payer",
                    _ => "entity",
                };
                if get(2) == "1" {
                    let name = [get(4), get(5), get(3)]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(" ");
                    line(out, &format!("{role} name"), &name);
                }
                let id_label = match get(8) {
                    "MI" | "II" => "member id",
                    "XX" => "npi",
                    "34" => "ssn",
                    "24" | "FI" => "tax id",
                    _ => "",
                };
                if !id_label.is_empty() {
                    line(out, id_label, get(9));
                }
            }
            "DMG" if get(1) == "D8" => line(out, "date of birth", get(2)),
            "REF" => {
                let label = match get(1) {
                    "SY" => "ssn",
                    "1W" | "IG" | "SY1" => "member id",
                    "EA" => "medical record number",
                    "6P" | "1L" => "group number",
                    _ => "",
                };
                if !label.is_empty() {
                    line(out, label, get(2));
                }
            }
            "HI" => {
                for el in e.iter().skip(1) {
                    let mut parts = el.trim().split(component);
                    let qualifier = parts.next().unwrap_or("");
                    let code = parts.next().unwrap_or("");
                    // ICD-10-CM (ABK principal, ABF other, ABJ admitting, ABN external
                    // cause, APR reason for visit) and ICD-9 (BK, BF, BJ, BN)
                    if matches!(qualifier, "ABK" | "ABF" | "ABJ" | "ABN" | "APR" | "BK" | "BF" | "BJ" | "BN") {
                        line(out, "diagnosis code", code);
                    }
                }
            }
            "LIN" | "SLN" => {
                for pair in e.windows(2) {
                    if pair[0].trim() == "N4" {
                        line(out, "ndc", pair[1].trim());
                    }
                }
            }
            "PER" => {
                for pair in e.windows(2) {
                    match pair[0].trim() {
                        "TE" | "HP" | "WP" | "CP" => line(out, "phone", pair[1].trim()),
                        "FX" => line(out, "fax", pair[1].trim()),
                        "EM" => line(out, "email", pair[1].trim()),
                        _ => {}
                    }
                }
            }
            "N3" => line(out, "address", &e[1..].join(" ")),
            "N4" => line(out, "city state zip", &e[1..].join(" ")),
            _ => {}
        }
    }
}

/// HL7 v2 as labeled lines.
pub fn hl7_to_text(text: &str, out: &mut String) {
    let head = text.trim_start_matches('\u{FEFF}').trim_start();
    let field = head[3..].chars().next().unwrap_or('|');
    let component = head[3..].chars().nth(1).unwrap_or('^');
    let repetition = head[3..].chars().nth(2).unwrap_or('~');
    for segment in head.split(['\r', '\n']) {
        let f: Vec<&str> = segment.split(field).collect();
        let get = |k: usize| f.get(k).copied().unwrap_or("");
        let comps = |s: &str| s.split(component).map(str::to_string).collect::<Vec<_>>();
        match get(0) {
            "PID" | "NK1" | "IN1" | "IN2" | "GT1" => {
                let who = match get(0) {
                    "PID" => "patient",
                    "NK1" => "next of kin",
                    "GT1" => "guarantor",
                    _ => "insured",
                };
                if get(0) == "PID" {
                    for rep in [get(2), get(3), get(4)].iter().flat_map(|r| r.split(repetition)) {
                        let c = comps(rep);
                        let id = c.first().map(String::as_str).unwrap_or("");
                        let label = match c.get(4).map(String::as_str).unwrap_or("") {
                            "SS" => "ssn",
                            "MB" | "MA" | "MC" | "MI" | "SN" => "member id",
                            "MR" | "PI" | "PT" | "" => "medical record number",
                            _ => "patient id",
                        };
                        line(out, label, id);
                    }
                    person(out, who, &comps(get(5)));
                    line(out, "date of birth", get(7).get(..8).unwrap_or(get(7)));
                    for k in [13, 14] {
                        for rep in get(k).split(repetition) {
                            line(out, "phone", comps(rep).first().map(String::as_str).unwrap_or(""));
                        }
                    }
                    line(out, "ssn", get(19));
                } else if get(0) == "NK1" || get(0) == "GT1" {
                    person(out, who, &comps(get(2)));
                    line(out, "phone", comps(get(5)).first().map(String::as_str).unwrap_or(""));
                } else if get(0) == "IN1" {
                    line(out, "plan id", comps(get(2)).first().map(String::as_str).unwrap_or(""));
                    person(out, who, &comps(get(16)));
                    line(out, "date of birth", get(18).get(..8).unwrap_or(get(18)));
                    line(out, "policy number", get(36));
                    line(out, "member id", get(49));
                }
            }
            "DG1" | "PRB" => {
                let c = comps(get(3));
                line(out, "diagnosis", &c.iter().take(2).cloned().collect::<Vec<_>>().join(" "));
            }
            "OBX" => {
                let c = comps(get(3));
                let name = c.get(1).cloned().unwrap_or_default();
                line(out, &format!("lab test {name}"), &get(5).replace(component, " "));
            }
            "RXE" | "RXO" | "RXD" | "RXA" => {
                let k = match get(0) {
                    "RXE" | "RXO" => 1,
                    "RXD" => 2,
                    _ => 5,
                };
                let c = comps(get(k));
                let system = c.get(2).map(String::as_str).unwrap_or("");
                if system.eq_ignore_ascii_case("NDC") {
                    line(out, "ndc", c.first().map(String::as_str).unwrap_or(""));
                }
                line(out, "medication", c.get(1).map(String::as_str).unwrap_or(""));
            }
            "PV1" => {
                for k in [7, 8, 9, 17] {
                    let c = comps(get(k));
                    line(out, "attending provider npi", c.first().map(String::as_str).unwrap_or(""));
                }
            }
            _ => {}
        }
    }
}

fn person(out: &mut String, who: &str, name: &[String]) {
    // XPN: family ^ given ^ middle
    let given = name.get(1).map(String::as_str).unwrap_or("");
    let family = name.first().map(String::as_str).unwrap_or("");
    let full = [given, family].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ");
    line(out, &format!("{who} name"), &full);
}

fn line(out: &mut String, label: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    out.push_str(label);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x12_segments_become_labeled_lines() {
        let claim = "ISA*00*          *00*          *ZZ*A*ZZ*B*260101*1200*^*00501*000000001*0*P*:~\
                     NM1*IL*1*DOE*JANE****MI*XYZ123456789~DMG*D8*19800102*F~HI*ABK:E119*ABF:I10~LIN**N4*00071015523~";
        assert!(is_x12(claim));
        let mut out = String::new();
        x12_to_text(claim, &mut out);
        for want in [
            "subscriber name: JANE DOE\n",
            "member id: XYZ123456789\n",
            "date of birth: 19800102\n",
            "diagnosis code: E119\n",
            "diagnosis code: I10\n",
            "ndc: 00071015523\n",
        ] {
            assert!(out.contains(want), "{want} in {out}");
        }
    }

    #[test]
    fn interchanges_inside_prose_are_found() {
        let body = "Hi team, the claim is below.\nISA*00*x*00*x*ZZ*A*ZZ*B*1*1*^*00501*1*0*P*:~DMG*D8*19800102~";
        let (at, format) = embedded_start(body).unwrap();
        assert_eq!(format, crate::report::TextFormat::X12);
        assert!(body[at..].starts_with("ISA*"));
        assert!(embedded_start("no interchange here\nISAAC wrote").is_none());
    }

    #[test]
    fn hl7_segments_become_labeled_lines() {
        let msg = "MSH|^~\\&|LAB|HOSP|||202601011200||ORU^R01|1|P|2.5\r\
                   PID|1||123456^^^HOSP^MR||DOE^JANE||19800102|F|||||(617)555-0134||||||123-45-6789\r\
                   DG1|1||E11.9^Type 2 diabetes mellitus^I10\r";
        assert!(is_hl7(msg));
        let mut out = String::new();
        hl7_to_text(msg, &mut out);
        for want in [
            "medical record number: 123456\n",
            "patient name: JANE DOE\n",
            "date of birth: 19800102\n",
            "phone: (617)555-0134\n",
            "ssn: 123-45-6789\n",
            "diagnosis: E11.9 Type 2 diabetes mellitus\n",
        ] {
            assert!(out.contains(want), "{want} in {out}");
        }
    }
}
