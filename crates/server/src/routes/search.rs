//! `POST /search`: one query (`query`) or a batch (`queries`), texts encoded with the
//! model's query encoding or given as vectors; the same hits, scores and order as
//! `splade search` on the same index state.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use splade_index::{format::MAX_WEIGHT, Index, Method, SearchOptions};
use splade_sparse::SparseVector;

use crate::error::{ApiError, ErrorType};
use crate::json::JsonBody;
use crate::state::{Item, SharedState};
use crate::types::{
    BatchSearchResponse, QueryInput, SearchHit, SearchRequest, SearchResult, SparseInput,
    TermExplanation,
};

/// Searches the live index (a snapshot taken after the queries are encoded).
pub async fn search(
    State(state): State<SharedState>,
    JsonBody(req): JsonBody<SearchRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let method = if req.queries.is_some() {
        "batch"
    } else {
        "single"
    };
    state
        .metrics
        .count("splade_search_count", &[("method", method)]);
    let result = run(&state, req).await;
    state
        .metrics
        .time("splade_search_duration", start.elapsed());
    match result {
        Ok(response) => Ok(response),
        Err(e) => {
            state.metrics.count(
                "splade_search_failure",
                &[("err", e.error_type.metric_label())],
            );
            Err(e)
        }
    }
}

async fn run(state: &SharedState, req: SearchRequest) -> Result<Response, ApiError> {
    let live = state.live_index()?.clone();
    let (queries, batch) = match (req.query, req.queries) {
        (Some(q), None) => (vec![q], false),
        (None, Some(qs)) => {
            state.check_batch(qs.len(), "queries")?;
            (qs, true)
        }
        _ => {
            return Err(ApiError::validation(
                "give exactly one of `query` (one query) and `queries` (a batch)",
            ))
        }
    };
    if req.k == 0 {
        return Err(ApiError::validation("`k` must be at least 1"));
    }
    let method = match req.approx {
        None => Method::Exact,
        Some(a) => Method::from_knobs(a.alpha.unwrap_or(1.0), a.beta.unwrap_or(1.0))
            .map_err(|e| ApiError::validation(format!("`approx`: {e}")))?,
    };
    let options = SearchOptions {
        method,
        ..SearchOptions::new(req.k)
    };
    let vectors = query_vectors(state, queries, req.prompt_name.as_deref()).await?;
    let permit = state.infer.try_acquire(vectors.len())?;
    let snapshot = live.snapshot();
    let explain = req.explain;
    let worker_state = state.clone();
    let results = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        vectors
            .iter()
            .map(|q| hits(&worker_state, &snapshot, q, &options, explain))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| {
        ApiError::new(
            ErrorType::Backend,
            format!("Backend error: search failed: {e}"),
        )
    })?;
    Ok(if batch {
        Json(BatchSearchResponse { results }).into_response()
    } else {
        let one = results
            .into_iter()
            .next()
            .unwrap_or(SearchResult { hits: Vec::new() });
        Json(one).into_response()
    })
}

/// The queries as vectors: texts encoded (one model call for all of them, with the query
/// encoding unless `prompt_name` says otherwise), vectors checked.
async fn query_vectors(
    state: &SharedState,
    queries: Vec<QueryInput>,
    prompt_name: Option<&str>,
) -> Result<Vec<SparseVector>, ApiError> {
    let items = queries
        .into_iter()
        .enumerate()
        .map(|(i, q)| match q {
            QueryInput::Text(t) => Ok(Item::Text(t)),
            QueryInput::Vector(v) => check_vector(v, "query", i).map(Item::Vector),
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    state
        .vectors_of(items, prompt_name.unwrap_or("query"))
        .await
}

/// A vector of a request (`what` #`position`: a query or a document): strictly ascending
/// indices, one finite weight in `0..=MAX_WEIGHT` each.
pub fn check_vector(v: SparseInput, what: &str, position: usize) -> Result<SparseVector, ApiError> {
    if let Some(p) = v
        .values
        .iter()
        .position(|w| !(0.0..=MAX_WEIGHT).contains(w))
    {
        return Err(ApiError::validation(format!(
            "{what} #{position}: value {} at position {p} is negative, not finite or above {MAX_WEIGHT:e}",
            v.values[p]
        )));
    }
    SparseVector::new(v.indices, v.values)
        .map_err(|e| ApiError::validation(format!("{what} #{position}: {e}")))
}

fn hits(
    state: &SharedState,
    index: &Arc<Index>,
    query: &SparseVector,
    options: &SearchOptions,
    explain: Option<usize>,
) -> SearchResult {
    let encoder = state.infer.encoder();
    let hits = index
        .search(query.view(), options)
        .into_iter()
        .filter_map(|hit| {
            let id = index.id(hit.doc)?.to_string();
            let explain = explain.and_then(|n| {
                let e = index.explain(query.view(), hit.doc)?;
                Some(
                    e.terms
                        .iter()
                        .take(n)
                        .map(|t| TermExplanation {
                            token: encoder.dimension_name(t.term),
                            term: t.term,
                            query_weight: t.query_weight,
                            doc_weight: t.doc_weight,
                            contribution: t.contribution,
                        })
                        .collect(),
                )
            });
            Some(SearchHit {
                id,
                score: hit.score,
                explain,
            })
        })
        .collect();
    SearchResult { hits }
}
