//! Each detector with valid values, look-alikes that fail their checks, and context.

use super::*;

fn found(text: &str) -> Vec<(EntityType, String)> {
    let mut scratch = Scratch::default();
    scan_text(text, &mut scratch).detections.into_iter().map(|d| (d.entity, text[d.start..d.end].to_string())).collect()
}

fn has(text: &str, entity: EntityType, value: &str) -> bool {
    found(text).iter().any(|(e, v)| *e == entity && v == value)
}

fn none_of(text: &str, entity: EntityType) -> bool {
    !found(text).iter().any(|(e, _)| *e == entity)
}

#[test]
fn ssn_formatted_and_labeled() {
    assert!(has("SSN: 219-45-6789", EntityType::UsSsn, "219-45-6789"));
    assert!(has("her number is 219-45-6789.", EntityType::UsSsn, "219-45-6789"));
    assert!(has("Social Security number: 219456789", EntityType::UsSsn, "219456789"));
    assert!(has("SSN 219 45 6789", EntityType::UsSsn, "219 45 6789"));
    // invalid area / group / serial, and unformatted without a label
    assert!(none_of("SSN: 000-12-3456", EntityType::UsSsn));
    assert!(none_of("SSN: 666-12-3456", EntityType::UsSsn));
    assert!(none_of("SSN: 912-12-3456", EntityType::UsSsn));
    assert!(none_of("SSN: 123-00-3456", EntityType::UsSsn));
    assert!(none_of("ref 123456789", EntityType::UsSsn));
    assert!(none_of("part 219-45-6789-01", EntityType::UsSsn));
}

#[test]
fn medicare_mbi() {
    assert!(has("MBI: 1EG4-TE5-MK73", EntityType::MedicareMbi, "1EG4-TE5-MK73"));
    assert!(has("Medicare 1EG4TE5MK73 on file", EntityType::MedicareMbi, "1EG4TE5MK73"));
    assert!(none_of("MBI: 1EG4-TE5-MK7A", EntityType::MedicareMbi));
    assert!(none_of("MBI: 1SG4TE5MK73", EntityType::MedicareMbi));
}

#[test]
fn npi_luhn_with_prefix() {
    assert!(has("NPI: 1234567893", EntityType::Npi, "1234567893"));
    assert!(none_of("NPI: 1234567894", EntityType::Npi));
    assert!(none_of("NPI: 3234567893", EntityType::Npi));
}

#[test]
fn dea_check_digit() {
    assert!(has("DEA: AB1234563", EntityType::DeaNumber, "AB1234563"));
    assert!(none_of("DEA: AB1234564", EntityType::DeaNumber));
}

#[test]
fn icd10_dotted_and_in_context() {
    assert!(has("Diagnosis: E11.9 - diabetes", EntityType::Icd10Code, "E11.9"));
    assert!(has("code S72.001A noted", EntityType::Icd10Code, "S72.001A"));
    assert!(has("history of hypertension (I10)", EntityType::Icd10Code, "I10"));
    assert!(has("Dx: E119", EntityType::Icd10Code, "E119"));
    // not real codes, or not where a code is expected
    assert!(none_of("Diagnosis: E11.24", EntityType::Icd10Code));
    assert!(none_of("Part numbers: E11-243, I10X-95, dock I-10.", EntityType::Icd10Code));
    assert!(none_of("take the I10 bus", EntityType::Icd10Code));
}

#[test]
fn ndc_shapes_with_drug_context() {
    assert!(has("metformin 500 mg, NDC 12345-6789-01", EntityType::NdcCode, "12345-6789-01"));
    assert!(has("NDC: 1234-5678-90", EntityType::NdcCode, "1234-5678-90"));
    assert!(has("NDC: 12345-678-90", EntityType::NdcCode, "12345-678-90"));
    assert!(has("NDC 12345678901", EntityType::NdcCode, "12345678901"));
    assert!(none_of("serial 12345-6789-01", EntityType::NdcCode));
    assert!(none_of("order 12345678901", EntityType::NdcCode));
}

