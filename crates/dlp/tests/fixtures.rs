//! One fixture per way an identifier can hide (see fixtures/make_fixtures.py): each
//! must be found, look-alikes must not, and limits must mark the message incomplete.

use carepost_dlp::{EntityType, IncompleteReason, Limits, Report, TextFormat, Verdict, scan_eml};

fn scan(name: &str) -> Report {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    scan_eml(&bytes, &Limits::default())
}

fn values(report: &Report, entity: EntityType) -> Vec<String> {
    report.findings.iter().filter(|f| f.entity == entity).map(|f| f.text.expose().to_string()).collect()
}

#[track_caller]
fn assert_found(report: &Report, entity: EntityType, value: &str) {
    let found = values(report, entity);
    assert!(found.iter().any(|v| v == value), "{entity} {value} not in {found:?}");
}

#[test]
fn quoted_printable_soft_breaks_inside_numbers() {
    let r = scan("qp_soft_breaks.eml");
    assert_found(&r, EntityType::UsSsn, "219-45-6789");
    assert_found(&r, EntityType::DateOfBirth, "03/14/1961");
    assert_found(&r, EntityType::Npi, "1234567893");
    assert_found(&r, EntityType::Icd10Code, "E11.65");
    assert_eq!(r.verdict, Verdict::Phi);
}

#[test]
fn html_only_body_with_references_and_tags_inside_numbers() {
    let r = scan("html_only.eml");
    assert_found(&r, EntityType::UsSsn, "219-45-6789");
    assert_found(&r, EntityType::DateOfBirth, "04/09/1948");
    assert_found(&r, EntityType::MedicareMbi, "1EG4-TE5-MK73");
    assert_found(&r, EntityType::PersonName, "Grace Okafor");
    assert_eq!(r.verdict, Verdict::Phi);
    assert_eq!(r.parts.iter().filter(|p| p.format == TextFormat::Html).count(), 1);
}

#[test]
fn nested_message_rfc822() {
    let r = scan("forwarded.eml");
    assert_found(&r, EntityType::Mrn, "00482913");
    assert_found(&r, EntityType::Icd10Code, "I10");
    assert_eq!(r.verdict, Verdict::Phi);
    assert!(r.parts.iter().any(|p| p.depth == 1), "{:?}", r.parts);
}

#[test]
fn legacy_charsets() {
    let r = scan("latin1.eml");
    assert_found(&r, EntityType::PersonName, "José Núñez");
    assert_found(&r, EntityType::DateOfBirth, "12/03/1950");
    assert_eq!(r.verdict, Verdict::Phi);

    // en dashes (0x96 in windows-1252) between the groups of an SSN
    let r = scan("windows1252.eml");
    assert_found(&r, EntityType::UsSsn, "219-45-6789");
    assert_found(&r, EntityType::DateOfBirth, "7/4/1980");

    // fullwidth digits and dashes in Shift_JIS
    let r = scan("shift_jis.eml");
    assert_found(&r, EntityType::UsSsn, "219-45-6789");
    assert_found(&r, EntityType::Phone, "(617) 555-0134");
}

#[test]
fn every_attachment_format() {
    let r = scan("attachments.eml");
    let formats: Vec<TextFormat> = r.parts.iter().map(|p| p.format).collect();
    for f in
        [TextFormat::Delimited, TextFormat::Xlsx, TextFormat::Docx, TextFormat::Pdf, TextFormat::Json, TextFormat::X12]
    {
        assert!(formats.contains(&f), "{f:?} not in {formats:?}");
    }
    // CSV: the header row labels the cells
    assert_found(&r, EntityType::Mrn, "A1234567");
    assert_found(&r, EntityType::Icd10Code, "E11.9");
    // XLSX: a date cell stored as a serial number, and an SSN column
    assert_found(&r, EntityType::DateOfBirth, "1980-01-02");
    assert_found(&r, EntityType::UsSsn, "219-45-6789");
    // DOCX: a two-column form
    assert_found(&r, EntityType::HealthPlanId, "QWE123456789");
    assert_found(&r, EntityType::NdcCode, "0002-1433-80");
    // PDF
    assert_found(&r, EntityType::DateOfBirth, "01/02/1980");
    assert_found(&r, EntityType::Mrn, "00482913");
    // X12 837: member ID, CCYYMMDD birth date, undotted diagnosis code
    assert_found(&r, EntityType::HealthPlanId, "XYZ987654321");
    assert_found(&r, EntityType::DateOfBirth, "19800102");
    assert_found(&r, EntityType::Icd10Code, "E119");
    assert_eq!(r.verdict, Verdict::Phi);
    assert!(!r.incomplete, "{:?}", r.incomplete_reasons);
}

