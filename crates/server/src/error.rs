//! Error responses as text-embeddings-inference writes them: `{"error", "error_type"}` with
//! TEI's status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use splade_encoder::EncoderError;

/// TEI's error kinds (serialized as written: `"Validation"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorType {
    /// The model or the index is not usable (503).
    Unhealthy,
    /// The model failed on an input (424).
    Backend,
    /// No permit left (429).
    Overloaded,
    /// The request is invalid (422; 413 for a payload over the limit).
    Validation,
    /// The tokenizer failed (422).
    Tokenizer,
    /// Nothing to do (400).
    Empty,
}

impl ErrorType {
    /// TEI's status code of the kind.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Backend => StatusCode::FAILED_DEPENDENCY,
            ErrorType::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorType::Validation | ErrorType::Tokenizer => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Empty => StatusCode::BAD_REQUEST,
        }
    }

    /// The `err` label of `te_request_failure`.
    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorType::Unhealthy => "unhealthy",
            ErrorType::Backend => "inference",
            ErrorType::Overloaded => "overloaded",
            ErrorType::Validation => "validation",
            ErrorType::Tokenizer => "tokenization",
            ErrorType::Empty => "validation",
        }
    }
}

/// An error answer: status, message and kind.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status (normally [`ErrorType::status`]).
    pub status: StatusCode,
    /// The message.
    pub error: String,
    /// The kind.
    pub error_type: ErrorType,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_type: ErrorType,
}

impl ApiError {
    /// An error of kind `error_type` with its usual status.
    pub fn new(error_type: ErrorType, error: impl Into<String>) -> Self {
        Self {
            status: error_type.status(),
            error: error.into(),
            error_type,
        }
    }

    /// 422 Validation.
    pub fn validation(error: impl Into<String>) -> Self {
        Self::new(ErrorType::Validation, error)
    }

    /// 400 Empty.
    pub fn empty(error: impl Into<String>) -> Self {
        Self::new(ErrorType::Empty, error)
    }

    /// 429 Overloaded with TEI's message.
    pub fn overloaded() -> Self {
        Self::new(ErrorType::Overloaded, "Model is overloaded")
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.error, self.error_type)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.error,
            error_type: self.error_type,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<EncoderError> for ApiError {
    fn from(e: EncoderError) -> Self {
        let kind = match &e {
            EncoderError::InvalidArgument(_)
            | EncoderError::InputTooLong { .. }
            | EncoderError::NoRoute { .. } => ErrorType::Validation,
            EncoderError::Tokenize { .. } | EncoderError::Tokenizer { .. } => ErrorType::Tokenizer,
            _ => ErrorType::Backend,
        };
        let message = match (&e, kind) {
            (_, ErrorType::Validation) => format!("Input validation error: {e}"),
            (_, ErrorType::Tokenizer) => format!("tokenizer error {e}"),
            _ => format!("Backend error: {e}"),
        };
        ApiError::new(kind, message)
    }
}
