//! `POST /tokenize` and `POST /decode`, as text-embeddings-inference.

use axum::extract::State;
use axum::Json;

use crate::error::{ApiError, ErrorType};
use crate::json::JsonBody;
use crate::state::SharedState;
use crate::types::{DecodeRequest, InputIds, SimpleToken, TokenizeInput, TokenizeRequest};

/// Tokens of each text (`[[{"id", "text", "special", "start", "stop"}]]`), untruncated, with
/// the prompt prepended when `prompt_name` names one (offsets then refer to the prompted
/// text, as in TEI).
pub async fn tokenize(
    State(state): State<SharedState>,
    JsonBody(req): JsonBody<TokenizeRequest>,
) -> Result<Json<Vec<Vec<SimpleToken>>>, ApiError> {
    let texts = match req.inputs {
        TokenizeInput::Single(s) => vec![s],
        TokenizeInput::Batch(b) => {
            state
                .check_batch(b.len(), "inputs")
                .map_err(|e| state.failed(e))?;
            b
        }
    };
    let options = state
        .infer
        .options_for(req.prompt_name.as_deref())
        .map_err(|e| state.failed(e))?;
    let prompt = state
        .infer
        .encoder()
        .prompt_text(&options)
        .map_err(|e| state.failed(e.into()))?;
    let worker_state = state.clone();
    let add_special = req.add_special_tokens;
    let result = state
        .infer
        .run_blocking(move || {
            let tokenizer = worker_state.infer.encoder().tokenizer();
            texts
                .into_iter()
                .map(|text| {
                    let text = format!("{prompt}{text}");
                    let encoding = tokenizer.encoding(&text, add_special)?;
                    Ok(simple_tokens(&encoding, &text))
                })
                .collect::<Result<Vec<_>, splade_encoder::EncoderError>>()
        })
        .await
        .map_err(|e| state.failed(e))?;
    result.map(Json).map_err(|e| state.failed(e.into()))
}

fn simple_tokens(encoding: &splade_encoder::tokenize::Encoding, text: &str) -> Vec<SimpleToken> {
    encoding
        .get_ids()
        .iter()
        .zip(encoding.get_offsets())
        .zip(encoding.get_special_tokens_mask())
        .zip(encoding.get_tokens())
        .map(|(((&id, &(start, stop)), &special), token)| {
            if special == 1 {
                SimpleToken {
                    id,
                    text: token.clone(),
                    special: true,
                    start: None,
                    stop: None,
                }
            } else {
                let piece = text
                    .as_bytes()
                    .get(start..stop.max(start))
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                SimpleToken {
                    id,
                    text: piece,
                    special: false,
                    start: Some(start),
                    stop: Some(stop),
                }
            }
        })
        .collect()
}

/// Texts of token ids (`["..."]`, one per sequence).
pub async fn decode(
    State(state): State<SharedState>,
    JsonBody(req): JsonBody<DecodeRequest>,
) -> Result<Json<Vec<String>>, ApiError> {
    let sequences = match req.ids {
        InputIds::Single(ids) => vec![ids],
        InputIds::Batch(b) => {
            state
                .check_batch(b.len(), "ids")
                .map_err(|e| state.failed(e))?;
            b
        }
    };
    let worker_state = state.clone();
    let skip = req.skip_special_tokens;
    let result = state
        .infer
        .run_blocking(move || {
            let tokenizer = worker_state.infer.encoder().tokenizer();
            let max_id = tokenizer.max_token_id().unwrap_or(0);
            sequences
                .iter()
                .map(|ids| {
                    if let Some(bad) = ids.iter().find(|&&id| id > max_id) {
                        return Err(ApiError::validation(format!(
                            "Input validation error: token id {bad} is not in the vocabulary (ids go up to {max_id})"
                        )));
                    }
                    tokenizer.inner().decode(ids, skip).map_err(|e| {
                        ApiError::new(ErrorType::Tokenizer, format!("tokenizer error {e}"))
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await
        .map_err(|e| state.failed(e))?;
    result.map(Json).map_err(|e| state.failed(e))
}