#[test]
fn credit_cards() {
    assert!(has("card 4111 1111 1111 1111 exp 01/29", EntityType::CreditCard, "4111 1111 1111 1111"));
    assert!(has("card 4111-1111-1111-1111", EntityType::CreditCard, "4111-1111-1111-1111"));
    assert!(has("amex 3782 822463 10005", EntityType::CreditCard, "3782 822463 10005"));
    assert!(has("pay with 5500000000000004", EntityType::CreditCard, "5500000000000004"));
    assert!(none_of("card 4111 1111 1111 1112", EntityType::CreditCard));
    assert!(none_of("ref 9111111111111111", EntityType::CreditCard));
}

#[test]
fn phones_nanp() {
    assert!(has("call (617) 555-0134", EntityType::Phone, "(617) 555-0134"));
    assert!(has("Home phone: +1 617 555 0134", EntityType::Phone, "+1 617 555 0134"));
    assert!(has("617.555.0134", EntityType::Phone, "617.555.0134"));
    assert!(has("1-800-555-0134", EntityType::Phone, "1-800-555-0134"));
    assert!(has("Phone: 6175550134", EntityType::Phone, "6175550134"));
    assert!(none_of("call (117) 555-0134", EntityType::Phone));
    assert!(none_of("617-155-0134", EntityType::Phone));
    assert!(none_of("Meeting ID: 770 5557 7664", EntityType::Phone));
    assert!(none_of("order 617-555-0134", EntityType::Phone));
}

#[test]
fn emails() {
    assert!(has("Email: jane.doe@example-mail.com.", EntityType::EmailAddress, "jane.doe@example-mail.com"));
    assert!(none_of("at @ home, a@b", EntityType::EmailAddress));
}

#[test]
fn dates_of_birth_need_birth_context() {
    assert!(has("DOB: 07/28/1984", EntityType::DateOfBirth, "07/28/1984"));
    assert!(has("Date of birth: December 19, 1974", EntityType::DateOfBirth, "December 19, 1974"));
    assert!(has("born on 1976-05-04", EntityType::DateOfBirth, "1976-05-04"));
    assert!(has("(DOB 07-07-1937)", EntityType::DateOfBirth, "07-07-1937"));
    assert!(has("dob: December 21 2009", EntityType::DateOfBirth, "December 21 2009"));
    assert!(has("Date of Birth\n19 March 1950", EntityType::DateOfBirth, "19 March 1950"));
    assert!(none_of("Start date: 07/09/2026", EntityType::DateOfBirth));
    let both = found("Date of Birth: 1976-05-04\nStart date: 07/09/2026");
    assert_eq!(both, vec![(EntityType::DateOfBirth, "1976-05-04".to_string())]);
    assert!(none_of("DOB: 02/30/1984", EntityType::DateOfBirth));
    assert!(none_of("seen on 07/28/1984", EntityType::DateOfBirth));
}

#[test]
fn record_and_member_ids_follow_their_labels() {
    assert!(has("MRN: K4330111", EntityType::Mrn, "K4330111"));
    assert!(has("Medical record number 170-229-333", EntityType::Mrn, "170-229-333"));
    assert!(has("Member ID: UNZ36395322", EntityType::HealthPlanId, "UNZ36395322"));
    assert!(has("Medicaid #: 12345678901", EntityType::HealthPlanId, "12345678901"));
    assert!(none_of("Invoice 12345678", EntityType::Mrn));
    assert!(none_of("MRN: pending", EntityType::Mrn));
}

#[test]
fn names_of_people_the_message_is_about() {
    assert!(has("Patient: Justin Foster\n", EntityType::PersonName, "Justin Foster"));
    assert!(has("Hello Wayne,", EntityType::PersonName, "Wayne"));
    assert!(has("Refill approved for Kelly Ellis (DOB", EntityType::PersonName, "Kelly Ellis"));
    // staff and ordinary capitalized words are not
    assert!(none_of("Dear Dr. Simmons,", EntityType::PersonName));
    assert!(none_of("Please Call The Office", EntityType::PersonName));
    assert!(none_of("Name: Contents\nHi Ppp,", EntityType::PersonName));
    assert!(none_of("Thanks\n--\nPhilip Ramirez\nNorthgate Cardiology", EntityType::PersonName));
}

