//! The message body as it arrives: DATA with its dot-stuffing and end marker (RFC 5321
//! section 4.5.2), and BDAT chunks (RFC 3030).
//!
//! Both refuse bare line endings. A CR not followed by LF, or an LF not preceded by CR, is
//! how SMTP smuggling works: a receiver that takes `\n.\n` (or `\r.\r\n`, ...) as the end of
//! the data while the next hop does not lets an attacker hide a second message inside the
//! first. Here only `CRLF . CRLF` ends DATA; a bare CR or LF anywhere marks the message as
//! damaged, the rest is read and discarded up to the real end, and the session refuses it.
//!
//! The decoder is a pure state machine over byte slices so that it can be tested on every
//! way a body can be split across reads.

/// Why a message was refused while it streamed in. The first problem wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    BareCr,
    BareLf,
    /// Longer than the size limit: nothing past the limit was kept.
    TooBig,
    /// A line longer than the line-length limit.
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// After CRLF (or at the very start of DATA): a dot here is stuffing or the end marker.
    LineStart,
    /// A line that began with a dot: `.` CRLF would end the data.
    AfterDot,
    /// `.` CR at the start of a line: LF ends the data.
    AfterDotCr,
    InLine,
}

/// Decodes one message body, appending it to a buffer and keeping at most `limit` bytes.
#[derive(Debug)]
pub struct BodyDecoder {
    dot_stuffed: bool,
    phase: Phase,
    last: u8,
    line_len: usize,
    max_line: usize,
    limit: usize,
    kept: usize,
    size: u64,
    problem: Option<BodyProblem>,
}

impl BodyDecoder {
    /// A decoder for DATA: dot-unstuffs and finds the end marker.
    pub fn data(limit: usize, max_line: usize) -> Self {
        Self::new(true, limit, max_line)
    }

    /// A decoder for the chunks of one BDAT transaction: bytes are taken as they are.
    pub fn bdat(limit: usize, max_line: usize) -> Self {
        Self::new(false, limit, max_line)
    }

    fn new(dot_stuffed: bool, limit: usize, max_line: usize) -> Self {
        BodyDecoder {
            dot_stuffed,
            phase: Phase::LineStart,
            last: b'\n',
            line_len: 0,
            max_line: max_line.max(3),
            limit,
            kept: 0,
            size: 0,
            problem: None,
        }
    }

    /// The first problem found, if any.
    pub fn problem(&self) -> Option<BodyProblem> {
        self.problem
    }

    /// Bytes of message seen, including any not kept past the limit.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether a bare CR or LF was seen: the session refuses the message at once rather than
    /// reading on to a `CRLF . CRLF` that a client ending its data with `\n.\n` never sends.
    pub fn saw_bare_line_end(&self) -> bool {
        matches!(self.problem, Some(BodyProblem::BareCr | BodyProblem::BareLf))
    }

    fn flag(&mut self, p: BodyProblem) {
        // A bare line ending outranks the size and line-length problems, which let the data
        // be read to its end: it ends the session.
        let bare = matches!(p, BodyProblem::BareCr | BodyProblem::BareLf);
        if self.problem.is_none() || (bare && !self.saw_bare_line_end()) {
            self.problem = Some(p);
        }
    }

    fn keep(&mut self, body: &mut Vec<u8>, byte: u8) {
        self.size += 1;
        if self.problem.is_some() {
            return;
        }
        if self.kept >= self.limit {
            self.flag(BodyProblem::TooBig);
            return;
        }
        self.kept += 1;
        body.push(byte);
    }

    /// One content byte: line-ending checks, line length, then keep.
    fn content(&mut self, body: &mut Vec<u8>, b: u8) {
        if self.last == b'\r' && b != b'\n' {
            self.flag(BodyProblem::BareCr);
        }
        if b == b'\n' && self.last != b'\r' {
            self.flag(BodyProblem::BareLf);
        }
        self.line_len += 1;
        if self.line_len > self.max_line {
            self.flag(BodyProblem::LineTooLong);
        }
        self.keep(body, b);
        if b == b'\n' && self.last == b'\r' {
            self.line_len = 0;
            if self.dot_stuffed {
                self.phase = Phase::LineStart;
            }
        }
        self.last = b;
    }

