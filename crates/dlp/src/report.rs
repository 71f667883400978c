//! What a scan returns: the [`Report`] (with values, for the operator CLI only) and its
//! value-free [`Summary`] (for policy, audit, logs and the API).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Kinds of identifiers the detectors report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityType {
    UsSsn,
    MedicareMbi,
    Npi,
    DeaNumber,
    Icd10Code,
    NdcCode,
    CreditCard,
    Phone,
    EmailAddress,
    DateOfBirth,
    Mrn,
    HealthPlanId,
    PersonName,
}

impl EntityType {
    /// Every entity type, in a stable order.
    pub const ALL: [EntityType; 13] = [
        EntityType::UsSsn,
        EntityType::MedicareMbi,
        EntityType::Npi,
        EntityType::DeaNumber,
        EntityType::Icd10Code,
        EntityType::NdcCode,
        EntityType::CreditCard,
        EntityType::Phone,
        EntityType::EmailAddress,
        EntityType::DateOfBirth,
        EntityType::Mrn,
        EntityType::HealthPlanId,
        EntityType::PersonName,
    ];

    /// The name used in reports and in the corpus format (`US_SSN`, `NPI`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::UsSsn => "US_SSN",
            EntityType::MedicareMbi => "MEDICARE_MBI",
            EntityType::Npi => "NPI",
            EntityType::DeaNumber => "DEA_NUMBER",
            EntityType::Icd10Code => "ICD10_CODE",
            EntityType::NdcCode => "NDC_CODE",
            EntityType::CreditCard => "CREDIT_CARD",
            EntityType::Phone => "PHONE",
            EntityType::EmailAddress => "EMAIL_ADDRESS",
            EntityType::DateOfBirth => "DATE_OF_BIRTH",
            EntityType::Mrn => "MRN",
            EntityType::HealthPlanId => "HEALTH_PLAN_ID",
            EntityType::PersonName => "PERSON_NAME",
        }
    }

    /// Identifiers that on their own make a message about a person sensitive (`pii`),
    /// as opposed to contact details, provider identifiers (NPI, DEA) and codes.
    pub fn is_sensitive_identifier(self) -> bool {
        matches!(
            self,
            EntityType::UsSsn
                | EntityType::MedicareMbi
                | EntityType::CreditCard
                | EntityType::DateOfBirth
                | EntityType::Mrn
                | EntityType::HealthPlanId
        )
    }

    /// Codes that are health information in themselves (a diagnosis, a drug).
    pub fn is_health_code(self) -> bool {
        matches!(self, EntityType::Icd10Code | EntityType::NdcCode)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kinds of health information found in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    Condition,
    Medication,
    LabTest,
    Procedure,
}

/// The message-level decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// An identifier of a person together with health information.
    Phi,
    /// A sensitive personal identifier without health information.
    Pii,
    /// Neither.
    Clean,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Phi => "phi",
            Verdict::Pii => "pii",
            Verdict::Clean => "clean",
        }
    }

    /// `phi` or `pii`.
    pub fn is_sensitive(self) -> bool {
        self != Verdict::Clean
    }
}

/// A value found in a message. Its `Debug` and `Display` never print the value, so a
/// finding that reaches a log by accident leaks only its length; `expose` reads it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SensitiveText(String);

impl SensitiveText {
    pub(crate) fn new(s: String) -> Self {
        SensitiveText(s)
    }

    /// The value itself: for the operator CLI and tests only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SensitiveText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

impl fmt::Display for SensitiveText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// One identifier found in one part.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(rename = "type")]
    pub entity: EntityType,
    /// The value as it appears in the part's extracted text.
    pub text: SensitiveText,
    /// Index into [`Report::parts`].
    pub part: usize,
    /// Byte range in the part's extracted text (see [`PartInfo`]).
    pub start: usize,
    pub end: usize,
    /// The rule that matched, e.g. `ssn.formatted` or `mrn.label`.
    pub detector: &'static str,
    /// Business contact details (a signature's phone, a provider identifier) that do
    /// not by themselves make a message sensitive.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub business: bool,
}

/// Where a scanned text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartSource {
    /// The Subject header of the message (or of a nested message).
    Subject,
    /// A body part (text/plain, text/html) meant to be read inline.
    Body,
    /// An attachment, or a body part with a file name.
    Attachment,
    /// A file inside an attachment (a zip entry).
    Embedded,
}

/// How the text of a part was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    Plain,
    Html,
    Delimited,
    Json,
    Xml,
    Docx,
    Xlsx,
    Pdf,
    X12,
    Hl7,
    /// Not text and not a supported document format: not scanned.
    Binary,
}

