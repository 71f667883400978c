//! SendGrid v3-compatible `POST /v3/mail/send`: an application written for SendGrid moves to
//! carepost by changing its base URL and key. Each personalization becomes its own message,
//! as with SendGrid. Features that change content on SendGrid's side (templates,
//! substitutions, scheduled sends) are refused with a clear error rather than ignored;
//! tracking and category settings are ignored, as they do not change what is sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use carepost_intake::SubmitHints;
use serde::Deserialize;
use serde_json::Value;

use super::auth::sending_caller;
use super::compose::{Attachment, Draft, Mailbox, check_header};
use super::messages::{json_bytes, submit};
use super::{ApiError, ApiShared, request};
use crate::{ClientIp, WebState};

#[derive(Debug, Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

impl Email {
    fn parse(&self, field: &str) -> Result<Mailbox, ApiError> {
        Mailbox::parse(field, &self.email, self.name.as_deref())
    }
}

#[derive(Debug, Deserialize)]
struct Personalization {
    #[serde(default)]
    to: Vec<Email>,
    #[serde(default)]
    cc: Vec<Email>,
    #[serde(default)]
    bcc: Vec<Email>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    substitutions: Option<Value>,
    #[serde(default)]
    dynamic_template_data: Option<Value>,
    #[serde(default)]
    send_at: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct SgAttachment {
    content: String,
    filename: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    disposition: Option<String>,
    #[serde(default)]
    content_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MailSend {
    #[serde(default)]
    personalizations: Vec<Personalization>,
    from: Option<Email>,
    #[serde(default)]
    reply_to: Option<Email>,
    #[serde(default)]
    reply_to_list: Option<Vec<Email>>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    content: Vec<Content>,
    #[serde(default)]
    attachments: Vec<SgAttachment>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    template_id: Option<Value>,
    #[serde(default)]
    sections: Option<Value>,
    #[serde(default)]
    send_at: Option<Value>,
    #[serde(default)]
    batch_id: Option<Value>,
}

fn unsupported(field: &str, what: &str) -> ApiError {
    ApiError::invalid(field, format!("{what} is not supported by carepost; send the finished content instead"))
}

fn present(v: &Option<Value>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
}

/// One draft per personalization of a parsed request, or what is wrong with it.
pub(crate) fn drafts(request: MailSend) -> Result<Vec<Draft>, ApiError> {
    request.drafts()
}

impl MailSend {
    fn drafts(&self) -> Result<Vec<Draft>, ApiError> {
        if present(&self.template_id) {
            return Err(unsupported("template_id", "Templates are"));
        }
        if present(&self.sections) {
            return Err(unsupported("sections", "Sections are"));
        }
        if present(&self.send_at) || present(&self.batch_id) {
            return Err(unsupported("send_at", "Scheduled sending is"));
        }
        if self.personalizations.is_empty() || self.personalizations.len() > 1000 {
            return Err(ApiError::invalid("personalizations", "between 1 and 1000 personalizations are required"));
        }
        let from = self
            .from
            .as_ref()
            .ok_or_else(|| ApiError::invalid("from.email", "The from object must be provided for every email send."))?;
        let from = from.parse("from.email")?;
        let reply_to = match (&self.reply_to, &self.reply_to_list) {
            (Some(r), _) => Some(r.parse("reply_to.email")?),
            (None, Some(list)) if list.len() == 1 => Some(list[0].parse("reply_to_list[0].email")?),
            (None, Some(list)) if !list.is_empty() => {
                return Err(ApiError::invalid("reply_to_list", "carepost takes one reply-to address"));
            }
            _ => None,
        };
        let (mut text, mut html) = (None, None);
        for (i, c) in self.content.iter().enumerate() {
            match c.kind.to_ascii_lowercase().as_str() {
                "text/plain" if text.is_none() => text = Some(Arc::<str>::from(c.value.as_str())),
                "text/html" if html.is_none() => html = Some(Arc::<str>::from(c.value.as_str())),
                _ => {
                    return Err(ApiError::invalid(
                        format!("content[{i}].type"),
                        "one text/plain and one text/html content are supported",
                    ));
                }
            }
        }
        if text.as_deref().is_some_and(str::is_empty) && html.is_none() || self.content.is_empty() {
            return Err(ApiError::invalid(
                "content",
                "Unless a valid template_id is provided, the content parameter is required.",
            ));
        }
        let mut attachments = Vec::new();
        for (i, a) in self.attachments.iter().enumerate() {
            let field = format!("attachments[{i}]");
            let inline = match a.disposition.as_deref().unwrap_or("attachment") {
                "attachment" => None,
                "inline" => Some(a.content_id.as_deref().ok_or_else(|| {
                    ApiError::invalid(format!("{field}.content_id"), "inline attachments need a content_id")
                })?),
                _ => return Err(ApiError::invalid(format!("{field}.disposition"), "attachment or inline")),
            };
            attachments.push(Attachment::parse(&field, &a.content, &a.filename, a.kind.as_deref(), inline)?);
        }
        // Every personalization's draft shares the one decoded copy of the body and files.
        let attachments: Arc<[Attachment]> = attachments.into();
        let mut drafts = Vec::with_capacity(self.personalizations.len());
        for (i, p) in self.personalizations.iter().enumerate() {
            let field = format!("personalizations[{i}]");
            if present(&p.substitutions) {
                return Err(unsupported(&format!("{field}.substitutions"), "Substitutions are"));
            }
            if present(&p.dynamic_template_data) {
                return Err(unsupported(&format!("{field}.dynamic_template_data"), "Dynamic template data is"));
            }
            if present(&p.send_at) {
                return Err(unsupported(&format!("{field}.send_at"), "Scheduled sending is"));
            }
            let list = |name: &str, v: &[Email]| -> Result<Vec<Mailbox>, ApiError> {
                v.iter().enumerate().map(|(j, e)| e.parse(&format!("{field}.{name}[{j}].email"))).collect()
            };
            let mut headers = self.headers.clone();
            headers.extend(p.headers.clone());
            for (name, value) in &headers {
                check_header(&format!("headers.{name}"), name, value)?;
            }
            let subject = p.subject.clone().or_else(|| self.subject.clone()).unwrap_or_default();
            if subject.is_empty() {
                return Err(ApiError::invalid(
                    "subject",
                    "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
                ));
            }
            let draft = Draft {
                from: from.clone(),
                reply_to: reply_to.clone(),
                to: list("to", &p.to)?,
                cc: list("cc", &p.cc)?,
                bcc: list("bcc", &p.bcc)?,
                subject,
                text: text.clone(),
                html: html.clone(),
                attachments: attachments.clone(),
                headers: headers.into_iter().collect(),
            };
            if draft.to.is_empty() {
                return Err(ApiError::invalid(
                    format!("{field}.to"),
                    "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                ));
            }
            draft.check(&format!("{field}."))?;
            drafts.push(draft);
        }
        Ok(drafts)
    }
}

/// `POST /v3/mail/send`: 202 with an empty body once every message is durable; errors as
/// SendGrid reports them.
pub async fn send(
    State(state): State<WebState>,
    Extension(shared): Extension<Arc<ApiShared>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match send_inner(&state, &shared, ip, &headers, body).await {
        Ok(first) => {
            let mut r = StatusCode::ACCEPTED.into_response();
            if let Some(v) = first.and_then(|id| HeaderValue::from_str(&id).ok()) {
                r.headers_mut().insert("x-message-id", v);
            }
            r
        }
        Err(e) => e.sendgrid(),
    }
}

async fn send_inner(
    state: &WebState,
    shared: &Arc<ApiShared>,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<String>, ApiError> {
    let caller = sending_caller(state, shared, headers, ip).await?;
    let drafts = caller.audit_refused(state, request::parse_sendgrid(&json_bytes(state, headers, body)?)).await?;
    for draft in &drafts {
        caller.require_sender(state, &draft.from.email, "from.email").await?;
    }
    let mut first = None;
    for draft in &drafts {
        let (id, _) = submit(state, shared, &caller, draft, SubmitHints::default(), None).await?;
        first.get_or_insert(id);
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Vec<Draft>, ApiError> {
        serde_json::from_value::<MailSend>(v).unwrap().drafts()
    }

    #[test]
    fn the_sendgrid_library_shape_is_understood() {
        let drafts = parse(serde_json::json!({
            "from": {"email": "lab@clinic.example", "name": "Lab"},
            "subject": "Results",
            "personalizations": [{"to": [{"email": "a@example.org"}]}, {"to": [{"email": "b@example.org"}], "subject": "Yours"}],
            "content": [{"type": "text/plain", "value": "hi"}, {"type": "text/html", "value": "<p>hi</p>"}],
            "attachments": [{"content": "aGk=", "filename": "a.txt", "type": "text/plain", "disposition": "attachment"}],
            "tracking_settings": {"click_tracking": {"enable": false}},
            "categories": ["x"],
            "custom_args": {"order": "1"}
        }))
        .unwrap();
        assert_eq!(drafts.len(), 2);
        assert_eq!(drafts[1].subject, "Yours");
        assert_eq!(drafts[0].attachments.len(), 1);
    }

    #[test]
    fn content_changing_features_are_refused() {
        let base = serde_json::json!({"from": {"email": "a@b.example"}, "subject": "s", "personalizations": [{"to": [{"email": "c@d.example"}]}], "content": [{"type": "text/plain", "value": "x"}]});
        let mut t = base.clone();
        t["template_id"] = "d-123".into();
        assert!(matches!(parse(t), Err(ApiError::Invalid { field: Some(f), .. }) if f == "template_id"));
        let mut t = base.clone();
        t["personalizations"][0]["substitutions"] = serde_json::json!({"-name-": "x"});
        assert!(parse(t).is_err());
        let mut t = base.clone();
        t["personalizations"] = serde_json::json!([]);
        assert!(parse(t).is_err());
        assert!(parse(base).is_ok());
    }
}
