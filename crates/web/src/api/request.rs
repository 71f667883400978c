//! Send requests from bytes to checked drafts, apart from HTTP: the handlers of
//! `/api/v1/messages`, `/api/v1/messages/batch` and `/v3/mail/send` run these, and so does
//! the `api_request` fuzz target. Nothing here touches state; everything a client can get
//! wrong in the body is found here and named.

use carepost_intake::SubmitHints;
use serde::de::DeserializeOwned;

use super::compose::Draft;
use super::messages::{BatchRequest, SendRequest};
use super::{ApiError, MAX_BATCH};

/// One message of a request, checked and ready to send.
#[derive(Debug, Clone)]
pub struct CheckedMessage {
    pub draft: Draft,
    pub hints: SubmitHints,
    /// The message's own idempotency key (batches only), unchecked.
    pub idempotency_key: Option<String>,
    /// Where the message is in the request, for error details: `""` or `messages[3].`.
    pub prefix: String,
}

fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Invalid { field: None, detail: format!("the JSON is not a valid request: {e}") })
}

fn checked(m: &SendRequest, prefix: String) -> Result<CheckedMessage, ApiError> {
    if let Some(problem) = m.portal_passphrase.as_deref().and_then(carepost_intake::passphrase_problem) {
        return Err(ApiError::invalid(format!("{prefix}portal_passphrase"), problem));
    }
    Ok(CheckedMessage {
        draft: m.draft(&prefix)?,
        hints: SubmitHints { force_portal: m.force_portal, portal_passphrase: m.portal_passphrase.clone() },
        idempotency_key: m.idempotency_key.clone(),
        prefix,
    })
}

/// The body of `POST /api/v1/messages`.
pub fn parse_message(body: &[u8]) -> Result<CheckedMessage, ApiError> {
    let request: SendRequest = from_json(body)?;
    if request.idempotency_key.is_some() {
        return Err(ApiError::invalid("idempotency_key", "for single sends, give the Idempotency-Key header instead"));
    }
    checked(&request, String::new())
}

/// The body of `POST /api/v1/messages/batch`: every message is checked before any is sent,
/// so one invalid message refuses the whole batch.
pub fn parse_batch(body: &[u8]) -> Result<Vec<CheckedMessage>, ApiError> {
    let request: BatchRequest = from_json(body)?;
    if request.messages.is_empty() || request.messages.len() > MAX_BATCH {
        return Err(ApiError::invalid("messages", format!("a batch has 1 to {MAX_BATCH} messages")));
    }
    request.messages.iter().enumerate().map(|(i, m)| checked(m, format!("messages[{i}]."))).collect()
}

/// The body of `POST /v3/mail/send`: one draft per personalization.
pub fn parse_sendgrid(body: &[u8]) -> Result<Vec<Draft>, ApiError> {
    super::sendgrid::drafts(from_json(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_parsed_and_checked_the_way_the_handlers_do() {
        let one = br#"{"from": "a@b.example", "to": ["c@d.example"], "text": "x"}"#;
        assert!(parse_message(one).is_ok());
        let keyed = br#"{"from": "a@b.example", "to": ["c@d.example"], "text": "x", "idempotency_key": "k"}"#;
        assert!(
            matches!(parse_message(keyed), Err(ApiError::Invalid { field: Some(f), .. }) if f == "idempotency_key")
        );
        let batch = br#"{"messages": [{"from": "a@b.example", "to": ["c@d.example"], "text": "x"}, {"from": "a@b.example", "to": ["x"], "text": "x"}]}"#;
        assert!(
            matches!(parse_batch(batch), Err(ApiError::Invalid { field: Some(f), .. }) if f == "messages[1].to[0]")
        );
        assert!(parse_batch(br#"{"messages": []}"#).is_err());
        assert!(parse_message(b"\xff\x00").is_err());
        let sg = br#"{"personalizations": [{"to": [{"email": "c@d.example"}]}], "from": {"email": "a@b.example"}, "subject": "s", "content": [{"type": "text/plain", "value": "x"}]}"#;
        assert_eq!(parse_sendgrid(sg).unwrap().len(), 1);
    }
}
