//! `GET /info`, `GET /health` (also `/`, `/ping`) and `GET /metrics`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::SharedState;

/// TEI's `Info` (`model_type: {"embedding": {"pooling": "splade"}}`, the batching limits,
/// the version) plus a `splade` object: the dimension, and the index when there is one.
pub async fn info(State(state): State<SharedState>) -> Json<Value> {
    let c = &state.config;
    let encoder = state.infer.encoder();
    let index = state.index.as_ref().map(|live| {
        let snapshot = live.snapshot();
        json!({
            "path": live.path().display().to_string(),
            "dim": snapshot.dim(),
            "documents": snapshot.len(),
            "segments": snapshot.num_segments(),
            "generation": snapshot.generation(),
        })
    });
    Json(json!({
        "model_id": c.model_id,
        "model_sha": null,
        "model_dtype": "float32",
        "served_model_name": c.model_id,
        "model_type": {"embedding": {"pooling": "splade"}},
        "max_concurrent_requests": c.max_concurrent_requests,
        "max_input_length": encoder.max_seq_length(),
        "max_batch_tokens": c.max_batch_tokens,
        "max_batch_requests": c.max_batch_requests,
        "max_client_batch_size": c.max_client_batch_size,
        "auto_truncate": c.auto_truncate,
        "tokenization_workers": c.tokenization_workers,
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
        "splade": {
            "dim": encoder.dim(),
            "similarity_fn_name": encoder.similarity_fn().to_string(),
            "prompts": encoder.prompts(),
            "index": index,
        },
    }))
}

/// 200 with an empty body, or 503 `Unhealthy` when the model thread or the index writer
/// is down.
pub async fn health(State(state): State<SharedState>) -> Result<(), ApiError> {
    state.check_health()
}

/// The Prometheus text exposition.
pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