#[test]
fn zip_bombs_and_images_make_the_scan_incomplete() {
    let r = scan("zip_bomb.eml");
    assert!(r.incomplete);
    assert!(r.incomplete_reasons.contains(&IncompleteReason::DecompressionLimit), "{:?}", r.incomplete_reasons);
    assert!(r.incomplete_reasons.contains(&IncompleteReason::UnsupportedFormat), "{:?}", r.incomplete_reasons);
    let summary = r.summary();
    assert!(summary.incomplete);
    assert_eq!(summary.attachments.len(), 2);
}

#[test]
fn look_alikes_that_fail_their_checks_are_not_reported() {
    let r = scan("lookalikes.eml");
    let reported: Vec<_> = r.findings.iter().map(|f| (f.entity, f.text.expose().to_string())).collect();
    assert_eq!(reported, vec![(EntityType::Phone, "(617) 555-0100".to_string())]);
    assert!(r.findings[0].business, "a signature's phone is business contact");
    assert_eq!(r.verdict, Verdict::Clean);
}

#[test]
fn tight_limits_truncate_and_say_so() {
    let path = format!("{}/tests/fixtures/attachments.eml", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    let limits = Limits { max_part_text_bytes: 40, max_message_text_bytes: 200, ..Limits::default() };
    let r = scan_eml(&bytes, &limits);
    assert!(r.incomplete);
    assert!(r.incomplete_reasons.contains(&IncompleteReason::PartLimit));
    assert!(r.incomplete_reasons.contains(&IncompleteReason::MessageLimit));
    assert!(r.text_bytes <= 200);
}

#[test]
fn summaries_carry_no_values() {
    for name in ["attachments.eml", "html_only.eml", "qp_soft_breaks.eml"] {
        let r = scan(name);
        let json = serde_json::to_string(&r.summary()).unwrap();
        for f in &r.findings {
            assert!(!json.contains(f.text.expose()), "{name}: summary leaks a value");
        }
        assert!(!format!("{:?}", r.findings).contains("219-45-6789"), "Debug of findings leaks a value");
    }
}

#[test]
fn unparseable_input_is_incomplete_not_clean_and_certain() {
    let r = scan_eml(b"", &Limits::default());
    assert!(r.incomplete);
    assert!(r.confidence <= 0.6);
}

#[test]
fn archives_of_text_files_and_hl7() {
    let r = scan("archive.eml");
    assert_found(&r, EntityType::UsSsn, "219-45-6789");
    assert_found(&r, EntityType::Icd10Code, "J45.909");
    assert_found(&r, EntityType::Mrn, "A7654321");
    // HL7: PID-3 with type MR, PID-7 birth date
    assert_found(&r, EntityType::Mrn, "00482913");
    assert_found(&r, EntityType::DateOfBirth, "19700314");
    assert_eq!(r.verdict, Verdict::Phi);
    assert!(r.parts.iter().any(|p| p.format == TextFormat::Hl7));
    assert_eq!(r.parts.iter().filter(|p| p.source == carepost_dlp::PartSource::Embedded).count(), 2);
    // the photo in the archive was not read
    assert_eq!(r.incomplete_reasons, vec![IncompleteReason::UnsupportedFormat]);
}

#[test]
fn oversized_attachments_are_skipped_and_reported() {
    let path = format!("{}/tests/fixtures/attachments.eml", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    let r = scan_eml(&bytes, &Limits { max_attachment_bytes: 100, ..Limits::default() });
    assert!(r.incomplete_reasons.contains(&IncompleteReason::AttachmentLimit), "{:?}", r.incomplete_reasons);
    assert!(r.parts.iter().any(|p| p.status == carepost_dlp::PartStatus::Skipped));
}

#[test]
fn signatures_are_not_unscanned_content() {
    let eml = b"Subject: signed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\r\n--b--\r\n";
    let r = scan_eml(eml, &Limits::default());
    assert!(!r.incomplete, "{:?}", r.incomplete_reasons);
    assert_eq!(r.verdict, Verdict::Clean);
}

#[test]
fn a_subject_with_a_name_or_a_health_term_is_sensitive() {
    let subject = |s: &str| {
        let eml = format!("Subject: {s}\r\n\r\nPatient: Ann Lee\r\nDOB: 01/02/1980\r\nDiagnosis: E11.9\r\n");
        let report = scan_eml(eml.as_bytes(), &Limits::default());
        assert_eq!(report.verdict, Verdict::Phi, "{s}: the body is PHI either way");
        report.summary().subject_sensitive
    };
    assert!(!subject("Your appointment reminder"));
    assert!(!subject("Documents from the front desk"));
    assert!(subject("Biopsy result"), "a health term");
    assert!(subject("Results for MRN 4821973"), "an identifier");
    assert!(subject("Lab results for Ann Lee, DOB 01/02/1980"), "a name and a date of birth");
}