#[test]
fn health_terms_and_possessives() {
    let mut scratch = Scratch::default();
    let scan = scan_text("a reminder of your colonoscopy; type 2 diabetes; metformin", &mut scratch);
    let kinds: Vec<_> = scan.health.iter().map(|h| (h.kind, h.personal)).collect();
    assert!(kinds.contains(&(HealthKind::Procedure, true)));
    assert!(kinds.contains(&(HealthKind::Condition, false)));
    assert!(kinds.contains(&(HealthKind::Medication, false)));
}

#[test]
fn example_and_repeated_ssns_are_not_reported() {
    assert!(none_of("SSN: 123-45-6789", EntityType::UsSsn));
    assert!(none_of("SSN: 111-11-1111", EntityType::UsSsn));
}

#[test]
fn claim_form_fields() {
    let text =
        "1a. INSURED'S I.D. NUMBER: XQZ123456789\n3. PATIENT'S BIRTH DATE: 01 02 1980\n21. DIAGNOSIS: A. E119 B. I10\n";
    assert!(has(text, EntityType::HealthPlanId, "XQZ123456789"));
    assert!(has(text, EntityType::DateOfBirth, "01 02 1980"));
    assert!(has(text, EntityType::Icd10Code, "E119"));
    assert!(has(text, EntityType::Icd10Code, "I10"));
}

#[test]
fn ids_after_other_labels_keep_their_kind() {
    assert!(has("Member phone: 617-555-0134", EntityType::Phone, "617-555-0134"));
    assert!(none_of("Member phone: 617-555-0134", EntityType::HealthPlanId));
    assert!(has("Aetna ID: W123456789", EntityType::HealthPlanId, "W123456789"));
    assert!(has("Call Aetna at 1-800-555-0134", EntityType::Phone, "1-800-555-0134"));
}

#[test]
fn spaced_and_dotted_variants_after_labels() {
    assert!(has("MBI 1EG4 TE5 MK73", EntityType::MedicareMbi, "1EG4 TE5 MK73"));
    assert!(has("SSN: 219.45.6789", EntityType::UsSsn, "219.45.6789"));
    assert!(none_of("version 219.45.6789", EntityType::UsSsn));
    assert!(has("NDC 00002 1433 80", EntityType::NdcCode, "00002 1433 80"));
}

#[test]
fn some_health_words_are_always_about_a_person() {
    let mut scratch = Scratch::default();
    let scan = scan_text("John Smith was diagnosed with asthma. The asthma program starts Monday.", &mut scratch);
    assert!(scan.health.iter().any(|h| h.personal));
    let scan = scan_text("The asthma program starts Monday.", &mut scratch);
    assert!(!scan.health.iter().any(|h| h.personal));
}

#[test]
fn spanish_labels_and_accented_terms() {
    let text = "Paciente: José García\nFecha de nacimiento: 03/04/1950\nNúmero de seguro social: 219-45-6789\nDiagnóstico: hipertensión (I10)\n";
    assert!(has(text, EntityType::PersonName, "José García"));
    assert!(has(text, EntityType::DateOfBirth, "03/04/1950"));
    assert!(has(text, EntityType::UsSsn, "219-45-6789"));
    assert!(has(text, EntityType::Icd10Code, "I10"));
    let mut scratch = Scratch::default();
    assert!(!scan_text(text, &mut scratch).health.is_empty(), "hipertensión is a condition");
}

#[test]
fn format_hints_between_label_and_value() {
    assert!(has("DOB (MM/DD/YYYY): 01/02/1980", EntityType::DateOfBirth, "01/02/1980"));
    assert!(has("Member ID (on card): QRS123456789", EntityType::HealthPlanId, "QRS123456789"));
}
