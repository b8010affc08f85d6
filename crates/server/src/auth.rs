//! `--api-key`: every protected route needs `Authorization: Bearer <key>`, compared in
//! constant time (both sides hashed first, so not even the length leaks through timing).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header::AUTHORIZATION, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorType};

/// The digest of the expected header value.
#[derive(Clone)]
pub struct ApiKey(Arc<[u8; 32]>);

impl ApiKey {
    /// Expects `Authorization: Bearer <key>`.
    pub fn new(key: &str) -> Self {
        Self(Arc::new(digest(format!("Bearer {key}").as_bytes())))
    }

    fn accepts(&self, header: &[u8]) -> bool {
        digest(header).ct_eq(&self.0[..]).into()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The middleware: 401 (a TEI error body) unless the header matches.
pub async fn require_key(State(key): State<ApiKey>, request: Request, next: Next) -> Response {
    let ok = request
        .headers()
        .get(AUTHORIZATION)
        .is_some_and(|value| key.accepts(value.as_bytes()));
    if ok {
        next.run(request).await
    } else {
        ApiError::new(
            ErrorType::Validation,
            "Unauthorized: a valid `Authorization: Bearer <api key>` header is required",
        )
        .with_status(StatusCode::UNAUTHORIZED)
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_value_is_accepted() {
        let key = ApiKey::new("s3cret");
        assert!(key.accepts(b"Bearer s3cret"));
        for wrong in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret ",
            b"bearer s3cret",
            b"s3cret",
            b"",
        ] {
            assert!(!key.accepts(wrong), "{:?}", String::from_utf8_lossy(wrong));
        }
    }
}