/// What happened to a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    Scanned,
    /// Scanned up to a limit; the rest was not read.
    Truncated,
    /// Not scanned (format not supported, or a limit was reached before it).
    Skipped,
    /// The part claimed a supported format but could not be decoded.
    Failed,
}

/// One scanned (or skipped) piece of the message: the Subject, a body part, an
/// attachment, or a file inside an attachment. Byte ranges of findings refer to the
/// text extracted from it (HTML without tags, tables as `header: cell` lines, ...).
#[derive(Debug, Clone, Serialize)]
pub struct PartInfo {
    pub index: usize,
    pub source: PartSource,
    /// Depth of message/rfc822 nesting (0 for the outer message).
    pub depth: usize,
    /// MIME type as declared (lower case), e.g. `text/csv`. Shared with the
    /// extraction it came from (cloning a report's parts costs no copies).
    pub content_type: Arc<str>,
    /// File name of an attachment, if it has one. May itself be sensitive: not part of
    /// the [`Summary`].
    pub file_name: Option<Arc<str>>,
    pub format: TextFormat,
    pub status: PartStatus,
    /// Bytes of extracted text that were scanned.
    pub text_bytes: usize,
}

/// Why a message could not be scanned completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncompleteReason {
    /// The message could not be parsed as MIME at all.
    Unparseable,
    /// More text than `Limits::max_message_text_bytes`.
    MessageLimit,
    /// A part had more text than `Limits::max_part_text_bytes`.
    PartLimit,
    /// An attachment was larger than `Limits::max_attachment_bytes`.
    AttachmentLimit,
    /// Decompression would exceed its budget or ratio (zip bomb).
    DecompressionLimit,
    /// Too many parts, archive entries or nesting levels.
    StructureLimit,
    /// An attachment whose format is not supported (image, audio, unknown binary).
    UnsupportedFormat,
    /// A supported format that could not be decoded (corrupt or encrypted).
    Undecodable,
}

/// Everything a scan found in one message. Contains the values found: outside the
/// operator CLI pass on [`Report::summary`] instead.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    /// How sure the verdict is, from 0 to 1.
    pub confidence: f32,
    /// The message could not be scanned completely; policy should treat it as sensitive.
    pub incomplete: bool,
    pub incomplete_reasons: Vec<IncompleteReason>,
    pub findings: Vec<Finding>,
    /// Health information found, by kind (counts of distinct terms).
    pub health_signals: BTreeMap<HealthKind, usize>,
    /// A Subject holds an identifier (other than business contact details) or a health term:
    /// it must not be shown outside encryption, e.g. in a portal notice.
    pub subject_sensitive: bool,
    pub parts: Vec<PartInfo>,
    /// Bytes of extracted text scanned, all parts together.
    pub text_bytes: usize,
}

/// A value-free digest of a [`Report`]: entity types and counts, health-information
/// kinds, and the parts' formats. This is what policy, audit, logs and the API get.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub verdict: Verdict,
    pub confidence: f32,
    pub incomplete: bool,
    pub incomplete_reasons: Vec<IncompleteReason>,
    /// Distinct values found per entity type.
    pub entities: BTreeMap<EntityType, usize>,
    pub health_signals: BTreeMap<HealthKind, usize>,
    /// See [`Report::subject_sensitive`].
    pub subject_sensitive: bool,
    /// One entry per attachment (and embedded file): no file names.
    pub attachments: Vec<AttachmentSummary>,
}

/// An attachment as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentSummary {
    pub content_type: String,
    pub format: TextFormat,
    pub status: PartStatus,
}

impl Report {
    /// Types and counts only, never values.
    pub fn summary(&self) -> Summary {
        let mut entities: BTreeMap<EntityType, usize> = BTreeMap::new();
        for (entity, _) in self.distinct_findings() {
            *entities.entry(entity).or_default() += 1;
        }
        let attachments = self
            .parts
            .iter()
            .filter(|p| matches!(p.source, PartSource::Attachment | PartSource::Embedded))
            .map(|p| AttachmentSummary { content_type: p.content_type.to_string(), format: p.format, status: p.status })
            .collect();
        Summary {
            verdict: self.verdict,
            confidence: self.confidence,
            incomplete: self.incomplete,
            incomplete_reasons: self.incomplete_reasons.clone(),
            entities,
            health_signals: self.health_signals.clone(),
            subject_sensitive: self.subject_sensitive,
            attachments,
        }
    }

