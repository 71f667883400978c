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
    /// Courtesy titles before a name (`Mr`, `Ms`).
    pub const TITLE: u32 = 1 << 8;
    /// Health words that are about a particular person whatever precedes them
    /// (`diagnosed with`, `was admitted`, `prescribed`).
    pub const PERSONAL_HEALTH: u32 = 1 << 9;
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
    /// Entry ids of the words after the first one (every phrase word has an entry,
    /// so matching a phrase compares token entry ids, not strings).
    pub rest: Vec<u32>,
    pub kind: PhraseKind,
}

#[derive(Debug, Default, Clone)]
pub struct WordInfo {
    pub flags: u32,
    /// 1-12 for month names and their abbreviations.
    pub month: u8,
    /// Phrases that start with this word, longest first.
    pub phrases: Vec<u32>,
    /// The word appears inside some phrase (so its entry id must be known to match it).
    pub in_phrase: bool,
}

pub struct Lexicon {
    /// Words of up to 16 bytes, packed into a `u128` key ([`pack_word`]): every entry
    /// (used while building and by [`Lexicon::lookup`]).
    short: WordTable<u128>,
    /// The scanning tables. Name-list words are most of the lexicon but matter only for
    /// capitalized words, so lower-case words meet a small table without them (which
    /// stays in cache), and capitalized words one table with everything.
    terms: SplitTable,
    /// Every entry, for capitalized words (one look-up finds both kinds of flags).
    all: SplitTable,
    /// Longer words.
    long: HashMap<Box<[u8]>, u32, BuildHasherDefault<FxHasher>>,
    /// Entries, indexed by the values of `short` and `long`.
    infos: Vec<WordInfo>,
    pub phrases: Vec<Phrase>,
    /// For scanning: each entry's phrases, longest first, inline and contiguous
    /// (`phrase_index[id]` is the range in `phrase_table`).
    phrase_table: Vec<CompactPhrase>,
    phrase_index: Vec<(u32, u32)>,
}

/// Longest phrase, in words after the first.
const MAX_PHRASE_REST: usize = 6;

/// A phrase as the scanner reads it: the entry ids of the words after the first.
#[derive(Debug, Clone, Copy)]
pub struct CompactPhrase {
    pub rest: [u32; MAX_PHRASE_REST],
    pub len: u8,
    pub kind: PhraseKind,
}

impl CompactPhrase {
    #[inline]
    pub fn rest(&self) -> &[u32] {
        &self.rest[..usize::from(self.len)]
    }
}

/// Pack a lower-case word of at most 16 bytes into a key (little-endian, zero padded).
#[inline]
pub fn pack_word(lower: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    let n = lower.len().min(16);
    buf[..n].copy_from_slice(&lower[..n]);
    u128::from_le_bytes(buf)
}

/// Keys of a word table: words packed into integers (0 is the empty slot).
trait TableKey: Copy + Eq + Default {
    fn hash(self) -> u64;
}

