//! `POST /embed_sparse` (also `/` and `/invocations`), as text-embeddings-inference.

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{timing_headers, SharedState};
use crate::types::{EmbedSparseRequest, InputType, SparseValue};

/// Sparse embeddings: `[[{"index", "value"}, ...], ...]`, one list per input (also for a
/// single input), non-zero weights only, ascending index.
pub async fn embed_sparse(
    State(state): State<SharedState>,
    JsonBody(req): JsonBody<EmbedSparseRequest>,
) -> Result<(HeaderMap, Json<Vec<Vec<SparseValue>>>), ApiError> {
    let start = Instant::now();
    let (inputs, batch) = req.inputs.into_list();
    let method = if batch { "batch" } else { "single" };
    state
        .metrics
        .count("te_request_count", &[("method", method)]);
    let run = async {
        if batch {
            state.check_batch(inputs.len(), "inputs")?;
        }
        let characters = count_characters(&inputs);
        let permit = state.infer.try_acquire(inputs.len())?;
        let options = state.infer.request_encoding(req.prompt_name.as_deref())?;
        let truncation = state.truncation(req.truncate, req.truncation_direction);
        let encoded = state
            .infer
            .encode(inputs, options, truncation, &permit)
            .await?;
        Ok::<_, ApiError>((characters, encoded))
    };
    let (characters, encoded) = run.await.map_err(|e| state.failed(e))?;
    state
        .metrics
        .count("te_request_success", &[("method", method)]);
    state.metrics.time("te_request_duration", start.elapsed());
    let headers = timing_headers(start, characters, Some(&encoded));
    let body = encoded
        .vectors
        .iter()
        .map(|v| {
            v.indices()
                .iter()
                .zip(v.values())
                .filter(|(_, &value)| value != 0.0)
                .map(|(&index, &value)| SparseValue { index, value })
                .collect()
        })
        .collect();
    Ok((headers, Json(body)))
}

/// Characters (or ids) of the inputs, for `x-compute-characters`.
pub fn count_characters(inputs: &[InputType]) -> usize {
    inputs
        .iter()
        .map(|i| match i {
            InputType::String(s) => s.chars().count(),
            InputType::Ids(ids) => ids.len(),
        })
        .sum()
}
