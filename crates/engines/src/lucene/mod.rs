//! OpenSearch and Elasticsearch (both on Lucene): token maps from the model's vocabulary,
//! the index mappings, `_bulk` lines and query bodies. These engines do not run on the test
//! machines: the bodies are checked against the shapes their documentation gives
//! (`fixtures/engines/lucene`), and the token maps by a round trip back to our vectors.
//!
//! | engine | field | document value | query |
//! |---|---|---|---|
//! | OpenSearch (2.11+) | `rank_features` | `{token: weight}` | `neural_sparse` with `query_tokens` |
//! | OpenSearch (3.3+) | `sparse_vector`, method `seismic` | `{"token id": weight}` | `neural_sparse` with `query_tokens` (token ids) |
//! | Elasticsearch (8.11+) | `sparse_vector` | `{token: weight}` | `sparse_vector` with `query_vector` |
//!
//! What the formats cannot hold (measured by the tests, reported in SCALE.md): Lucene keeps
//! `rank_features` and Elasticsearch `sparse_vector` weights with 9 significant bits
//! ([`lucene_feature_value`], relative error below 2^-8 = 0.4 %); OpenSearch's seismic
//! field keeps token ids in 16 bits and quantizes weights to a byte with a ceiling
//! (`quantization_ceiling_ingest`, default 3: larger weights are clipped).

mod bodies;
mod bulk;
mod tokens;

pub use bodies::{
    document_source, mapping, msearch_lines, query_body, LuceneEngine, DEFAULT_FIELD,
};
pub use bulk::{post_bulk, write_bulk_file};
pub use tokens::{lucene_feature_value, TokenMap};