impl TableKey for u128 {
    #[inline]
    fn hash(self) -> u64 {
        let lo = self as u64;
        let hi = (self >> 64) as u64;
        (lo ^ hi.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl TableKey for u64 {
    #[inline]
    fn hash(self) -> u64 {
        self.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// Open addressing with linear probing over packed keys: one cache line per look-up
/// in the common case, no string comparison. Each slot holds (key, entry id, meta bits)
/// so the tokenizer needs nothing else.
///
/// A Bloom filter (one bit per key, 16 bits per entry, stays in L1) answers "not in
/// the lexicon" for most words of ordinary prose before the table is touched.
struct WordTable<K: TableKey> {
    slots: Vec<(K, u32, u32)>,
    mask: usize,
    bloom: Vec<u64>,
    bloom_mask: usize,
}

impl<K: TableKey> WordTable<K> {
    fn with_capacity(n: usize) -> WordTable<K> {
        let size = (n * 2).next_power_of_two().max(16);
        let bloom_bits = (n * 16).next_power_of_two().max(1024);
        WordTable {
            slots: vec![(K::default(), 0, 0); size],
            mask: size - 1,
            bloom: vec![0; bloom_bits / 64],
            bloom_mask: bloom_bits - 1,
        }
    }

    #[inline]
    fn slot(&self, key: K) -> usize {
        (key.hash() >> 40) as usize & self.mask
    }

    #[inline]
    fn bloom_bit(&self, key: K) -> usize {
        (key.hash() >> 7) as usize & self.bloom_mask
    }

    #[inline]
    fn get(&self, key: K) -> Option<(u32, u32)> {
        let bit = self.bloom_bit(key);
        if self.bloom[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        let mut i = self.slot(key);
        loop {
            let (k, v, meta) = self.slots[i];
            if k == key {
                return Some((v, meta));
            }
            if k == K::default() {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Set the entry for `key` (which must not be 0).
    fn insert(&mut self, key: K, id: u32, meta: u32) {
        let bit = self.bloom_bit(key);
        self.bloom[bit / 64] |= 1 << (bit % 64);
        let mut i = self.slot(key);
        while self.slots[i].0 != key && self.slots[i].0 != K::default() {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = (key, id, meta);
    }

    /// The id for `key`, inserting `value` first if absent.
    fn get_or_insert(&mut self, key: K, value: u32) -> u32 {
        match self.get(key) {
            Some((id, _)) => id,
            None => {
                self.insert(key, value, 0);
                value
            }
        }
    }
}

/// A scanning table: words of up to 8 bytes under `u64` keys (16-byte slots), longer
/// ones (up to 16 bytes) under `u128` keys.
struct SplitTable {
    short: WordTable<u64>,
    long: WordTable<u128>,
}

impl SplitTable {
    fn build(entries: &[(u128, u32, u32)]) -> SplitTable {
        let fits = |k: u128| k >> 64 == 0;
        let n_short = entries.iter().filter(|e| fits(e.0)).count();
        let mut t = SplitTable {
            short: WordTable::with_capacity(n_short),
            long: WordTable::with_capacity(entries.len() - n_short),
        };
        for &(key, id, meta) in entries {
            if fits(key) {
                t.short.insert(key as u64, id, meta);
            } else {
                t.long.insert(key, id, meta);
            }
        }
        t
    }

    #[inline]
    fn get(&self, key: u128) -> Option<(u32, u32)> {
        if key >> 64 == 0 { self.short.get(key as u64) } else { self.long.get(key) }
    }
}

/// Flags that only capitalized words need.
const NAME_FLAGS: u32 = word::FIRST_NAME | word::LAST_NAME | word::NOT_NAME | word::STOP_CAP;

/// What the tokenizer needs of an entry, packed in 32 bits: word flags (bits 0-15),
/// month (bits 16-19), "starts a phrase" (bit 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordMeta(pub u32);

impl WordMeta {
    fn of(info: &WordInfo) -> WordMeta {
        WordMeta((info.flags & 0xFFFF) | u32::from(info.month & 0xF) << 16 | u32::from(!info.phrases.is_empty()) << 20)
    }

    #[inline]
    pub fn flags(self) -> u32 {
        self.0 & 0xFFFF
    }

    #[inline]
    pub fn month(self) -> u8 {
        (self.0 >> 16 & 0xF) as u8
    }

    #[inline]
    pub fn has_phrases(self) -> bool {
        self.0 & 1 << 20 != 0
    }
}

/// Longest word looked up; longer words are never in the lists.
pub const MAX_WORD: usize = 32;

impl Lexicon {
    /// The lexicon, built on first use from the lists under `data/`.
    pub fn get() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(Lexicon::build)
    }

    /// Look up a word given in lower case; returns its entry id and meta.
    #[inline]
    pub fn lookup_id(&self, lower: &[u8]) -> Option<(u32, WordMeta)> {
        if lower.len() <= 16 {
            self.lookup_packed(pack_word(lower))
        } else {
            self.long.get(lower).map(|&id| (id, WordMeta::of(&self.infos[id as usize])))
        }
    }

    /// Look up a word of at most 16 bytes already packed with [`pack_word`].
    #[inline]
    pub fn lookup_packed(&self, key: u128) -> Option<(u32, WordMeta)> {
        self.short.get(key).map(|(id, meta)| (id, WordMeta(meta)))
    }

    /// Look up a word of the text (packed with [`pack_word`]); name-list flags are
    /// looked up only for capitalized words.
    #[inline]
    pub fn lookup_token(&self, key: u128, capital: bool) -> Option<(u32, WordMeta)> {
        let table = if capital { &self.all } else { &self.terms };
        table.get(key).map(|(id, meta)| (id, WordMeta(meta)))
    }

    /// Look up a word given in lower case.
    #[inline]
    pub fn lookup(&self, lower: &[u8]) -> Option<&WordInfo> {
        self.lookup_id(lower).map(|(id, _)| self.info(id))
    }

    /// Does `text` contain a word that starts a label phrase (`DOB`, `Member ID`)?
    pub fn has_label_word(&self, text: &str) -> bool {
        text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty() && w.len() <= MAX_WORD).any(|w| {
            self.lookup(w.to_ascii_lowercase().as_bytes()).is_some_and(|info| {
                info.phrases.iter().any(|&p| matches!(self.phrases[p as usize].kind, PhraseKind::Label(_)))
            })
        })
    }

    /// The phrases that start with entry `id`, longest first.
    #[inline]
    pub fn phrases_of(&self, id: u32) -> &[CompactPhrase] {
        match self.phrase_index.get(id as usize) {
            Some(&(start, len)) => &self.phrase_table[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    /// The entry with id `id` (from [`Lexicon::lookup_id`]).
    #[inline]
    pub fn info(&self, id: u32) -> &WordInfo {
        &self.infos[id as usize]
    }

    fn build() -> Lexicon {
        let mut lx = Lexicon {
            short: WordTable::with_capacity(20_000),
            terms: SplitTable::build(&[]),
            all: SplitTable::build(&[]),
            long: HashMap::default(),
            infos: Vec::new(),
            phrases: Vec::new(),
            phrase_table: Vec::new(),
            phrase_index: Vec::new(),
        };
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
        for w in ["diagnosed", "admitted", "discharged", "prescribed", "hospitalized", "pregnant", "history"] {
            lx.flag(w, word::PERSONAL_HEALTH);
        }
        for w in ["mr", "mrs", "ms", "miss", "mx", "sr", "sra", "srta"] {
            lx.flag(w, word::TITLE | word::NOT_NAME);
        }
        for w in PROVIDER_TITLES {
            lx.flag(w, word::PROVIDER_TITLE | word::NOT_NAME);
        }
        for (i, names) in MONTHS.iter().enumerate() {
            for m in *names {
                lx.flag(m, word::MONTH | word::NOT_NAME);
                lx.entry(m).month = i as u8 + 1;
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
        for info in lx.infos.iter_mut() {
            info.phrases.sort_by_key(|&p| std::cmp::Reverse(phrases[p as usize].rest.len()));
        }
        for info in &lx.infos {
            let start = lx.phrase_table.len() as u32;
            for &p in &info.phrases {
                let phrase = &lx.phrases[p as usize];
                let mut rest = [0u32; MAX_PHRASE_REST];
                rest[..phrase.rest.len()].copy_from_slice(&phrase.rest);
                lx.phrase_table.push(CompactPhrase { rest, len: phrase.rest.len() as u8, kind: phrase.kind });
            }
            lx.phrase_index.push((start, lx.phrase_table.len() as u32 - start));
        }
        for slot in lx.short.slots.iter_mut() {
            if slot.0 != 0 {
                slot.2 = WordMeta::of(&lx.infos[slot.1 as usize]).0;
            }
        }
        let entries: Vec<(u128, u32, u32)> = lx.short.slots.iter().copied().filter(|s| s.0 != 0).collect();
        let infos = &lx.infos;
        let is_term = |id: u32, meta: u32| meta & !NAME_FLAGS != 0 || infos[id as usize].in_phrase;
        let terms: Vec<(u128, u32, u32)> =
            entries.iter().filter(|e| is_term(e.1, e.2)).map(|&(k, id, meta)| (k, id, meta & !NAME_FLAGS)).collect();
        lx.terms = SplitTable::build(&terms);
        lx.all = SplitTable::build(&entries);
        lx
    }

    /// The entry for word `w`, created empty if needed.
    fn entry(&mut self, w: &str) -> &mut WordInfo {
        let id = self.entry_id(w);
        &mut self.infos[id as usize]
    }

    fn entry_id(&mut self, w: &str) -> u32 {
        let lower = w.to_ascii_lowercase().into_bytes();
        let next = self.infos.len() as u32;
        let id = if lower.len() <= 16 {
            self.short.get_or_insert(pack_word(&lower), next)
        } else {
            *self.long.entry(lower.into()).or_insert(next)
        };
        if id == next {
            self.infos.push(WordInfo::default());
        }
        id
    }

    fn flag(&mut self, w: &str, flag: u32) {
        self.entry(w).flags |= flag;
    }

    fn phrase(&mut self, term: &str, kind: PhraseKind) {
        let words = split_words(term);
        let Some((first, rest)) = words.split_first() else {
            return;
        };
        if words.iter().any(|w| w.len() > MAX_WORD) || rest.len() > MAX_PHRASE_REST {
            return;
        }
        let rest: Vec<u32> = rest.iter().map(|w| self.entry_id(w)).collect();
        for &id in &rest {
            self.infos[id as usize].in_phrase = true;
        }
        let id = self.phrases.len() as u32;
        self.phrases.push(Phrase { rest, kind });
        self.entry(first).phrases.push(id);
    }
}

/// Split a term into lower-case words the way the lexer splits text.
fn split_words(term: &str) -> Vec<String> {
    term.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_ascii_lowercase()).collect()
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
    "of",
    "is",
    "was",
    "on",
    "number",
    "no",
    "num",
    "nbr",
    "id",
    "ids",
    "the",
    "a",
    "for",
    "s",
    "to",
    "be",
    "are",
    "at",
    "file",
    "code",
    "identifier",
    "identification",
    "card",
    "their",
    "our",
    "my",
    "his",
    "her",
    "your",
    "new",
    "as",
    "in",
    "with",
    "please",
    "use",
    "and",
    "value",
    "text",
    "mm",
    "dd",
    "yy",
    "yyyy",
    "mmddyyyy",
    "ccyymmdd",
    "format",
];

/// Words that make the health term after them about a person ("s" is the `'s` of
/// "Jane's colonoscopy").
const POSSESSIVES: &[&str] = &["your", "his", "her", "their", "patient", "pt", "my", "s"];

const PROVIDER_TITLES: &[&str] =
    &["dr", "doctor", "md", "do", "rn", "np", "pa", "dds", "dmd", "phd", "lpn", "prof", "nurse"];

/// Capitalized words that begin sentences, headings and salutations in mail.
const STOP_CAPS: &[&str] = &[
    "the",
    "please",
    "thank",
    "thanks",
    "regards",
    "best",
    "sincerely",
    "hello",
    "hi",
    "dear",
    "team",
    "patient",
    "name",
    "date",
    "birth",
    "dob",
    "mrn",
    "ssn",
    "phone",
    "fax",
    "email",
    "address",
    "insurance",
    "member",
    "diagnosis",
    "current",
    "medications",
    "referring",
    "provider",
    "npi",
    "dea",
    "ndc",
    "refill",
    "prescriber",
    "beneficiary",
    "mbi",
    "subject",
    "re",
    "fw",
    "fwd",
    "attached",
    "this",
    "that",
    "your",
    "our",
    "we",
    "i",
    "you",
    "if",
    "for",
    "from",
    "to",
    "with",
    "and",
    "or",
    "but",
    "not",
    "no",
    "yes",
    "on",
    "in",
    "at",
    "by",
    "of",
    "as",
    "an",
    "a",
    "it",
    "is",
    "are",
    "was",
    "be",
    "has",
    "have",
    "had",
    "do",
    "does",
    "did",
    "will",
    "would",
    "can",
    "could",
    "should",
    "may",
    "might",
    "must",
    "shall",
    "let",
    "see",
    "call",
    "note",
    "notes",
    "reminder",
    "hospital",
    "clinic",
    "center",
    "medical",
    "health",
    "care",
    "family",
    "medicine",
    "street",
    "st",
    "ave",
    "road",
    "rd",
    "blvd",
    "suite",
    "apt",
    "lane",
    "drive",
    "court",
    "way",
    "city",
    "state",
    "zip",
    "usa",
    "inc",
    "llc",
    "co",
    "corp",
    "group",
    "department",
    "dept",
    "office",
    "service",
    "services",
    "unit",
    "ward",
    "room",
    "floor",
    "building",
    "north",
    "south",
    "east",
    "west",
    "new",
    "saint",
    "mount",
    "fort",
    "lake",
    "valley",
    "park",
    "river",
    "hill",
    "human",
    "resources",
    "accounts",
    "receivable",
    "payable",
    "billing",
    "payroll",
    "support",
    "desk",
    "helpdesk",
    "admin",
    "manager",
    "director",
    "coordinator",
    "associates",
    "partners",
    "orthopedics",
    "cardiology",
    "oncology",
    "pediatrics",
    "endocrinology",
    "behavioral",
    "plan",
    "ppo",
    "hmo",
    "epo",
    "pos",
    "mutual",
    "blue",
    "cross",
    "shield",
    "medicare",
    "medicaid",
    "tricare",
    "aetna",
    "cigna",
    "humana",
    "united",
    "kaiser",
    "anthem",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "today",
    "tomorrow",
    "yesterday",
    "morning",
    "afternoon",
    "evening",
    "tel",
    "cell",
    "mobile",
    "home",
    "work",
    "main",
    "result",
    "results",
    "lab",
    "labs",
    "test",
    "tests",
    "report",
    "reports",
    "summary",
    "visit",
    "appointment",
    "follow",
    "up",
    "urgent",
    "important",
    "confidential",
    "private",
    "secure",
    "message",
    "info",
    "information",
    "details",
    "request",
    "requested",
    "update",
    "updated",
    "new",
    "hire",
    "employee",
    "start",
    "end",
    "total",
    "amount",
    "balance",
    "due",
    "paid",
    "payment",
    "invoice",
    "order",
    "account",
    "ref",
    "reference",
    "id",
    "type",
    "status",
    "sex",
    "gender",
    "male",
    "female",
    "age",
    "dx",
    "rx",
    "icd",
    "cpt",
    "hcpcs",
    "claim",
    "claims",
    "policy",
    "subscriber",
    "group",
    "payer",
    "insured",
    "relationship",
    "self",
    "spouse",
    "child",
    "other",
];

/// Label phrases, by class. Words are matched in lower case, punctuation ignored.
const LABELS: &[(&[&str], u32)] = &[
    (
        &[
            "ssn",
            "ss#",
            "ss",
            "social security",
            "social security number",
            "soc sec",
            "social sec",
            "social",
            "ssa",
            "taxpayer id",
            "tin",
            "seguro social",
            "numero de seguro social",
        ],
        label::SSN,
    ),
    (
        &[
            "dob",
            "d o b",
            "date of birth",
            "birth date",
            "birthdate",
            "birthday",
            "born",
            "birth",
            "date born",
            "birth dt",
            "dt of birth",
            "fecha de nacimiento",
            "geburtsdatum",
            "nacimiento",
            "f nac",
        ],
        label::DOB,
    ),
    (
        &[
            "mrn",
            "mr number",
            "mr no",
            "medical record",
            "medical record number",
            "medical rec",
            "med rec",
            "record number",
            "record no",
            "record",
            "chart",
            "chart number",
            "chart no",
            "patient id",
            "pt id",
            "patient number",
            "patient no",
            "patient identifier",
            "hospital number",
            "hospital no",
            "ehr id",
            "emr id",
            "emr",
            "unit number",
            "person number",
            "expediente",
            "numero de expediente",
            "expediente medico",
            "historia clinica",
        ],
        label::MRN,
    ),
    (
        &[
            "member id",
            "member",
            "member number",
            "member no",
            "members",
            "subscriber id",
            "subscriber number",
            "subscriber",
            "policy",
            "policy number",
            "policy no",
            "policy id",
            "medicaid",
            "medicaid id",
            "medicaid number",
            "insurance id",
            "insurance number",
            "insured id",
            "plan id",
            "health plan id",
            "health plan number",
            "beneficiary id",
            "beneficiary number",
            "enrollee id",
            "recipient id",
            "cin",
            "insurance member",
            "coverage id",
            "benefit id",
            "chip id",
            "insured s id",
            "insured s i d",
            "insured id number",
            "insured s id number",
            "id card number",
            "numero de miembro",
            "id de miembro",
            "identificacion de miembro",
            "numero de poliza",
            "poliza",
            "aetna id",
            "cigna id",
            "humana id",
            "anthem id",
            "bcbs id",
            "blue cross id",
            "uhc id",
            "unitedhealthcare id",
            "united healthcare id",
            "kaiser id",
            "tricare id",
            "molina id",
            "wellcare id",
            "medi cal id",
            "health net id",
            "ambetter id",
        ],
        label::PLAN,
    ),
    (&["medicare", "mbi", "medicare number", "medicare id", "hicn", "medicare beneficiary"], label::MEDICARE),
    (
        &[
            "phone",
            "phone number",
            "tel",
            "telephone",
            "cell",
            "cell phone",
            "mobile",
            "mobile phone",
            "call",
            "contact",
            "contact number",
            "ph",
            "home phone",
            "work phone",
            "text",
            "reach",
            "callback",
            "call back",
            "pager",
            "tel no",
            "telefono",
            "celular",
        ],
        label::PHONE,
    ),
    (&["fax", "facsimile", "fax number", "fax no"], label::FAX | label::OFFICE),
    (
        &[
            "office",
            "main line",
            "front desk",
            "clinic",
            "switchboard",
            "toll free",
            "toll-free",
            "helpline",
            "hotline",
            "scheduling",
            "appointments line",
        ],
        label::OFFICE,
    ),
    (&["npi", "national provider identifier", "national provider", "provider number", "provider id"], label::NPI),
    (&["dea", "dea number", "dea no", "dea registration"], label::DEA),
    (&["ndc", "national drug code", "n4", "drug code"], label::NDC | label::RX),
    (
        &[
            "diagnosis",
            "diagnoses",
            "dx",
            "icd",
            "icd 10",
            "icd10",
            "icd 10 cm",
            "diag",
            "diagnosis code",
            "primary diagnosis",
            "secondary diagnosis",
            "admitting diagnosis",
            "problem",
            "assessment",
            "impression",
            "condition",
            "reason for visit",
            "indication",
            "diagnostico",
            "dx code",
            "icd code",
        ],
        label::DX,
    ),
    (&["claim", "abk", "abf", "bk", "bf", "hi", "principal", "admitting", "other diagnosis"], label::CLAIM),
    (
        &[
            "patient",
            "patient name",
            "pt",
            "pt name",
            "name",
            "full name",
            "patient full name",
            "beneficiary",
            "beneficiary name",
            "member name",
            "employee",
            "employee name",
            "insured",
            "insured name",
            "subscriber name",
            "client",
            "client name",
            "resident",
            "enrollee",
            "new employee",
            "our employee",
            "new hire",
            "candidate",
            "applicant",
            "cardholder",
            "card holder",
            "guarantor",
            "patient s name",
            "first name",
            "last name",
            "surname",
            "given name",
            "paciente",
            "nombre",
            "nombre del paciente",
            "empleado",
        ],
        label::NAME,
    ),
    (&["dear", "hello", "hi", "hey", "good morning", "good afternoon", "greetings"], label::GREETING),
    (
        &[
            "provider",
            "prescriber",
            "physician",
            "referring provider",
            "rendering provider",
            "attending",
            "ordering provider",
            "pcp",
            "dr",
            "doctor",
            "signed",
            "nurse",
            "author",
            "sent by",
            "from",
        ],
        label::PROVIDER,
    ),
    (
        &[
            "invoice",
            "inv",
            "order",
            "order number",
            "po",
            "purchase order",
            "ticket",
            "tracking",
            "account",
            "acct",
            "account number",
            "reference",
            "ref",
            "meeting",
            "meeting id",
            "conference",
            "part",
            "part number",
            "model",
            "serial",
            "serial number",
            "sku",
            "item",
            "lot",
            "version",
            "build",
            "confirmation",
            "case",
            "case number",
            "room",
            "extension",
            "ext",
            "transaction",
            "routing",
            "batch",
            "ip",
            "server",
            "port",
            "zip",
            "zip code",
            "postal",
            "fedex",
            "ups",
            "usps",
            "check number",
            "isbn",
            "lookup",
            "tool",
            "test",
            "sample",
            "example",
            "dock",
            "route",
            "suite",
            "apt",
            "unit",
            "pin",
            "passcode",
            "access code",
            "code word",
            "quote",
            "contract",
            "vendor",
            "supplier",
            "customer",
            "shipment",
            "pallet",
            "container",
            "badge",
            "employee id",
            "employee number",
            "staff id",
            "license",
            "license number",
            "registration",
            "voucher",
            "coupon",
            "promo",
            "gift card",
            "barcode",
            "upc",
            "ean",
            "asset",
            "asset tag",
            "ticket number",
        ],
        label::NEGATIVE,
    ),
    (
        &[
            "start",
            "start date",
            "visit",
            "visit date",
            "appointment",
            "appt",
            "service",
            "date of service",
            "dos",
            "admission",
            "admit",
            "admitted",
            "discharge",
            "discharged",
            "due",
            "due date",
            "expiration",
            "exp",
            "expires",
            "expiry",
            "issued",
            "issue date",
            "effective",
            "effective date",
            "scheduled",
            "hire date",
            "hired",
            "seen",
            "collected",
            "reported",
            "received",
            "sent",
            "signed on",
            "today",
            "updated",
            "last updated",
            "created",
            "modified",
            "deadline",
            "until",
            "through",
            "from date",
            "to date",
            "end date",
            "termination",
            "surgery date",
            "procedure date",
            "next",
            "last visit",
            "follow up",
            "dated",
            "posted",
            "shipped",
            "delivered",
            "paid",
            "invoice date",
            "order date",
            "statement date",
            "period",
            "week of",
            "meeting",
            "moved",
            "moves",
        ],
        label::OTHER_DATE,
    ),
    (
        &[
            "card",
            "card number",
            "visa",
            "mastercard",
            "amex",
            "american express",
            "discover",
            "credit",
            "credit card",
            "debit",
            "debit card",
            "cc",
            "payment card",
            "card on file",
        ],
        label::CARD,
    ),
    (
        &[
            "rx",
            "drug",
            "medication",
            "medications",
            "dispense",
            "dispensed",
            "refill",
            "refills",
            "pharmacy",
            "package",
            "prescription",
            "mg",
            "mcg",
            "tablet",
            "tablets",
            "tab",
            "tabs",
            "capsule",
            "capsules",
            "dose",
            "vial",
            "inhaler",
            "ml",
            "units",
            "supply",
            "sig",
            "qty",
            "quantity",
            "generic",
            "brand",
            "formulary",
            "product",
            "lin",
            "medicamento",
            "medicamentos",
            "receta",
        ],
        label::RX,
    ),
    (&["email", "e mail", "mail", "email address", "correo", "correo electronico"], label::EMAIL),
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
