//! Word lists: names, health terms and the labels that give a number its meaning.
//!
//! Every word of the text is looked up once (lower case) in one hash table. A word
//! carries flags (first name, month, filler, ...) and the phrases that start with it;
//! phrases are health terms (`type 2 diabetes`) or labels (`date of birth`, `member id`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::report::HealthKind;

/// Flags of a single word.
pub mod word {
    pub const FIRST_NAME: u32 = 1 << 0;
    pub const LAST_NAME: u32 = 1 << 1;
    /// An ordinary word that is also in a name list (`May`, `Will`, `Grace`).
    pub const NOT_NAME: u32 = 1 << 2;
    pub const MONTH: u32 = 1 << 3;
    /// Words skipped between a label and its value (`of`, `is`, `number`, `id`).
    pub const FILLER: u32 = 1 << 4;
    /// `your`, `his`, `her`: what follows is about a person.
    pub const POSSESSIVE: u32 = 1 << 5;
    /// Capitalized words that start sentences or headings, never names.
    pub const STOP_CAP: u32 = 1 << 6;
    /// Titles and credentials of staff (`Dr`, `MD`, `RN`).
    pub const PROVIDER_TITLE: u32 = 1 << 7;
}

/// Label classes: what the words before a value say it is.
pub mod label {
    pub const SSN: u32 = 1 << 0;
    pub const DOB: u32 = 1 << 1;
    pub const MRN: u32 = 1 << 2;
    pub const PLAN: u32 = 1 << 3;
    pub const PHONE: u32 = 1 << 4;
    pub const FAX: u32 = 1 << 5;
    pub const NPI: u32 = 1 << 6;
    pub const DEA: u32 = 1 << 7;
    pub const NDC: u32 = 1 << 8;
    /// Diagnosis codes: `diagnosis`, `dx`, `icd-10`.
    pub const DX: u32 = 1 << 9;
    /// Claim formats and their qualifiers.
    pub const CLAIM: u32 = 1 << 10;
    /// The person the message is about: `patient`, `name`, `beneficiary`, `employee`.
    pub const NAME: u32 = 1 << 11;
    /// `Dear`, `Hello`: the person addressed.
    pub const GREETING: u32 = 1 << 12;
    /// Staff: `provider`, `prescriber`, `physician`.
    pub const PROVIDER: u32 = 1 << 13;
    /// Business references that look like identifiers: invoice, order, ticket, account.
    pub const NEGATIVE: u32 = 1 << 14;
    /// Dates that are not birth dates: start, visit, appointment, service.
    pub const OTHER_DATE: u32 = 1 << 15;
    pub const CARD: u32 = 1 << 16;
    /// Drug context: rx, refill, dispense, mg.
    pub const RX: u32 = 1 << 17;
    pub const EMAIL: u32 = 1 << 18;
    pub const MEDICARE: u32 = 1 << 19;
    /// Business contact: office, clinic, main line, front desk.
    pub const OFFICE: u32 = 1 << 20;
}

/// What a phrase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhraseKind {
    Health(HealthKind),
    Label(u32),
}

#[derive(Debug)]
pub struct Phrase {
    /// Words after the first one, lower case.
    pub rest: Vec<Box<[u8]>>,
    pub kind: PhraseKind,
}

#[derive(Debug, Default, Clone)]
pub struct WordInfo {
    pub flags: u32,
    /// 1-12 for month names and their abbreviations.
    pub month: u8,
    /// Phrases that start with this word, longest first.
    pub phrases: Vec<u32>,
}

pub struct Lexicon {
    words: HashMap<Box<[u8]>, WordInfo, BuildHasherDefault<FxHasher>>,
    pub phrases: Vec<Phrase>,
}

/// Longest word looked up; longer words are never in the lists.
pub const MAX_WORD: usize = 32;

