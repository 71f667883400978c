//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::messages;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A carepost API key (`carepost apikey create`)"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "carepost API", description = "Send protected e-mail through carepost and follow its delivery. Errors are RFC 9457 problem details."),
    paths(messages::send, messages::send_batch, messages::status),
    components(schemas(
        messages::SendRequest, messages::BatchRequest, messages::MailboxIn, messages::AttachmentIn, messages::Accepted,
        messages::BatchResponse, messages::BatchItem, messages::MessageStatus, messages::RecipientStatus, messages::StatusEvent,
        super::error::ProblemDoc
    )),
    modifiers(&BearerAuth),
    tags((name = "messages", description = "Sending and status"))
)]
struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    doc["info"]["version"] = env!("CARGO_PKG_VERSION").into();
    doc
}

pub async fn serve() -> Response {
    axum::Json(document()).into_response()
}
