//! Fuzz the REST API's request parsing and checks: arbitrary bytes as the body of
//! `/api/v1/messages`, `/api/v1/messages/batch` or `/v3/mail/send` are refused with a
//! problem, or become drafts whose envelope and MIME message build without panicking. The
//! handlers run these same functions (`carepost_web::api::request`).
//!
//!     cargo +nightly fuzz run api_request
//!
//! Input: one byte choosing the endpoint (0 single, 1 batch, 2 SendGrid), then the body.

#![no_main]

use carepost_identity::permission::listed_sender;
use carepost_web::api::ApiError;
use carepost_web::api::compose::Draft;
use carepost_web::api::request;
use libfuzzer_sys::fuzz_target;

fn drafts(which: u8, body: &[u8]) -> Result<Vec<Draft>, ApiError> {
    match which % 3 {
        0 => request::parse_message(body).map(|m| vec![m.draft]),
        1 => request::parse_batch(body).map(|ms| ms.into_iter().map(|m| m.draft).collect()),
        _ => request::parse_sendgrid(body),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match drafts(which, body) {
        Ok(drafts) => {
            let allowed = ["lab@clinic.example".to_owned(), "@results.example".to_owned()];
            for d in drafts {
                listed_sender(&allowed, &d.from.email);
                assert!(!d.envelope().recipients.is_empty(), "a checked draft has a recipient");
                // A draft that passed the checks must build: a failure here would be a 500.
                assert!(d.build("fuzz@carepost.test").is_ok(), "a checked draft does not build");
            }
        }
        Err(e) => {
            // What the client would be told, in both shapes.
            let problem = e.problem();
            assert!(problem.status >= 400 && problem.status < 500, "bad input is a 4xx: {e:?}");
            let _ = e.sendgrid();
        }
    }
});