impl Lexicon {
    /// The lexicon, built on first use from the lists under `data/`.
    pub fn get() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(Lexicon::build)
    }

    /// Look up a word given in lower case.
    #[inline]
    pub fn lookup(&self, lower: &[u8]) -> Option<&WordInfo> {
        self.words.get(lower)
    }

    fn build() -> Lexicon {
        let mut lx = Lexicon { words: HashMap::default(), phrases: Vec::new() };
        for name in lines(include_str!("../../data/first_names_census.txt"))
            .chain(lines(include_str!("../../data/first_names_extra.txt")))
        {
            lx.flag(name, word::FIRST_NAME);
        }
        for name in lines(include_str!("../../data/last_names_census.txt")) {
            lx.flag(name, word::LAST_NAME);
        }
        for w in lines(include_str!("../../data/not_names.txt")) {
            lx.flag(w, word::NOT_NAME);
        }
        for w in STOP_CAPS {
            lx.flag(w, word::STOP_CAP | word::NOT_NAME);
        }
        for w in FILLERS {
            lx.flag(w, word::FILLER);
        }
        for w in POSSESSIVES {
            lx.flag(w, word::POSSESSIVE);
        }
        for w in PROVIDER_TITLES {
            lx.flag(w, word::PROVIDER_TITLE | word::NOT_NAME);
        }
        for (i, names) in MONTHS.iter().enumerate() {
            for m in *names {
                lx.flag(m, word::MONTH | word::NOT_NAME);
                lx.words.entry((*m).as_bytes().into()).or_default().month = i as u8 + 1;
            }
        }
        let health = [
            (include_str!("../../data/conditions.txt"), HealthKind::Condition),
            (include_str!("../../data/medications.txt"), HealthKind::Medication),
            (include_str!("../../data/lab_tests.txt"), HealthKind::LabTest),
            (include_str!("../../data/procedures.txt"), HealthKind::Procedure),
        ];
        for (list, kind) in health {
            for term in lines(list) {
                lx.phrase(term, PhraseKind::Health(kind));
            }
        }
        for (terms, class) in LABELS {
            for t in *terms {
                lx.phrase(t, PhraseKind::Label(*class));
            }
        }
        // longest phrase first, so the first match is the longest
        let phrases = &lx.phrases;
        for info in lx.words.values_mut() {
            info.phrases.sort_by_key(|&p| std::cmp::Reverse(phrases[p as usize].rest.len()));
        }
        lx
    }

    fn flag(&mut self, w: &str, flag: u32) {
        let key: Box<[u8]> = w.to_ascii_lowercase().into_bytes().into();
        self.words.entry(key).or_default().flags |= flag;
    }

    fn phrase(&mut self, term: &str, kind: PhraseKind) {
        let words = split_words(term);
        let Some((first, rest)) = words.split_first() else { return };
        let id = self.phrases.len() as u32;
        self.phrases.push(Phrase { rest: rest.iter().map(|w| w.as_bytes().into()).collect(), kind });
        self.words.entry(first.as_bytes().into()).or_default().phrases.push(id);
    }
}

