//! What every handler shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use splade_encoder::{SparseVector, Truncation};

use crate::types::InputType;

use crate::config::ServerConfig;
use crate::error::{ApiError, ErrorType};
use crate::infer::{Encoded, Infer};
use crate::live_index::LiveIndex;
use crate::metrics::Metrics;
use crate::types::TruncationDirection;

/// The server's shared state.
pub struct AppState {
    /// The settings.
    pub config: ServerConfig,
    /// Inference (permits, tokenizers, the model thread).
    pub infer: Infer,
    /// The live index, when started with `--index`.
    pub index: Option<Arc<LiveIndex>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The state as handlers get it.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// The truncation of a request's `truncate` / `truncation_direction`.
    pub fn truncation(&self, truncate: Option<bool>, direction: TruncationDirection) -> Truncation {
        if truncate.unwrap_or(self.config.auto_truncate) {
            match direction {
                TruncationDirection::Right => Truncation::Right,
                TruncationDirection::Left => Truncation::Left,
            }
        } else {
            Truncation::Refuse
        }
    }

    /// Checks a batch's size: empty is 400, above `--max-client-batch-size` 422 (TEI's
    /// messages).
    pub fn check_batch(&self, len: usize, what: &str) -> Result<(), ApiError> {
        if len == 0 {
            return Err(ApiError::empty(format!("`{what}` cannot be empty")));
        }
        if len > self.config.max_client_batch_size {
            return Err(ApiError::validation(format!(
                "batch size {len} > maximum allowed batch size {}",
                self.config.max_client_batch_size
            )));
        }
        Ok(())
    }

    /// The live index, or 404 when the server runs without one.
    pub fn live_index(&self) -> Result<&Arc<LiveIndex>, ApiError> {
        self.index.as_ref().ok_or_else(|| {
            ApiError::validation(
                "this server has no index: start it with `splade serve --index DIR`",
            )
            .with_status(axum::http::StatusCode::NOT_FOUND)
        })
    }

    /// The items of a request as vectors, in order: its texts encoded in one call with
    /// `prompt_name`, truncated on the right as offline encoding does; its vectors as given.
    pub async fn vectors_of(
        &self,
        items: Vec<Item>,
        prompt_name: &str,
    ) -> Result<Vec<SparseVector>, ApiError> {
        let texts: Vec<InputType> = items
            .iter()
            .filter_map(|item| match item {
                Item::Text(t) => Some(InputType::String(t.clone())),
                Item::Vector(_) => None,
            })
            .collect();
        let mut encoded = Vec::new().into_iter();
        if !texts.is_empty() {
            let permit = self.infer.try_acquire(texts.len())?;
            let options = self.infer.request_encoding(Some(prompt_name))?;
            encoded = self
                .infer
                .encode(texts, options, Truncation::Right, &permit)
                .await?
                .vectors
                .into_iter();
        }
        Ok(items
            .into_iter()
            .filter_map(|item| match item {
                Item::Text(_) => encoded.next(),
                Item::Vector(v) => Some(v),
            })
            .collect())
    }

    /// Counts a failed request under its kind and passes the error on.
    pub fn failed(&self, error: ApiError) -> ApiError {
        self.metrics.count(
            "te_request_failure",
            &[("err", error.error_type.metric_label())],
        );
        error
    }

    /// 503 when the model thread or the index writer is down.
    pub fn check_health(&self) -> Result<(), ApiError> {
        if !self.infer.is_healthy() {
            return Err(ApiError::new(
                ErrorType::Unhealthy,
                "the model thread has stopped",
            ));
        }
        if let Some(index) = &self.index {
            if !index.is_healthy() {
                return Err(ApiError::new(
                    ErrorType::Unhealthy,
                    format!(
                        "the index {} cannot commit (see the server log)",
                        index.path().display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// TEI's timing headers: `x-compute-time`, `x-compute-characters`, `x-compute-tokens`,
/// `x-total-time`, `x-tokenization-time`, `x-queue-time`, `x-inference-time` (milliseconds).
pub fn timing_headers(start: Instant, characters: usize, encoded: Option<&Encoded>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let ms = |d: Duration| HeaderValue::from(d.as_millis() as u64);
    let total = start.elapsed();
    headers.insert("x-compute-type", HeaderValue::from_static("cpu"));
    headers.insert("x-compute-time", ms(total));
    headers.insert("x-compute-characters", HeaderValue::from(characters as u64));
    headers.insert("x-total-time", ms(total));
    if let Some(e) = encoded {
        headers.insert("x-compute-tokens", HeaderValue::from(e.tokens as u64));
        headers.insert("x-tokenization-time", ms(e.tokenization));
        headers.insert("x-queue-time", ms(e.queue));
        headers.insert("x-inference-time", ms(e.inference));
    }
    headers
}

/// One item of a search or update request: a text to encode, or a checked vector.
pub enum Item {
    /// A text.
    Text(String),
    /// A vector.
    Vector(SparseVector),
}
