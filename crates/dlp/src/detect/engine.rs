//! The scanning pass over one text: labels and health terms, then candidates.

use super::checks;
use super::icd10;
use super::lexer::{Shape, Token, tokenize};
use super::lexicon::{Lexicon, PhraseKind, label, word};
use crate::report::{EntityType, HealthKind};

/// One identifier found in a text, as a byte range of that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub entity: EntityType,
    pub start: usize,
    pub end: usize,
    pub detector: &'static str,
    /// Business contact or provider identifier (see [`crate::Finding::business`]).
    pub business: bool,
    /// For names: how the person appears.
    pub role: Option<PersonRole>,
}

/// How a person's name appears in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonRole {
    /// After a label naming the person the message is about (`Patient:`, `Name:`).
    Labeled,
    /// Addressed in a greeting (`Dear ...`, `Hello ...`).
    Greeted,
    /// A known first name followed by a surname, without a label.
    Mentioned,
}

/// A health term found in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthHit {
    pub kind: HealthKind,
    pub start: usize,
    pub end: usize,
    /// Preceded by `your`, `his`, `patient`...: about a person.
    pub personal: bool,
}

/// What [`scan_text`] found.
#[derive(Debug, Default, Clone)]
pub struct TextScan {
    pub detections: Vec<Detection>,
    pub health: Vec<HealthHit>,
}

/// Buffers reused from one text to the next.
#[derive(Default)]
pub struct Scratch {
    tokens: Vec<Token>,
    emails: Vec<(usize, usize)>,
}

/// Find identifiers and health terms in `text`.
pub fn scan_text(text: &str, scratch: &mut Scratch) -> TextScan {
    let mut out = TextScan::default();
    scan_text_into(text, scratch, &mut out);
    out
}

/// Like [`scan_text`], appending to `out` (so one buffer serves many texts).
pub fn scan_text_into(text: &str, scratch: &mut Scratch, out: &mut TextScan) {
    tokenize(text, &mut scratch.tokens);
    scratch.emails.clear();
    let first_health = out.health.len();
    let mut s = Scanner {
        b: text.as_bytes(),
        t: &mut scratch.tokens,
        emails: &mut scratch.emails,
        signature_start: signature_start(text),
        out,
        first_health,
    };
    s.find_emails();
    s.apply_phrases();
    s.find_candidates();
}

/// Where a signature block starts: the line `--` (or `-- `) of RFC 3676.
fn signature_start(text: &str) -> usize {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'-', &b[from..]) {
        let at = from + off;
        from = at + 1;
        if b.get(at + 1) != Some(&b'-') || !(at == 0 || b[at - 1] == b'\n') {
            continue;
        }
        let rest = &b[at + 2..];
        if rest.is_empty() || matches!(rest, [b'\n', ..] | [b'\r', ..] | [b' ', b'\n', ..] | [b' ', b'\r', ..] | [b' '])
        {
            return at;
        }
    }
    usize::MAX
}

enum Outcome {
    /// The cluster was recognized: reported, or a look-alike deliberately not reported.
    Found,
    NoMatch,
}

struct Scanner<'a> {
    b: &'a [u8],
    t: &'a mut Vec<Token>,
    /// E-mail address spans, sorted.
    emails: &'a mut Vec<(usize, usize)>,
    signature_start: usize,
    out: &'a mut TextScan,
    /// Where this text's health terms start in `out`.
    first_health: usize,
}

const MAX_CLUSTER_TOKENS: usize = 8;
const MAX_CLUSTER_BYTES: usize = 48;

impl<'a> Scanner<'a> {
    // ------------------------------------------------------------ helpers

