//! The SMTP input path with arbitrary bytes: command lines through the parser, message data
//! through the DATA and BDAT decoders split at an arbitrary point, and SASL responses. None
//! of it may panic, and the DATA decoder must give the same answer however the input is
//! split across reads.
//!
//!     cargo +nightly fuzz run smtp_session
#![no_main]

use carepost_smtp::command;
use carepost_smtp::data::BodyDecoder;
use carepost_smtp::sasl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    for line in input.split_inclusive(|&b| b == b'\n') {
        let _ = command::parse(line);
    }
    let cut = input.first().map(|&b| usize::from(b)).unwrap_or(0).min(input.len());

    let mut whole = BodyDecoder::data(4096, 1000);
    let mut body = Vec::new();
    let (used, done) = whole.feed(input, &mut body);

    let mut split = BodyDecoder::data(4096, 1000);
    let mut split_body = Vec::new();
    let (first, first_done) = split.feed(&input[..cut], &mut split_body);
    let (split_used, split_done) = if first_done {
        (first, true)
    } else {
        let (second, second_done) = split.feed(&input[cut..], &mut split_body);
        (cut + second, second_done)
    };
    assert_eq!(done, split_done);
    if done {
        assert_eq!(used, split_used);
    }
    assert_eq!(body, split_body);
    assert_eq!(whole.problem(), split.problem());

    let mut chunks = BodyDecoder::bdat(4096, 1000);
    chunks.feed(&input[..cut], &mut Vec::new());
    chunks.feed(&input[cut..], &mut Vec::new());
    chunks.finish();

    if let Ok(text) = std::str::from_utf8(input) {
        if let Ok(decoded) = sasl::decode(text) {
            let _ = sasl::plain(&decoded);
            let _ = sasl::login_field(&decoded);
        }
    }
});
