//! Token-weight routes for the engines that call an inference endpoint themselves:
//!
//! - `POST /elasticsearch/sparse_embedding`: `{"inputs": [...]}` → `[{"token": weight}]`,
//!   what Elasticsearch's `hugging_face` inference service expects for `sparse_embedding`;
//! - `POST /opensearch/sparse_embedding`: the same request → `{"response": [{"token":
//!   weight}]}`, the shape of OpenSearch neural-search's remote sparse models.
//!
//! `?prompt_name=query|document` selects the query or document encoding (an engine calls
//! one endpoint per inference endpoint/connector, so users register one of each). Weights
//! are the model's (always > 0); tokens are the vocabulary strings, `##` pieces included.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};
use splade_encoder::Truncation;

use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::SharedState;
use crate::types::{InputType, PromptQuery, TokenWeightsRequest, TokenizeInput};

async fn token_weights(
    state: &SharedState,
    prompt: PromptQuery,
    req: TokenWeightsRequest,
) -> Result<Vec<BTreeMap<String, f32>>, ApiError> {
    let texts = match req.inputs {
        TokenizeInput::Single(s) => vec![s],
        TokenizeInput::Batch(b) => b,
    };
    let start = std::time::Instant::now();
    state
        .metrics
        .count("te_request_count", &[("method", "batch")]);
    let run = async {
        state.check_batch(texts.len(), "inputs")?;
        let permit = state.infer.try_acquire(texts.len())?;
        let options = state
            .infer
            .request_encoding(prompt.prompt_name.as_deref())?;
        let inputs = texts.into_iter().map(InputType::String).collect();
        let encoded = state
            .infer
            .encode(inputs, options, Truncation::Right, &permit)
            .await?;
        let encoder = state.infer.encoder();
        Ok::<_, ApiError>(
            encoded
                .vectors
                .iter()
                .map(|v| {
                    v.indices()
                        .iter()
                        .zip(v.values())
                        .map(|(&id, &w)| (encoder.dimension_name(id), w))
                        .collect()
                })
                .collect(),
        )
    };
    let maps = run.await.map_err(|e| state.failed(e))?;
    state
        .metrics
        .count("te_request_success", &[("method", "batch")]);
    state.metrics.time("te_request_duration", start.elapsed());
    Ok(maps)
}

/// Elasticsearch's shape: `[{"token": weight, ...}, ...]`.
pub async fn elasticsearch(
    State(state): State<SharedState>,
    Query(prompt): Query<PromptQuery>,
    JsonBody(req): JsonBody<TokenWeightsRequest>,
) -> Result<Json<Vec<BTreeMap<String, f32>>>, ApiError> {
    Ok(Json(token_weights(&state, prompt, req).await?))
}

/// OpenSearch's shape: `{"response": [{"token": weight, ...}, ...]}`.
pub async fn opensearch(
    State(state): State<SharedState>,
    Query(prompt): Query<PromptQuery>,
    JsonBody(req): JsonBody<TokenWeightsRequest>,
) -> Result<Json<Value>, ApiError> {
    let maps = token_weights(&state, prompt, req).await?;
    Ok(Json(json!({ "response": maps })))
}