    /// Bytes between token `j - 1` and token `j`.
    fn gap(&self, j: usize) -> &'a [u8] {
        let b: &'a [u8] = self.b;
        let end = self.t[j].start as usize;
        let start = if j == 0 { 0 } else { self.t[j - 1].end as usize };
        b.get(start..end).unwrap_or(&[])
    }

    fn tok(&self, j: usize) -> &'a [u8] {
        let b: &'a [u8] = self.b;
        &b[self.t[j].range()]
    }

    fn byte_before(&self, pos: usize) -> u8 {
        if pos == 0 { b'\n' } else { self.b[pos - 1] }
    }

    fn in_signature(&self, pos: usize) -> bool {
        pos >= self.signature_start
    }

    fn push(&mut self, entity: EntityType, start: usize, end: usize, detector: &'static str, business: bool) {
        self.out.detections.push(Detection { entity, start, end, detector, business, role: None });
    }

    /// Label classes of the words just before token `i`: the nearest run of label
    /// words and fillers on the same line (`Date of Birth:`, `Member ID #`), or, when
    /// the value starts its line, a previous line made only of such words.
    fn label_before(&self, i: usize) -> u32 {
        let mut flags = 0u32;
        let mut j = i;
        let mut seen_on_line = 0usize;
        let mut looked_up = false;
        let mut budget = 10usize;
        while j > 0 && budget > 0 {
            let gap = self.gap(j);
            if has_newline(gap) {
                if seen_on_line > 0 || looked_up || flags != 0 {
                    break;
                }
                // the value starts its line: a label may sit alone on the line before
                looked_up = true;
                if !self.line_is_label_only(j - 1) {
                    break;
                }
            } else if is_sentence_break(gap) && j < i && self.t[j - 1].len() >= 4 && self.t[j - 1].label == 0 {
                // the end of a sentence (not an abbreviation such as "No." or "I.D.")
                break;
            }
            j -= 1;
            budget -= 1;
            let tk = &self.t[j];
            if tk.label != 0 {
                flags |= tk.label;
            } else if tk.word & word::FILLER == 0 && !self.is_list_marker(j) {
                // any other word ends the label (fillers and list markers are passed over)
                break;
            }
            seen_on_line += 1;
        }
        flags
    }

    /// A list marker such as `A.`, `b)` or `3.` (claim forms number their fields).
    fn is_list_marker(&self, j: usize) -> bool {
        let tk = &self.t[j];
        tk.len() <= 2
            && matches!(self.b.get(tk.end as usize), Some(b'.' | b')'))
            && self.b.get(tk.end as usize + 1).is_some_and(|c| *c == b' ')
    }

    /// Is the line that ends with token `j` made only of label words and fillers?
    fn line_is_label_only(&self, j: usize) -> bool {
        let mut k = j + 1;
        let mut n = 0;
        while k > 0 {
            let tk = &self.t[k - 1];
            if tk.label == 0 && tk.word & word::FILLER == 0 {
                return false;
            }
            n += 1;
            if n > 6 {
                return false;
            }
            if has_newline(self.gap(k - 1)) {
                break;
            }
            k -= 1;
        }
        n > 0
    }

    /// Does any token on the same line as token `i` carry one of the labels in `mask`?
    fn line_has_label(&self, i: usize, mask: u32) -> bool {
        let mut j = i;
        for _ in 0..24 {
            if self.t[j].label & mask != 0 {
                return true;
            }
            if j == 0 || has_newline(self.gap(j)) {
                break;
            }
            j -= 1;
        }
        let mut j = i;
        for _ in 0..24 {
            j += 1;
            if j >= self.t.len() || has_newline(self.gap(j)) {
                break;
            }
            if self.t[j].label & mask != 0 {
                return true;
            }
        }
        false
    }

    /// Is a health term of `kind` within `before` bytes before or `after` bytes after
    /// the range, on the same line?
    fn health_near(&self, start: usize, end: usize, kind: HealthKind, before: usize, after: usize) -> bool {
        // hits are in text order: look only at those that can be in the window
        let hits = &self.out.health[self.first_health..];
        let from = hits.partition_point(|h| h.end + before < start);
        hits[from..].iter().take_while(|h| h.start <= end + after).any(|h| {
            h.kind == kind && h.end + before >= start && !has_newline(&self.b[h.end.min(start)..h.start.max(end)])
        })
    }

    // ------------------------------------------------------------ e-mail

    fn find_emails(&mut self) {
        let b = self.b;
        let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-'".contains(&c);
        let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
        let mut last_end = 0;
        for at in memchr::memchr_iter(b'@', b) {
            if at < last_end {
                continue;
            }
            let mut s = at;
            while s > last_end && at - s < 64 && local(b[s - 1]) {
                s -= 1;
            }
            while s < at && !b[s].is_ascii_alphanumeric() {
                s += 1;
            }
            let mut e = at + 1;
            while e < b.len() && e - at < 255 && domain(b[e]) {
                e += 1;
            }
            while e > at + 1 && !b[e - 1].is_ascii_alphanumeric() {
                e -= 1;
            }
            if s == at || e <= at + 1 {
                continue;
            }
            let dom = &b[at + 1..e];
            let Some(dot) = dom.iter().rposition(|&c| c == b'.') else {
                continue;
            };
            let tld = &dom[dot + 1..];
            if tld.len() < 2
                || !tld.iter().all(u8::is_ascii_alphabetic)
                || dom[0] == b'.'
                || dom.windows(2).any(|w| w == b"..")
            {
                continue;
            }
            self.emails.push((s, e));
            let business = self.in_signature(s);
            self.push(EntityType::EmailAddress, s, e, "email", business);
            last_end = e;
        }
    }

    // ------------------------------------------------------------ phrases

    /// Mark label words and record health terms, longest phrase first.
    fn apply_phrases(&mut self) {
        let lx = Lexicon::get();
        let n = self.t.len();
        let mut health_until = 0usize;
        for i in 0..n {
            if !self.t[i].has_phrases {
                continue;
            }
            let phrases = lx.phrases_of(self.t[i].entry - 1);
            let mut best_label: Option<(usize, u32)> = None;
            let mut best_health: Option<(usize, HealthKind)> = None;
            for p in phrases {
                let rest = p.rest();
                let last = i + rest.len();
                if last >= n {
                    continue;
                }
                let matches = rest.iter().enumerate().all(|(k, &w)| {
                    let j = i + 1 + k;
                    self.t[j].entry == w + 1 && !has_newline(self.gap(j))
                });
                if !matches {
                    continue;
                }
                match p.kind {
                    PhraseKind::Label(c) if best_label.is_none() => best_label = Some((last, c)),
                    PhraseKind::Health(k) if best_health.is_none() => best_health = Some((last, k)),
                    _ => {}
                }
                if best_label.is_some() && best_health.is_some() {
                    break;
                }
            }
            if let Some((last, class)) = best_label {
                for tk in &mut self.t[i..=last] {
                    tk.label |= class;
                }
            }
            if let Some((last, kind)) = best_health
                && i >= health_until
            {
                let personal = self.t[i].word & word::PERSONAL_HEALTH != 0 || self.personal_before(i);
                let hit = HealthHit { kind, start: self.t[i].start as usize, end: self.t[last].end as usize, personal };
                self.out.health.push(hit);
                health_until = last + 1;
            }
        }
    }

    /// Is one of the three words before token `i` (same line) a possessive, or a
    /// diagnosis or medication label (a record field is about its patient)?
    fn personal_before(&self, i: usize) -> bool {
        let mut j = i;
        for _ in 0..3 {
            if j == 0 || self.gap(j).iter().any(|c| b"\n.;!?".contains(c)) {
                return false;
            }
            j -= 1;
            if self.t[j].word & word::POSSESSIVE != 0 || self.t[j].label & (label::DX | label::RX) != 0 {
                return true;
            }
        }
        false
    }

    // ------------------------------------------------------------ candidates

    fn find_candidates(&mut self) {
        let n = self.t.len();
        let mut i = 0;
        let mut email_idx = 0;
        while i < n {
            let tk = self.t[i];
            // fast path: a lower-case word that names no month starts no candidate
            if tk.shape == Shape::Alpha && !tk.capital && tk.month == 0 {
                i += 1;
                continue;
            }
            let start = tk.start as usize;
            while email_idx < self.emails.len() && self.emails[email_idx].1 <= start {
                email_idx += 1;
            }
            if email_idx < self.emails.len() && self.emails[email_idx].0 <= start {
                i += 1;
                continue;
            }
            if let Some(next) = self.month_date(i) {
                i = next;
                continue;
            }
            if tk.shape != Shape::Alpha || self.starts_code_cluster(i) {
                i = self.cluster(i);
                continue;
            }
            if tk.capital
                && (tk.word & word::FIRST_NAME != 0 || self.may_follow_name_label(i))
                && let Some(next) = self.person_name(i)
            {
                i = next;
                continue;
            }
            i += 1;
        }
    }

    /// A short capitalized word joined to a number by `-` or `.` (`INV-2546`, `E11.9`
    /// starts with a digit-bearing token anyway) is read together with it.
    fn starts_code_cluster(&self, i: usize) -> bool {
        let tk = &self.t[i];
        tk.len() <= 4
            && self.tok(i).iter().all(u8::is_ascii_uppercase)
            && i + 1 < self.t.len()
            && matches!(self.gap(i + 1), b"-" | b".")
            && self.t[i + 1].shape != Shape::Alpha
    }

    /// Cheap test before [`Self::label_before`]: is the word before token `i` a name
    /// label, a greeting or a filler?
    fn may_follow_name_label(&self, i: usize) -> bool {
        i > 0 && {
            let p = &self.t[i - 1];
            p.label & (label::NAME | label::GREETING) != 0 || p.word & word::FILLER != 0
        }
    }

    // ------------------------------------------------------------ numbers

    /// Read the cluster of tokens starting at `i`, classify it; return the next index.
    fn cluster(&mut self, i: usize) -> usize {
        if let Some(next) = self.spaced_mbi(i) {
            return next;
        }
        let last = self.cluster_end(i);
        if let Outcome::NoMatch = self.classify(i, last) {
            // "DOB 07/28/1984 12345678": retry the pieces between spaces
            let mut a = i;
            for j in i + 1..=last {
                if self.gap(j) == b" " {
                    if a != i || j - 1 != last {
                        let _ = self.classify(a, j - 1);
                    }
                    a = j;
                }
            }
            if a != i {
                let _ = self.classify(a, last);
            }
        }
        last + 1
    }

    /// An MBI written in groups separated by spaces (`1EG4 TE5 MK73`), which clusters
    /// do not join (spaces join numbers only).
    fn spaced_mbi(&mut self, i: usize) -> Option<usize> {
        if i + 2 >= self.t.len() || self.t[i].len() != 4 || self.t[i + 1].len() != 3 || self.t[i + 2].len() != 4 {
            return None;
        }
        if self.gap(i + 1) != b" " || self.gap(i + 2) != b" " || self.t[i].shape == Shape::Alpha {
            return None;
        }
        let mut id = [0u8; 11];
        id[..4].copy_from_slice(self.tok(i));
        id[4..7].copy_from_slice(self.tok(i + 1));
        id[7..].copy_from_slice(self.tok(i + 2));
        if !checks::mbi(&id) {
            return None;
        }
        let (start, end) = (self.t[i].start as usize, self.t[i + 2].end as usize);
        self.push(EntityType::MedicareMbi, start, end, "mbi", false);
        Some(i + 3)
    }

    fn cluster_end(&self, i: usize) -> usize {
        let mut j = i;
        let start = self.t[i].start as usize;
        while j + 1 < self.t.len() && j + 1 - i < MAX_CLUSTER_TOKENS {
            let (l, r) = (&self.t[j], &self.t[j + 1]);
            if r.end as usize - start > MAX_CLUSTER_BYTES {
                break;
            }
            let joined = match self.gap(j + 1) {
                b"-" | b"." | b"/" => true,
                b" " => l.shape == Shape::Digits && r.shape == Shape::Digits,
                b")" | b") " | b")-" | b") -" => {
                    l.shape == Shape::Digits && l.len() == 3 && self.byte_before(l.start as usize) == b'('
                }
                _ => false,
            };
            if !joined {
                break;
            }
            j += 1;
        }
        j
    }

    fn classify(&mut self, f: usize, l: usize) -> Outcome {
        // a lone number of up to four digits (a quantity, a time, a year) is nothing
        if f == l && self.t[f].shape == Shape::Digits && self.t[f].len() <= 4 {
            return Outcome::NoMatch;
        }
        let start = self.t[f].start as usize;
        let end = self.t[l].end as usize;
        // the cluster's pieces on the stack: at most MAX_CLUSTER_TOKENS tokens and
        // MAX_CLUSTER_BYTES bytes (see cluster_end)
        let count = (l - f + 1).min(MAX_CLUSTER_TOKENS);
        let mut group_buf: [&[u8]; MAX_CLUSTER_TOKENS] = [&[]; MAX_CLUSTER_TOKENS];
        let mut sep_buf: [&[u8]; MAX_CLUSTER_TOKENS] = [&[]; MAX_CLUSTER_TOKENS];
        let mut len_buf = [0usize; MAX_CLUSTER_TOKENS];
        let mut joined_buf = [0u8; MAX_CLUSTER_BYTES];
        let mut joined_len = 0;
        let mut all_digits = true;
        for k in 0..count {
            let g = self.tok(f + k);
            group_buf[k] = g;
            len_buf[k] = g.len();
            if k > 0 {
                sep_buf[k - 1] = self.gap(f + k);
            }
            let n = g.len().min(MAX_CLUSTER_BYTES - joined_len);
            joined_buf[joined_len..joined_len + n].copy_from_slice(&g[..n]);
            joined_len += n;
            all_digits &= self.t[f + k].shape == Shape::Digits;
        }
        let groups = &group_buf[..count];
        let seps = &sep_buf[..count - 1];
        let lens = &len_buf[..count];
        let joined = &joined_buf[..joined_len];
        let ctx = self.label_before(f);
        let same_sep = |set: &[&[u8]]| seps.windows(2).all(|w| w[0] == w[1]) && seps.iter().all(|s| set.contains(s));

        // Medicare Beneficiary Identifier: 11 characters, or 4-3-4 with dashes
        if joined.len() == 11 && (groups.len() == 1 || (lens == [4, 3, 4] && same_sep(&[b"-"]))) && checks::mbi(joined)
        {
            return self.found(EntityType::MedicareMbi, start, end, "mbi", false);
        }
        // DEA registration number
        if groups.len() == 1 && joined.len() == 9 && checks::dea(joined) {
            return self.found(EntityType::DeaNumber, start, end, "dea.checksum", true);
        }
        if let Some(o) = self.icd10(f, groups, seps, ctx, start, end) {
            return o;
        }
        if let Some(o) = self.numeric_date(groups, seps, lens, ctx, start, end) {
            return o;
        }
        // a value right after an MRN or member-ID label is that, whatever its shape
        // (unless the label also names another kind: "Member phone", "Patient ID fax")
        let other_kind = label::SSN | label::PHONE | label::FAX | label::DOB | label::NPI | label::DEA | label::NDC;
        if ctx & (label::MRN | label::PLAN) != 0 && ctx & other_kind == 0 && id_like(groups, seps) {
            let (entity, det) = if ctx & label::MRN != 0 {
                (EntityType::Mrn, "mrn.label")
            } else {
                (EntityType::HealthPlanId, "plan_id.label")
            };
            return self.found(entity, start, end, det, false);
        }
        if !all_digits {
            return Outcome::NoMatch;
        }
        let negative = ctx & label::NEGATIVE != 0;
        // SSN: 3-2-4 with dashes (or spaces after an SSN label), or 9 digits after a label
        if lens == [3, 2, 4] && (same_sep(&[b"-"]) || (same_sep(&[b" ", b"."]) && ctx & label::SSN != 0)) {
            if checks::ssn_digits(joined) && (!negative || ctx & label::SSN != 0) {
                return self.found(EntityType::UsSsn, start, end, "ssn.formatted", false);
            }
            return Outcome::Found;
        }
        if lens == [9] && ctx & label::SSN != 0 {
            if checks::ssn_digits(joined) {
                return self.found(EntityType::UsSsn, start, end, "ssn.label", false);
            }
            return Outcome::Found;
        }
        // NDC: 4-4-2, 5-3-2, 5-4-2 near drug words; 10 or 11 digits after an NDC label
        if matches!(lens, [4, 4, 2] | [5, 3, 2] | [5, 4, 2]) && same_sep(&[b"-"]) {
            if ctx & (label::NDC | label::RX) != 0
                || self.line_has_label(f, label::NDC | label::RX)
                || self.health_near(start, end, HealthKind::Medication, 120, 120)
            {
                return self.found(EntityType::NdcCode, start, end, "ndc.formatted", false);
            }
            return Outcome::Found;
        }
        if matches!(lens, [4, 4, 2] | [5, 3, 2] | [5, 4, 2]) && same_sep(&[b" "]) && ctx & label::NDC != 0 {
            return self.found(EntityType::NdcCode, start, end, "ndc.label", false);
        }
        if groups.len() == 1 && (joined.len() == 11 || joined.len() == 10) && ctx & label::NDC != 0 {
            return self.found(EntityType::NdcCode, start, end, "ndc.label", false);
        }
        // payment cards: 13-19 digits, grouped by spaces or dashes, issuer range + Luhn
        if (13..=19).contains(&joined.len())
            && (groups.len() == 1
                || (lens[0] == 4 && same_sep(&[b" ", b"-"]) && lens.iter().all(|&n| (1..=6).contains(&n))))
        {
            if checks::card(joined) && (!negative || ctx & label::CARD != 0) {
                return self.found(EntityType::CreditCard, start, end, "card.luhn", false);
            }
            return Outcome::Found;
        }
        if let Some(o) = self.phone(groups, seps, lens, ctx, start, end) {
            return o;
        }
        // NPI: 10 digits, Luhn with the 80840 prefix
        if groups.len() == 1 && joined.len() == 10 && checks::npi(joined) && (!negative || ctx & label::NPI != 0) {
            return self.found(EntityType::Npi, start, end, "npi.checksum", true);
        }
        Outcome::NoMatch
    }

    fn found(
        &mut self,
        entity: EntityType,
        start: usize,
        end: usize,
        detector: &'static str,
        business: bool,
    ) -> Outcome {
        self.push(entity, start, end, detector, business);
        Outcome::Found
    }

    fn icd10(
        &mut self,
        f: usize,
        groups: &[&[u8]],
        seps: &[&[u8]],
        ctx: u32,
        start: usize,
        end: usize,
    ) -> Option<Outcome> {
        let head = groups[0];
        if !icd10::has_code_shape(head) || (groups.len() > 1 && head.len() != 3) {
            return None;
        }
        // dotted: E11.9, S72.001A, T38.3X5A
        if groups.len() == 2 && seps[0] == b"." && (1..=4).contains(&groups[1].len()) {
            let mut code = [0u8; 7];
            code[..3].copy_from_slice(head);
            code[3..3 + groups[1].len()].copy_from_slice(groups[1]);
            let code = &code[..3 + groups[1].len()];
            if groups[1].iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) && icd10::is_code(code) {
                return Some(self.found(EntityType::Icd10Code, start, end, "icd10.dotted", false));
            }
            return None;
        }
        if groups.len() != 1 {
            return None;
        }
        if !icd10::is_code(head) {
            return None;
        }
        // a bare code (I10, E119): only where a diagnosis is expected
        let dx = ctx & (label::DX | label::CLAIM) != 0;
        if dx || self.health_near(start, end, HealthKind::Condition, 80, 8) || self.line_has_label(f, label::DX) {
            return Some(self.found(EntityType::Icd10Code, start, end, "icd10.context", false));
        }
        None
    }

    /// A date written with numbers: a birth date after a DOB label, otherwise consumed
    /// so that its pieces are not read as other numbers.
    fn numeric_date(
        &mut self,
        groups: &[&[u8]],
        seps: &[&[u8]],
        lens: &[usize],
        ctx: u32,
        start: usize,
        end: usize,
    ) -> Option<Outcome> {
        let dob = ctx & label::DOB != 0 && ctx & label::OTHER_DATE == 0;
        let digits = |g: &[u8]| g.iter().all(u8::is_ascii_digit);
        let n = checks::number;
        let valid = match lens {
            [a, b, c] if seps[0] == seps[1] && (matches!(seps[0], b"/" | b"-" | b".") || (seps[0] == b" " && dob)) => {
                let (g0, g1, g2) = (groups[0], groups[1], groups[2]);
                if (1..=2).contains(a) && digits(g0) && digits(g2) && (*c == 4 || (*c == 2 && dob)) {
                    let year = if *c == 4 { n(g2) } else { expand_year(n(g2)) };
                    if *b <= 2 && digits(g1) {
                        let (x, y) = (n(g0), n(g1));
                        Some(checks::date(year, x, y) || checks::date(year, y, x))
                            .filter(|_| checks::birth_year(year) || !dob)
                    } else {
                        self.month_of(g1).map(|m| checks::date(year, m, n(g0)))
                    }
                } else if *a == 4
                    && digits(g0)
                    && (1..=2).contains(b)
                    && (1..=2).contains(c)
                    && digits(g1)
                    && digits(g2)
                {
                    Some(checks::date(n(g0), n(g1), n(g2)))
                } else {
                    None
                }
            }
            [8] if dob && digits(groups[0]) => {
                let g = groups[0];
                Some(
                    (checks::birth_year(n(&g[..4])) && checks::date(n(&g[..4]), n(&g[4..6]), n(&g[6..])))
                        || (checks::birth_year(n(&g[4..])) && checks::date(n(&g[4..]), n(&g[..2]), n(&g[2..4]))),
                )
            }
            _ => None,
        };
        match valid {
            Some(true) if dob => Some(self.found(EntityType::DateOfBirth, start, end, "dob.label", false)),
            Some(true) => Some(Outcome::Found),
            _ => None,
        }
    }

    fn month_of(&self, g: &[u8]) -> Option<u32> {
        let mut buf = [0u8; super::lexicon::MAX_WORD];
        if g.len() > buf.len() {
            return None;
        }
        let m = Lexicon::get().lookup(lower(g, &mut buf))?.month;
        (m != 0).then_some(u32::from(m))
    }

    fn phone(
        &mut self,
        groups: &[&[u8]],
        seps: &[&[u8]],
        lens: &[usize],
        ctx: u32,
        start: usize,
        end: usize,
    ) -> Option<Outcome> {
        let sep_ok = |s: &[u8]| matches!(s, b"-" | b"." | b" ");
        let first_sep_ok = |s: &[u8]| sep_ok(s) || matches!(s, b")" | b") " | b")-" | b") -");
        let (npa, nxx, line, mut span_start, detector) = match lens {
            [3, 3, 4] if first_sep_ok(seps[0]) && sep_ok(seps[1]) => {
                (groups[0], groups[1], groups[2], start, "phone.formatted")
            }
            [1, 3, 3, 4] if groups[0] == b"1" && sep_ok(seps[0]) && first_sep_ok(seps[1]) && sep_ok(seps[2]) => {
                (groups[1], groups[2], groups[3], start, "phone.formatted")
            }
            [10] if ctx & (label::PHONE | label::FAX) != 0 => {
                let g = groups[0];
                (&g[..3], &g[3..6], &g[6..], start, "phone.label")
            }
            [11] if groups[0][0] == b'1'
                && (ctx & (label::PHONE | label::FAX) != 0 || self.byte_before(start) == b'+') =>
            {
                let g = groups[0];
                (&g[1..4], &g[4..7], &g[7..], start, "phone.label")
            }
            _ => return None,
        };
        if !checks::nanp(npa, nxx, line) || (ctx & label::NEGATIVE != 0 && ctx & (label::PHONE | label::FAX) == 0) {
            return Some(Outcome::Found);
        }
        // include "(" and a "+1" / "1-" country prefix written before the number
        if lens[0] == 3 && self.byte_before(span_start) == b'(' {
            span_start -= 1;
        }
        span_start = self.country_prefix(span_start);
        let business = self.in_signature(start) || ctx & (label::FAX | label::OFFICE | label::PROVIDER) != 0;
        Some(self.found(EntityType::Phone, span_start, end, detector, business))
    }

    /// Extend a phone number's start over a `+1 `, `1-` or `+` written before it.
    fn country_prefix(&self, start: usize) -> usize {
        let b = self.b;
        let mut p = start;
        if p >= 1 && b[p - 1] == b'+' {
            return p - 1;
        }
        if p >= 1 && matches!(b[p - 1], b' ' | b'-' | b'.') {
            p -= 1;
        }
        if p >= 1 && b[p - 1] == b'1' && (p < 2 || !b[p - 2].is_ascii_alphanumeric() || b[p - 2] == b'+') {
            p -= 1;
            if p >= 1 && b[p - 1] == b'+' {
                p -= 1;
            }
            return p;
        }
        start
    }

    // ------------------------------------------------------------ dates with month names

    /// `December 19, 1974`, `Dec 19 1974`, `19 December 1974`: returns the index after
    /// the date when one starts at token `i`.
    fn month_date(&mut self, i: usize) -> Option<usize> {
        let n = self.t.len();
        if i + 2 >= n || (self.t[i].month == 0 && self.t[i + 1].month == 0) {
            return None;
        }
        let (t0, t1, t2) = (self.t[i], self.t[i + 1], self.t[i + 2]);
        let day_tok = |t: &Token, s: &[u8]| {
            (t.shape == Shape::Digits && t.len() <= 2)
                || (t.shape == Shape::Mixed
                    && t.len() <= 4
                    && s.len() >= 3
                    && s[..s.len() - 2].iter().all(u8::is_ascii_digit)
                    && matches!(&s[s.len() - 2..], b"st" | b"nd" | b"rd" | b"th"))
        };
        let year_tok = |t: &Token| t.shape == Shape::Digits && t.len() == 4;
        let (g1, g2) = (self.gap(i + 1), self.gap(i + 2));
        let (month, day) = if t0.month != 0 && day_tok(&t1, self.tok(i + 1)) && year_tok(&t2) {
            if !matches!(g1, b" " | b". " | b".") || !matches!(g2, b", " | b" " | b"," | b" , ") {
                return None;
            }
            (u32::from(t0.month), self.tok(i + 1))
        } else if t1.month != 0 && day_tok(&t0, self.tok(i)) && year_tok(&t2) {
            if !matches!(g1, b" ") || !matches!(g2, b" " | b", " | b",") {
                return None;
            }
            (u32::from(t1.month), self.tok(i))
        } else {
            return None;
        };
        let day: Vec<u8> = day.iter().copied().take_while(u8::is_ascii_digit).collect();
        let year = checks::number(self.tok(i + 2));
        if !checks::date(year, month, checks::number(&day)) {
            return None;
        }
        let ctx = self.label_before(i);
        if ctx & label::DOB != 0 && ctx & label::OTHER_DATE == 0 && checks::birth_year(year) {
            let (s, e) = (t0.start as usize, t2.end as usize);
            self.push(EntityType::DateOfBirth, s, e, "dob.label", false);
        }
        Some(i + 3)
    }

    // ------------------------------------------------------------ names

    /// A person's name starting at token `i`; returns the index after it.
    fn person_name(&mut self, i: usize) -> Option<usize> {
        let n = self.t.len();
        let tk = self.t[i];
        if tk.word & word::STOP_CAP != 0 || tk.label != 0 && tk.word & word::FIRST_NAME == 0 {
            return None;
        }
        let ctx = self.label_before(i);
        let provider = ctx & label::PROVIDER != 0 || self.prev_is_provider_title(i);
        let role = if ctx & label::NAME != 0 {
            Some(PersonRole::Labeled)
        } else if ctx & label::GREETING != 0 {
            Some(PersonRole::Greeted)
        } else {
            None
        };
        // "Ms. Okafor": the title is not part of the name
        let mut i = i;
        if tk.word & word::TITLE != 0 {
            if i + 1 >= n
                || !matches!(self.gap(i + 1), b" " | b". ")
                || !self.t[i + 1].capital
                || self.t[i + 1].shape != Shape::Alpha
            {
                return Some(i + 1);
            }
            i += 1;
        }
        let tk = self.t[i];
        // how far the capitalized words go: "Justin Foster", "Mary J. Smith"
        let mut last = i;
        let mut j = i + 1;
        while j < n && j - i < 4 {
            let g = self.gap(j);
            let t = &self.t[j];
            let initial = t.len() == 1 && t.capital;
            let ok_gap = g == b" " || (g == b". " && self.t[j - 1].len() == 1);
            if !ok_gap
                || !t.capital
                || t.shape != Shape::Alpha
                || t.word & (word::STOP_CAP | word::MONTH) != 0
                || t.label != 0
            {
                break;
            }
            if !initial && t.len() < 2 {
                break;
            }
            last = j;
            j += 1;
        }
        let first_name = tk.word & word::FIRST_NAME != 0;
        let in_name_lists = |k: usize| self.t[k].word & (word::FIRST_NAME | word::LAST_NAME) != 0;
        let confirmed = match role {
            // after a label or greeting, one of the words must be a known name
            // ("Patient: Omar Haddad", "Hello Wayne"; not "Name: Contents")
            Some(_) => (i..=last).any(in_name_lists),
            None => {
                // "Brian Ford": a known first name and a surname; when either is also an
                // ordinary word ("Will", "Young"), the other must be unambiguous
                let surname = self.t[last].word;
                last > i
                    && first_name
                    && self.t[last].len() >= 2
                    && if tk.word & word::NOT_NAME != 0 {
                        surname & word::LAST_NAME != 0 && surname & word::NOT_NAME == 0
                    } else {
                        surname & word::NOT_NAME == 0 || surname & word::LAST_NAME != 0
                    }
            }
        };
        if !confirmed {
            return None;
        }
        // credentials after the name ("Jane Smith, MD") mark staff too
        let staff_after = last + 1 < n
            && matches!(self.gap(last + 1), b", " | b" " | b",")
            && self.t[last + 1].word & word::PROVIDER_TITLE != 0
            && self.t[last + 1].capital;
        let start = tk.start as usize;
        if provider || staff_after || self.in_signature(start) {
            return Some(last + 1);
        }
        let end = self.t[last].end as usize;
        let role = role.unwrap_or(PersonRole::Mentioned);
        let detector = match role {
            PersonRole::Labeled => "name.label",
            PersonRole::Greeted => "name.greeting",
            PersonRole::Mentioned => "name.dictionary",
        };
        self.out.detections.push(Detection {
            entity: EntityType::PersonName,
            start,
            end,
            detector,
            business: false,
            role: Some(role),
        });
        Some(last + 1)
    }

    fn prev_is_provider_title(&self, i: usize) -> bool {
        i > 0 && self.t[i - 1].word & word::PROVIDER_TITLE != 0 && !has_newline(self.gap(i))
    }
}

