//! Index mappings, document sources and query bodies for OpenSearch and Elasticsearch.

use serde_json::{json, Map, Value};
use splade_sparse::SparseView;

use super::tokens::TokenMap;
use crate::document::ExportDocument;
use crate::error::{EngineError, Result};

/// The default name of the vector field.
pub const DEFAULT_FIELD: &str = "splade";

/// Which engine and field type the bodies are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LuceneEngine {
    /// OpenSearch `rank_features` (exact `neural_sparse` search), keys = tokens.
    OpenSearchRankFeatures,
    /// OpenSearch 3.3+ `sparse_vector` with the `seismic` method (approximate), keys =
    /// token ids.
    OpenSearchSeismic,
    /// Elasticsearch `sparse_vector`, keys = tokens.
    Elasticsearch,
}

impl LuceneEngine {
    /// Whether keys are tokens (and a vocabulary is needed) rather than token ids.
    pub fn needs_vocabulary(self) -> bool {
        self != LuceneEngine::OpenSearchSeismic
    }
}

/// The body of `PUT /INDEX` creating the index: the vector field (and a `text` field when
/// `with_text`).
pub fn mapping(engine: LuceneEngine, field: &str, with_text: bool) -> Value {
    let vector = match engine {
        LuceneEngine::OpenSearchRankFeatures => json!({"type": "rank_features"}),
        LuceneEngine::OpenSearchSeismic => json!({
            "type": "sparse_vector",
            "method": {"name": "seismic"}
        }),
        LuceneEngine::Elasticsearch => json!({"type": "sparse_vector"}),
    };
    let mut properties = Map::new();
    properties.insert(field.to_string(), vector);
    if with_text {
        properties.insert("text".into(), json!({"type": "text"}));
    }
    let mut body = json!({"mappings": {"properties": properties}});
    if engine == LuceneEngine::OpenSearchSeismic {
        body["settings"] = json!({"index": {"sparse": true}});
    }
    body
}

/// The map of one vector: `{token: weight}` through `tokens`, or for the seismic field
/// `{"token id": weight}` (ids checked to fit its 16 bits).
fn vector_map(
    engine: LuceneEngine,
    tokens: Option<&TokenMap>,
    v: SparseView<'_>,
) -> Result<Map<String, Value>> {
    if engine.needs_vocabulary() {
        let tokens = tokens.ok_or_else(|| {
            EngineError::Input("token keys need the model's vocabulary (--model)".into())
        })?;
        return tokens.encode(v);
    }
    let mut map = Map::with_capacity(v.nnz());
    for (&t, &w) in v.indices().iter().zip(v.values()) {
        if w < f32::MIN_POSITIVE {
            continue;
        }
        if t > u16::MAX as u32 {
            return Err(EngineError::Input(format!(
                "term id {t}: OpenSearch's seismic sparse_vector keeps token ids in 16 bits (at most {})",
                u16::MAX
            )));
        }
        map.insert(t.to_string(), Value::from(w));
    }
    Ok(map)
}

/// The `_source` of one document: `{field: map, "text"?: text}`.
pub fn document_source(
    engine: LuceneEngine,
    tokens: Option<&TokenMap>,
    doc: &ExportDocument,
    field: &str,
    with_text: bool,
) -> Result<Value> {
    let mut source = Map::new();
    let map = vector_map(engine, tokens, doc.vector.view())
        .map_err(|e| EngineError::Input(format!("document {:?}: {e}", doc.id)))?;
    source.insert(field.to_string(), Value::Object(map));
    if with_text {
        if let Some(text) = &doc.text {
            source.insert("text".into(), Value::String(text.clone()));
        }
    }
    Ok(Value::Object(source))
}

/// The search body for one query vector, the `k` best documents: OpenSearch
/// `neural_sparse` with `query_tokens`, or Elasticsearch `sparse_vector` with
/// `query_vector`.
pub fn query_body(
    engine: LuceneEngine,
    tokens: Option<&TokenMap>,
    query: SparseView<'_>,
    field: &str,
    k: usize,
) -> Result<Value> {
    let map = Value::Object(vector_map(engine, tokens, query)?);
    Ok(match engine {
        LuceneEngine::OpenSearchRankFeatures | LuceneEngine::OpenSearchSeismic => json!({
            "size": k,
            "query": {"neural_sparse": {field: {"query_tokens": map}}}
        }),
        LuceneEngine::Elasticsearch => json!({
            "size": k,
            "query": {"sparse_vector": {"field": field, "query_vector": map}}
        }),
    })
}

/// A `_msearch` request for several queries: per query a header line
/// `{"index": INDEX}` and the body line of [`query_body`], newline-terminated.
pub fn msearch_lines(
    engine: LuceneEngine,
    tokens: Option<&TokenMap>,
    queries: &[SparseView<'_>],
    field: &str,
    index: &str,
    k: usize,
) -> Result<String> {
    let mut out = String::new();
    for q in queries {
        out.push_str(&json!({"index": index}).to_string());
        out.push('\n');
        out.push_str(&query_body(engine, tokens, *q, field, k)?.to_string());
        out.push('\n');
    }
    Ok(out)
}
