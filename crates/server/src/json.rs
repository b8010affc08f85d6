//! The JSON request body: parsed with serde_json whatever the `Content-Type` says, every
//! failure answered as a TEI error body (axum's own rejections are plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// A request body parsed as JSON into `T`.
///
/// - over `--payload-limit` bytes: 413 `Validation`;
/// - not JSON (syntax, truncated, invalid UTF-8): 400 `Validation`;
/// - JSON of the wrong shape (missing field, wrong type, unknown variant): 422 `Validation`.
///
/// The status codes are axum's (so TEI's); the bodies are TEI's `ErrorResponse`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "request body exceeds the payload limit (--payload-limit)".to_string()
            } else {
                format!("reading the request body: {rejection}")
            };
            ApiError::validation(message).with_status(status)
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body (see [`JsonBody`] for the statuses).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let status = match e.classify() {
            Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            Category::Syntax | Category::Eof | Category::Io => StatusCode::BAD_REQUEST,
        };
        let what = if status == StatusCode::BAD_REQUEST {
            "Failed to parse the request body as JSON"
        } else {
            "Failed to deserialize the JSON body into the target type"
        };
        ApiError::validation(format!("{what}: {e}")).with_status(status)
    })
}