/// Gaps between tokens are short: a plain loop beats a memchr call.
#[inline]
#[allow(clippy::manual_contains)]
fn has_newline(gap: &[u8]) -> bool {
    gap.iter().any(|&c| c == b'\n')
}

fn is_sentence_break(gap: &[u8]) -> bool {
    gap.len() >= 2 && matches!(gap[0], b'.' | b'!' | b'?' | b';') && gap[1] == b' '
}

/// Could these groups be a record or member identifier? 5-20 letters and digits with
/// at least 4 digits, joined by dashes or spaces only.
fn id_like(groups: &[&[u8]], seps: &[&[u8]]) -> bool {
    let len: usize = groups.iter().map(|g| g.len()).sum();
    let digits: usize = groups.iter().map(|g| g.iter().filter(|b| b.is_ascii_digit()).count()).sum();
    (5..=20).contains(&len) && digits >= 4 && seps.iter().all(|s| matches!(*s, b"-" | b" "))
}

fn expand_year(yy: u32) -> u32 {
    if yy > 30 { 1900 + yy } else { 2000 + yy }
}

fn lower<'b>(s: &[u8], buf: &'b mut [u8; super::lexicon::MAX_WORD]) -> &'b [u8] {
    let n = s.len().min(buf.len());
    for (d, c) in buf.iter_mut().zip(&s[..n]) {
        *d = c.to_ascii_lowercase();
    }
    &buf[..n]
}

#[cfg(test)]
mod tests;