    /// Findings with the same type and the same letters and digits counted once, in
    /// order of first appearance.
    pub fn distinct_findings(&self) -> Vec<(EntityType, &str)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for f in &self.findings {
            let key = (f.entity, normalized_key(f.text.expose()));
            if seen.insert(key) {
                out.push((f.entity, f.text.expose()));
            }
        }
        out
    }

    /// The report as one object of the corpus prediction format
    /// (`{"file", "verdict", "findings": [{"type", "text"}]}`), with `confidence`,
    /// `incomplete` and per-finding `part`/`start`/`end`/`detector` as extra fields.
    /// Carries values: for the operator CLI only.
    pub fn to_corpus_json(&self, file: &str) -> serde_json::Value {
        let mut seen = std::collections::HashSet::new();
        let findings: Vec<serde_json::Value> = self
            .findings
            .iter()
            .filter(|f| seen.insert((f.entity, normalized_key(f.text.expose()))))
            .map(|f| {
                serde_json::json!({
                    "type": f.entity.as_str(),
                    "text": f.text.expose(),
                    "part": f.part,
                    "start": f.start,
                    "end": f.end,
                    "detector": f.detector,
                })
            })
            .collect();
        serde_json::json!({
            "file": file,
            "verdict": self.verdict.as_str(),
            "confidence": self.confidence,
            "incomplete": self.incomplete,
            "incomplete_reasons": self.incomplete_reasons,
            "findings": findings,
        })
    }

    /// The report as text for a terminal (`carepost dlp scan --format table`): one
    /// header line for the message, then one line per distinct finding with its part,
    /// detector and value. Carries values: for the operator CLI only.
    pub fn to_table(&self, file: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = write!(out, "{file}  {}  confidence {:.2}", self.verdict.as_str(), self.confidence);
        if self.incomplete {
            let reasons: Vec<String> = self.incomplete_reasons.iter().map(|r| format!("{r:?}")).collect();
            let _ = write!(out, "  INCOMPLETE ({})", reasons.join(", "));
        }
        out.push('\n');
        let mut seen = std::collections::HashSet::new();
        for f in &self.findings {
            if !seen.insert((f.entity, normalized_key(f.text.expose()))) {
                continue;
            }
            let part = self.parts.get(f.part);
            let place = match part {
                Some(p) => match &p.file_name {
                    Some(name) => format!("{} {}", p.index, name),
                    None => format!("{} {:?}", p.index, p.source).to_lowercase(),
                },
                None => f.part.to_string(),
            };
            let business = if f.business { " (business)" } else { "" };
            let _ = writeln!(
                out,
                "  {:<15} {:<24} {:<16} {}{business}",
                f.entity.as_str(),
                f.text.expose(),
                f.detector,
                place
            );
        }
        out
    }

    /// [`Report::to_corpus_json`] as one line of JSON (no trailing newline).
    pub fn to_corpus_jsonl(&self, file: &str) -> String {
        self.to_corpus_json(file).to_string()
    }
}

/// Letters and digits only, lower case: two findings with the same key are one value.
fn normalized_key(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(|c| c.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_text_is_redacted_in_debug_and_display() {
        let t = SensitiveText::new("123-45-6789".into());
        assert_eq!(format!("{t:?}"), "<redacted 11 bytes>");
        assert_eq!(format!("{t}"), "<redacted 11 bytes>");
        assert_eq!(t.expose(), "123-45-6789");
    }

    #[test]
    fn summary_counts_distinct_values_and_holds_no_values() {
        let finding = |text: &str| Finding {
            entity: EntityType::UsSsn,
            text: SensitiveText::new(text.into()),
            part: 1,
            start: 0,
            end: text.len(),
            detector: "ssn.formatted",
            business: false,
        };
        let report = Report {
            verdict: Verdict::Pii,
            confidence: 0.9,
            incomplete: false,
            incomplete_reasons: vec![],
            findings: vec![finding("123-45-6789"), finding("123 45 6789"), finding("222-33-4444")],
            health_signals: BTreeMap::new(),
            subject_sensitive: false,
            parts: vec![],
            text_bytes: 10,
        };
        let summary = report.summary();
        assert_eq!(summary.entities.get(&EntityType::UsSsn), Some(&2));
        let json = serde_json::to_string(&summary).unwrap();
        assert!(!json.contains("6789"), "{json}");
        let line = report.to_corpus_jsonl("0001.eml");
        assert!(line.contains("\"file\":\"0001.eml\""));
        assert_eq!(line.matches("\"type\":\"US_SSN\"").count(), 2);
        let table = report.to_table("0001.eml");
        assert!(table.starts_with("0001.eml  pii  confidence 0.90\n"), "{table}");
        assert_eq!(table.lines().count(), 3, "{table}");
    }
}