/// Split a term into lower-case words the way the lexer splits text.
fn split_words(term: &str) -> Vec<String> {
    term.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

fn lines(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

const MONTHS: [&[&str]; 12] = [
    &["january", "jan"],
    &["february", "feb"],
    &["march", "mar"],
    &["april", "apr"],
    &["may"],
    &["june", "jun"],
    &["july", "jul"],
    &["august", "aug"],
    &["september", "sep", "sept"],
    &["october", "oct"],
    &["november", "nov"],
    &["december", "dec"],
];

const FILLERS: &[&str] = &[
    "of", "is", "was", "on", "number", "no", "num", "nbr", "id", "ids", "the", "a", "for", "s", "to", "be", "are",
    "at", "file", "code", "identifier", "identification", "card", "their", "our", "my", "his", "her", "your", "new",
    "as", "in", "with", "please", "use", "and",
];

const POSSESSIVES: &[&str] = &["your", "his", "her", "their", "patient", "pt", "my"];

const PROVIDER_TITLES: &[&str] = &["dr", "doctor", "md", "do", "rn", "np", "pa", "dds", "dmd", "phd", "lpn", "prof", "nurse"];

/// Capitalized words that begin sentences, headings and salutations in mail.
const STOP_CAPS: &[&str] = &[
    "the", "please", "thank", "thanks", "regards", "best", "sincerely", "hello", "hi", "dear", "team", "patient",
    "name", "date", "birth", "dob", "mrn", "ssn", "phone", "fax", "email", "address", "insurance", "member",
    "diagnosis", "current", "medications", "referring", "provider", "npi", "dea", "ndc", "refill", "prescriber",
    "beneficiary", "mbi", "subject", "re", "fw", "fwd", "attached", "this", "that", "your", "our", "we", "i", "you",
    "if", "for", "from", "to", "with", "and", "or", "but", "not", "no", "yes", "on", "in", "at", "by", "of", "as",
    "an", "a", "it", "is", "are", "was", "be", "has", "have", "had", "do", "does", "did", "will", "would", "can",
    "could", "should", "may", "might", "must", "shall", "let", "see", "call", "note", "notes", "reminder", "hospital",
    "clinic", "center", "medical", "health", "care", "family", "medicine", "street", "st", "ave", "road", "rd", "blvd",
    "suite", "apt", "lane", "drive", "court", "way", "city", "state", "zip", "usa", "inc", "llc", "co", "corp", "group",
    "department", "dept", "office", "service", "services", "unit", "ward", "room", "floor", "building", "north",
    "south", "east", "west", "new", "saint", "mount", "fort", "lake", "valley", "park", "river", "hill", "human", "resources", "accounts", "receivable", "payable", "billing", "payroll", "support", "desk",
    "helpdesk", "admin", "manager", "director", "coordinator", "associates", "partners", "orthopedics",
    "cardiology", "oncology", "pediatrics", "endocrinology", "behavioral", "plan", "ppo", "hmo", "epo", "pos",
    "mutual", "blue", "cross", "shield", "medicare", "medicaid", "tricare", "aetna", "cigna", "humana", "united",
    "kaiser", "anthem", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today",
    "tomorrow", "yesterday", "morning", "afternoon", "evening", "tel", "cell", "mobile", "home", "work", "main",
    "result", "results", "lab", "labs", "test", "tests", "report", "reports", "summary", "visit", "appointment",
    "follow", "up", "urgent", "important", "confidential", "private", "secure", "message", "info", "information",
    "details", "request", "requested", "update", "updated", "new", "hire", "employee", "start", "end", "total",
    "amount", "balance", "due", "paid", "payment", "invoice", "order", "account", "ref", "reference", "id", "type",
    "status", "sex", "gender", "male", "female", "age", "dx", "rx", "icd", "cpt", "hcpcs", "claim", "claims",
    "policy", "subscriber", "group", "payer", "insured", "relationship", "self", "spouse", "child", "other",
];

/// Label phrases, by class. Words are matched in lower case, punctuation ignored.
const LABELS: &[(&[&str], u32)] = &[
    (
        &["ssn", "ss#", "ss", "social security", "social security number", "soc sec", "social sec", "social", "ssa",
          "taxpayer id", "tin"],
        label::SSN,
    ),
    (
        &["dob", "d o b", "date of birth", "birth date", "birthdate", "birthday", "born", "birth", "date born",
          "birth dt", "dt of birth", "fecha de nacimiento", "geburtsdatum", "nacimiento"],
        label::DOB,
    ),
    (
        &["mrn", "mr number", "mr no", "medical record", "medical record number", "medical rec", "med rec",
          "record number", "record no", "record", "chart", "chart number", "chart no", "patient id", "pt id",
          "patient number", "patient no", "patient identifier", "hospital number", "hospital no", "ehr id", "emr id",
          "emr", "unit number", "person number"],
        label::MRN,
    ),
    (
        &["member id", "member", "member number", "member no", "members", "subscriber id", "subscriber number",
          "subscriber", "policy", "policy number", "policy no", "policy id", "medicaid", "medicaid id",
          "medicaid number", "insurance id", "insurance number", "insured id", "plan id", "health plan id",
          "health plan number", "beneficiary id", "beneficiary number", "enrollee id", "recipient id", "cin",
          "insurance member", "coverage id", "benefit id", "chip id"],
        label::PLAN,
    ),
    (&["medicare", "mbi", "medicare number", "medicare id", "hicn", "medicare beneficiary"], label::MEDICARE),
    (
        &["phone", "phone number", "tel", "telephone", "cell", "cell phone", "mobile", "mobile phone", "call",
          "contact", "contact number", "ph", "home phone", "work phone", "text", "reach", "callback", "call back",
          "pager", "tel no"],
        label::PHONE,
    ),
    (&["fax", "facsimile", "fax number", "fax no"], label::FAX | label::OFFICE),
    (
        &["office", "main line", "front desk", "clinic", "switchboard", "toll free", "toll-free", "helpline",
          "hotline", "scheduling", "appointments line"],
        label::OFFICE,
    ),
    (&["npi", "national provider identifier", "national provider", "provider number", "provider id"], label::NPI),
    (&["dea", "dea number", "dea no", "dea registration"], label::DEA),
    (&["ndc", "national drug code", "n4", "drug code"], label::NDC | label::RX),
    (
        &["diagnosis", "diagnoses", "dx", "icd", "icd 10", "icd10", "icd 10 cm", "diag", "diagnosis code",
          "primary diagnosis", "secondary diagnosis", "admitting diagnosis", "problem", "assessment", "impression",
          "condition", "reason for visit", "indication"],
        label::DX,
    ),
    (&["claim", "abk", "abf", "bk", "bf", "hi", "principal", "admitting", "other diagnosis"], label::CLAIM),
    (
        &["patient", "patient name", "pt", "pt name", "name", "full name", "patient full name", "beneficiary",
          "beneficiary name", "member name", "employee", "employee name", "insured", "insured name",
          "subscriber name", "client", "client name", "resident", "enrollee", "new employee", "our employee",
          "new hire", "candidate", "applicant", "cardholder", "card holder", "guarantor", "re", "regarding",
          "patient s name", "first name", "last name", "surname", "given name"],
        label::NAME,
    ),
    (&["dear", "hello", "hi", "hey", "good morning", "good afternoon", "greetings"], label::GREETING),
    (
        &["provider", "prescriber", "physician", "referring provider", "rendering provider", "attending",
          "ordering provider", "pcp", "dr", "doctor", "signed", "nurse", "author", "sent by", "from"],
        label::PROVIDER,
    ),
    (
        &["invoice", "inv", "order", "order number", "po", "purchase order", "ticket", "tracking", "account",
          "acct", "account number", "reference", "ref", "meeting", "meeting id", "conference", "part", "part number",
          "model", "serial", "serial number", "sku", "item", "lot", "version", "build", "confirmation", "case",
          "case number", "room", "extension", "ext", "transaction", "routing", "batch", "ip", "server", "port",
          "zip", "zip code", "postal", "fedex", "ups", "usps", "check number", "isbn", "lookup", "tool", "test",
          "sample", "example", "dock", "route", "suite", "apt", "unit", "pin", "passcode", "access code", "code word",
          "quote", "contract", "vendor", "supplier", "customer", "shipment", "pallet", "container", "badge",
          "employee id", "employee number", "staff id", "license", "license number", "registration", "voucher",
          "coupon", "promo", "gift card", "barcode", "upc", "ean", "asset", "asset tag", "ticket number"],
        label::NEGATIVE,
    ),
    (
        &["start", "start date", "visit", "visit date", "appointment", "appt", "service", "date of service", "dos",
          "admission", "admit", "admitted", "discharge", "discharged", "due", "due date", "expiration", "exp",
          "expires", "expiry", "issued", "issue date", "effective", "effective date", "scheduled", "hire date",
          "hired", "seen", "collected", "reported", "received", "sent", "signed on", "today", "updated",
          "last updated", "created", "modified", "deadline", "until", "through", "from date", "to date",
          "end date", "termination", "surgery date", "procedure date", "next", "last visit", "follow up", "dated",
          "posted", "shipped", "delivered", "paid", "invoice date", "order date", "statement date", "period",
          "week of", "meeting", "moved", "moves"],
        label::OTHER_DATE,
    ),
    (
        &["card", "card number", "visa", "mastercard", "amex", "american express", "discover", "credit",
          "credit card", "debit", "debit card", "cc", "payment card", "card on file"],
        label::CARD,
    ),
    (
        &["rx", "drug", "medication", "medications", "dispense", "dispensed", "refill", "refills", "pharmacy",
          "package", "prescription", "mg", "mcg", "tablet", "tablets", "tab", "tabs", "capsule", "capsules", "dose",
          "vial", "inhaler", "ml", "units", "supply", "sig", "qty", "quantity", "generic", "brand", "formulary",
          "product", "lin"],
        label::RX,
    ),
    (&["email", "e mail", "mail", "email address"], label::EMAIL),
];

/// A small multiplicative hasher for short keys (the std default is collision-resistant
/// but several times slower, and these keys are not attacker-chosen table entries).
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[..8]);
            self.add(u64::from_le_bytes(w));
            bytes = &bytes[8..];
        }
        if !bytes.is_empty() {
            let mut w = [0u8; 8];
            w[..bytes.len()].copy_from_slice(bytes);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicon_knows_names_months_and_phrases() {
        let lx = Lexicon::get();
        assert!(lx.lookup(b"jennifer").unwrap().flags & word::FIRST_NAME != 0);
        assert!(lx.lookup(b"garcia").unwrap().flags & word::LAST_NAME != 0);
        assert_eq!(lx.lookup(b"dec").unwrap().month, 12);
        let dob = lx.lookup(b"date").unwrap();
        assert!(dob.phrases.iter().any(|&p| lx.phrases[p as usize].kind == PhraseKind::Label(label::DOB)));
        let metformin = lx.lookup(b"metformin").unwrap();
        assert!(!metformin.phrases.is_empty());
    }
}