    /// Feeds `input`; returns how many bytes were consumed and whether the end of DATA was
    /// reached (always false for BDAT, whose chunks end by length). Bytes after the end
    /// marker are not consumed: they are the client's next command.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> (usize, bool) {
        if !self.dot_stuffed {
            // Fast path for chunks: only CR and LF need a look.
            for &b in input {
                self.content(body, b);
            }
            return (input.len(), false);
        }
        for (i, &b) in input.iter().enumerate() {
            match self.phase {
                Phase::LineStart if b == b'.' => {
                    self.phase = Phase::AfterDot;
                    self.line_len = 1;
                    continue;
                }
                Phase::AfterDot if b == b'\r' => {
                    self.phase = Phase::AfterDotCr;
                    continue;
                }
                Phase::AfterDotCr => {
                    if b == b'\n' {
                        return (i + 1, true);
                    }
                    // ". CR x": the CR was content, and a bare one.
                    self.phase = Phase::InLine;
                    self.content(body, b'\r');
                }
                _ => self.phase = Phase::InLine,
            }
            self.content(body, b);
        }
        (input.len(), false)
    }

    /// At the end of the last BDAT chunk: a message ending in CR has a bare CR.
    pub fn finish(&mut self) {
        if !self.dot_stuffed && self.last == b'\r' {
            self.flag(BodyProblem::BareCr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_data(input: &[u8]) -> (Vec<u8>, Option<usize>, Option<BodyProblem>) {
        let mut d = BodyDecoder::data(1 << 20, 1000);
        let mut body = Vec::new();
        let (used, done) = d.feed(input, &mut body);
        (body, done.then_some(used), d.problem())
    }

    #[test]
    fn unstuffs_and_stops_at_the_end_marker() {
        let (body, end, problem) = decode_data(b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n");
        assert_eq!(body, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(end, Some(b"Subject: x\r\n\r\n..leading dot\r\n.\r\n".len()));
        assert_eq!(problem, None);
        let (body, end, _) = decode_data(b".\r\n");
        assert!(body.is_empty());
        assert_eq!(end, Some(3));
        // a line holding just a stuffed dot, and a dot inside a line
        let (body, _, problem) = decode_data(b"..\r\na.b\r\n.\r\n");
        assert_eq!(body, b".\r\na.b\r\n");
        assert_eq!(problem, None);
    }

    #[test]
    fn every_published_smuggling_payload_is_refused_and_does_not_end_the_data() {
        for (payload, expected) in [
            (&b"\n.\n"[..], BodyProblem::BareLf),
            (b"\n.\r\n", BodyProblem::BareLf),
            (b"\r.\r\n", BodyProblem::BareCr),
            (b"\r\n.\rX", BodyProblem::BareCr),
            (b"\r\n.\r", BodyProblem::BareCr),
        ] {
            let mut input = b"Subject: hi\r\n\r\nbody".to_vec();
            input.extend_from_slice(payload);
            input.extend_from_slice(
                b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n\r\nsmuggled\r\n.\r\n",
            );
            let (_, end, problem) = decode_data(&input);
            assert_eq!(end, Some(input.len()), "{payload:?}: only the real CRLF.CRLF ends the data");
            assert_eq!(problem, Some(expected), "{payload:?}");
        }
    }

    #[test]
    fn a_bare_line_ending_outranks_size_problems() {
        let mut d = BodyDecoder::data(4, 1000);
        d.feed(b"0123456789\r\nmore\n", &mut Vec::new());
        assert!(d.saw_bare_line_end());
        assert_eq!(d.problem(), Some(BodyProblem::BareLf));
        let mut d = BodyDecoder::data(1 << 20, 1000);
        d.feed(b"fine\r\n", &mut Vec::new());
        assert!(!d.saw_bare_line_end());
    }

    #[test]
    fn size_and_line_limits() {
        let mut d = BodyDecoder::data(10, 1000);
        let mut body = Vec::new();
        let (_, done) = d.feed(b"0123456789abcdef\r\n.\r\n", &mut body);
        assert!(done);
        assert_eq!(body.len(), 10, "nothing past the limit is kept");
        assert_eq!(d.problem(), Some(BodyProblem::TooBig));
        assert_eq!(d.size(), 18);

        let mut d = BodyDecoder::data(1 << 20, 8);
        let mut body = Vec::new();
        d.feed(b"short\r\nmuch too long\r\n.\r\n", &mut body);
        assert_eq!(d.problem(), Some(BodyProblem::LineTooLong));
    }

    #[test]
    fn bdat_checks_line_endings_across_chunks() {
        let mut d = BodyDecoder::bdat(1 << 20, 1000);
        let mut body = Vec::new();
        d.feed(b"a\r", &mut body);
        d.feed(b"\nb\r\n", &mut body);
        d.finish();
        assert_eq!(d.problem(), None);
        assert_eq!(body, b"a\r\nb\r\n");
        for bad in [&b"a\nb"[..], b"a\rb", b"x\r\n.\n", b"\r.\r\n", b"end\r"] {
            let mut d = BodyDecoder::bdat(1 << 20, 1000);
            d.feed(bad, &mut Vec::new());
            d.finish();
            assert!(d.problem().is_some(), "{bad:?}");
        }
    }

    proptest! {
        /// However the input is split across reads, the result is the same, and nothing panics.
        #[test]
        fn splitting_does_not_change_the_result(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..300), cut in 0usize..300) {
            let whole = decode_data(&input);
            let cut = cut.min(input.len());
            let mut d = BodyDecoder::data(1 << 20, 1000);
            let mut body = Vec::new();
            let (used, done) = d.feed(&input[..cut], &mut body);
            let split = if done {
                (body, Some(used), d.problem())
            } else {
                let (used2, done2) = d.feed(&input[cut..], &mut body);
                (body, done2.then_some(cut + used2), d.problem())
            };
            prop_assert_eq!(whole, split);
        }

        /// A body that the decoder accepts contains only CRLF line endings.
        #[test]
        fn accepted_bodies_have_only_crlf(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..200)) {
            let (body, end, problem) = decode_data(&input);
            if problem.is_none() && end.is_some() {
                for (i, &b) in body.iter().enumerate() {
                    if b == b'\n' { prop_assert!(i > 0 && body[i - 1] == b'\r'); }
                    if b == b'\r' { prop_assert!(body.get(i + 1) == Some(&b'\n')); }
                }
            }
        }
    }
}
