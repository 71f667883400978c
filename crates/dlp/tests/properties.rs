//! Properties: no input makes the scanner panic, and scan time grows linearly with
//! the input (no pattern is quadratic or worse).

use std::time::{Duration, Instant};

use carepost_dlp::detect::{Scratch, scan_text};
use carepost_dlp::extract::{Sink, delimited, edi, html, json, ooxml, pdf, xml};
use carepost_dlp::{Limits, scan_eml};
use proptest::prelude::*;

/// Bytes that look a little like mail, so the parser gets past the headers.
fn mime_like() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::collection::vec(
        prop_oneof![
            Just(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n".to_vec()),
            Just(
                b"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                    .to_vec()
            ),
            Just(b"Content-Type: message/rfc822\r\n\r\n".to_vec()),
            Just(
                b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n".to_vec()
            ),
            Just(b"Content-Disposition: attachment; filename=a.csv\r\n\r\nname,dob\r\n".to_vec()),
            Just(b"SSN: 123-45-6789 DOB: 01/02/1980 =\r\n".to_vec()),
            Just(b"<td>MRN</td><td>1234&#56;</td>".to_vec()),
            Just(b"\r\n--b--\r\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..64),
        ],
        0..24,
    );
    pieces.prop_map(|p| {
        let mut v = b"Subject: x\r\nMIME-Version: 1.0\r\n".to_vec();
        for piece in p {
            v.extend(piece);
        }
        v
    })
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=20000 for a longer hunt
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let r = scan_eml(&bytes, &Limits::default());
        prop_assert!(r.confidence >= 0.0 && r.confidence <= 1.0);
    }

    #[test]
    fn mime_like_bytes_never_panic(bytes in mime_like()) {
        let _ = scan_eml(&bytes, &Limits::default());
    }

    #[test]
    fn arbitrary_text_never_panics_and_ranges_are_valid(text in "\\PC{0,400}|[0-9 ()+./@:-]{0,200}|[A-Za-z0-9 :\n-]{0,300}") {
        let mut scratch = Scratch::default();
        let scan = scan_text(&text, &mut scratch);
        for d in &scan.detections {
            prop_assert!(d.start < d.end && d.end <= text.len());
            prop_assert!(text.is_char_boundary(d.start) && text.is_char_boundary(d.end));
        }
        for h in &scan.health {
            prop_assert!(text.is_char_boundary(h.start) && text.is_char_boundary(h.end));
        }
    }

    #[test]
    fn document_readers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let limits = Limits::default();
        let mut sink = Sink { limits: &limits, incomplete: Default::default(), embedded: Vec::new() };
        let mut pdf_like = b"%PDF-1.4\n1 0 obj << /Filter /FlateDecode >> stream\n".to_vec();
        pdf_like.extend(&bytes);
        let _ = pdf::pdf_to_text(&pdf_like, &mut sink);
        let _ = pdf::pdf_to_text(&bytes, &mut sink);
        let mut zip_like = b"PK\x03\x04".to_vec();
        zip_like.extend(&bytes);
        let _ = ooxml::office_to_text(&zip_like, "docx", &mut sink);
        let text = String::from_utf8_lossy(&bytes);
        let mut out = String::new();
        let _ = html::html_to_text(&text);
        xml::xml_to_text(&text, &mut out);
        delimited::delimited_to_text(&text, &mut out);
        let _ = json::json_to_text(&text, &mut out);
        edi::x12_to_text(&format!("ISA*{text}"), &mut out);
        edi::hl7_to_text(&format!("MSH|^~\\&|{text}"), &mut out);
    }
}

/// Found by `mime_like_bytes_never_panic`: reaches a `debug_assert!` in mail-parser.
#[test]
fn malformed_nested_multipart_is_incomplete_not_a_panic() {
    let eml = b"Subject: x\r\nMIME-Version: 1.0\r\n\x00\r\n--b--\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n\r\n--b--\r\n";
    let r = scan_eml(eml, &Limits::default());
    // debug builds: the parser's assertion is caught; release builds: it parses
    assert!(r.confidence >= 0.0);
}

/// Fastest of a few runs, to keep a loaded machine's noise out.
fn fastest(text: &str) -> Duration {
    let mut scratch = Scratch::default();
    (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(scan_text(text, &mut scratch));
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn scan_time_grows_linearly_with_input() {
    // inputs that stress each candidate path: long number runs, separators the
    // clusters join on, '@' without addresses, labels without values, names, phrases
    let units = [
        "1-2-3-4-5-6-7-8-9-0-",
        "(617) (617) (617) ",
        "123 45 6789 123 45 ",
        "a@b@c@d@e@f@g@h@",
        "DOB: DOB: date of birth ",
        "Patient: John Smith Mary Jones ",
        "type 2 type 2 type 2 diabetes ",
        "E11.E11.E11.9.9.9.",
        "<b>1</b><i>2</i>&#51;",
        "----\n--\n-- \n",
        "1.1.1.1.1.1.1.1.",
        "MRN MRN MRN 12345678 ",
        "diabetes 12345-6789-01 hypertension I10 ",
    ];
    for unit in units {
        let small = unit.repeat(2_000);
        let large = unit.repeat(32_000); // 16 times larger
        // warm up (lexicon, caches)
        let _ = fastest(&small);
        let (a, b) = (fastest(&small), fastest(&large));
        let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-6);
        // linear is about 16; quadratic would be about 256
        assert!(ratio < 64.0, "{unit:?}: 16x the input took {ratio:.1}x the time ({a:?} -> {b:?})");
    }
}

#[test]
fn pdf_without_endobj_scales_linearly() {
    let limits = Limits::default();
    let time = |n: usize| {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        for k in 0..n {
            pdf.extend(format!("{k} 0 obj << /Length 5 >> stream\nBT (x) Tj ET\n").as_bytes());
        }
        (0..2)
            .map(|_| {
                let mut sink = Sink { limits: &limits, incomplete: Default::default(), embedded: Vec::new() };
                let t = Instant::now();
                std::hint::black_box(pdf::pdf_to_text(&pdf, &mut sink));
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let (a, b) = (time(2_000), time(32_000));
    let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-6);
    assert!(ratio < 64.0, "16x the objects took {ratio:.1}x the time");
}

#[test]
fn html_and_tables_scale_linearly_too() {
    let cell = "<tr><td>Ann Lee</td><td>01/02/1980</td></tr>";
    let time = |n: usize| {
        let doc = format!("<table><tr><th>Name</th><th>DOB</th></tr>{}</table>", cell.repeat(n));
        (0..3)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(html::html_to_text(&doc));
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let _ = time(1_000);
    let (a, b) = (time(1_000), time(16_000));
    let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-6);
    assert!(ratio < 64.0, "16x the table took {ratio:.1}x the time");
}
