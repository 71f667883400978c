//! The message-level decision from everything the detectors found.
//!
//! - `phi`: health information (a condition, drug, lab, procedure, diagnosis or drug
//!   code) together with an identifier of the person it is about: a sensitive
//!   identifier (SSN, MBI, MRN, member ID, date of birth, card), a name given after a
//!   label such as `Patient:`, or a name the message greets or mentions when the health
//!   information is phrased as that person's (`your colonoscopy`).
//! - `pii`: a sensitive identifier without health information.
//! - `clean`: otherwise. Contact details (phones, e-mail addresses), provider
//!   identifiers (NPI, DEA) and business signatures never make a message sensitive.

use crate::detect::{Detection, HealthHit, PersonRole};
use crate::report::{EntityType, Verdict};

/// Decide a verdict and how sure it is.
pub fn decide<'d>(
    detections: impl IntoIterator<Item = &'d Detection>,
    health: &[HealthHit],
    incomplete: bool,
) -> (Verdict, f32) {
    let mut sensitive = 0usize;
    let mut checksummed = false;
    let mut codes = 0usize;
    let mut labeled = false;
    let mut addressed = false;
    for d in detections {
        if d.entity.is_sensitive_identifier() && !d.business {
            sensitive += 1;
            checksummed |= matches!(d.entity, EntityType::UsSsn | EntityType::MedicareMbi | EntityType::CreditCard);
        }
        if d.entity.is_health_code() {
            codes += 1;
        }
        match d.role {
            Some(PersonRole::Labeled) => labeled = true,
            Some(PersonRole::Greeted | PersonRole::Mentioned) => addressed = true,
            None => {}
        }
    }
    let has_health = !health.is_empty() || codes > 0;
    let personal_health = health.iter().any(|h| h.personal) || codes > 0;

    if has_health && (sensitive > 0 || labeled || (addressed && personal_health)) {
        let mut confidence: f32 = 0.8;
        if sensitive >= 2 || checksummed {
            confidence += 0.1;
        }
        if codes > 0 {
            confidence += 0.05;
        }
        return (Verdict::Phi, confidence.min(0.99));
    }
    if sensitive > 0 {
        let confidence = if checksummed || sensitive >= 2 { 0.95 } else { 0.85 };
        return (Verdict::Pii, confidence);
    }
    // clean: less sure when there were signals that fell short, or parts went unread
    let mut confidence: f32 = 0.95;
    if has_health || labeled || addressed {
        confidence = 0.8;
    }
    if incomplete {
        confidence = confidence.min(0.6);
    }
    (Verdict::Clean, confidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::HealthKind;

    fn det(entity: EntityType, role: Option<PersonRole>, business: bool) -> Detection {
        Detection { entity, start: 0, end: 1, detector: "test", business, role }
    }

    fn hit(personal: bool) -> HealthHit {
        HealthHit { kind: HealthKind::Condition, start: 0, end: 1, personal }
    }

    #[test]
    fn identifiers_with_health_information_are_phi() {
        assert_eq!(decide(&[det(EntityType::Mrn, None, false)], &[hit(false)], false).0, Verdict::Phi);
        assert_eq!(
            decide(&[det(EntityType::PersonName, Some(PersonRole::Labeled), false)], &[hit(false)], false).0,
            Verdict::Phi
        );
        assert_eq!(
            decide(&[det(EntityType::PersonName, Some(PersonRole::Greeted), false)], &[hit(true)], false).0,
            Verdict::Phi
        );
    }

    #[test]
    fn a_greeting_and_general_health_talk_is_not_phi() {
        assert_eq!(
            decide(&[det(EntityType::PersonName, Some(PersonRole::Greeted), false)], &[hit(false)], false).0,
            Verdict::Clean
        );
    }

    #[test]
    fn identifiers_without_health_information_are_pii() {
        assert_eq!(decide(&[det(EntityType::UsSsn, None, false)], &[], false).0, Verdict::Pii);
    }

    #[test]
    fn contact_details_and_provider_ids_are_clean() {
        let d =
            [det(EntityType::Phone, None, true), det(EntityType::Npi, None, true), det(EntityType::Phone, None, false)];
        assert_eq!(decide(&d, &[hit(false)], false).0, Verdict::Clean);
        let (_, confidence) = decide(&d, &[], true);
        assert!(confidence <= 0.6);
    }
}
