//! `POST /documents` (upsert) and `DELETE /documents`: answered once the change is
//! committed durably and visible to searches (see [`crate::live_index`]).

use axum::extract::State;
use axum::Json;
use splade_sparse::SparseVector;

use crate::error::ApiError;
use crate::json::JsonBody;
use crate::routes::search::check_vector;
use crate::state::{Item, SharedState};
use crate::types::{DeleteRequest, DocumentInput, SparseInput, UpdateResponse};

/// Adds or replaces documents: `[{"id", "text"} | {"id", "indices", "values"}, ...]`. Texts
/// are encoded with the model's document encoding (at most `--max-client-batch-size` texts
/// per request); vectors are taken as given.
pub async fn upsert(
    State(state): State<SharedState>,
    JsonBody(docs): JsonBody<Vec<DocumentInput>>,
) -> Result<Json<UpdateResponse>, ApiError> {
    let live = state.live_index()?.clone();
    if docs.is_empty() {
        return Err(ApiError::empty("the document list cannot be empty"));
    }
    let mut ids = Vec::with_capacity(docs.len());
    let mut items = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        splade_index::readers::check_id(&doc.id)
            .map_err(|m| ApiError::validation(format!("document #{i}: `id`: {m}")))?;
        items.push(match (doc.text, doc.indices, doc.values) {
            (Some(text), None, None) => Item::Text(text),
            (None, Some(indices), Some(values)) => Item::Vector(check_vector(
                SparseInput { indices, values },
                "document",
                i,
            )?),
            _ => {
                return Err(ApiError::validation(format!(
                    "document #{i} ({}): give either `text` or both `indices` and `values`",
                    doc.id
                )))
            }
        });
        ids.push(doc.id);
    }
    let texts = items
        .iter()
        .filter(|item| matches!(item, Item::Text(_)))
        .count();
    if texts > 0 {
        state.check_batch(texts, "texts")?;
    }
    let vectors = state.vectors_of(items, "document").await?;
    let docs: Vec<(String, SparseVector)> = ids.into_iter().zip(vectors).collect();
    let answer = live.upsert(docs).await?;
    Ok(Json(answer))
}

/// Deletes documents by id: `{"ids": [...]}` (unknown ids are not counted).
pub async fn delete(
    State(state): State<SharedState>,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> Result<Json<UpdateResponse>, ApiError> {
    let live = state.live_index()?.clone();
    if req.ids.is_empty() {
        return Err(ApiError::empty("`ids` cannot be empty"));
    }
    Ok(Json(live.delete(req.ids).await?))
}
