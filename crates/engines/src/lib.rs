//! splade-engines: SPLADE vectors into the distributed engines users grow into, with the
//! same scores on both sides. No ML dependency: documents come as vectors (a JSONL or
//! Seismic file, the live documents of a splade index, or vectors the caller encoded), and
//! token maps are built from a vocabulary the caller passes.
//!
//! - [`milvus`]: a collection keyed by document id with a `SPARSE_FLOAT_VECTOR` field
//!   (`SPARSE_INVERTED_INDEX`, metric `IP`), batched upserts with retries, flush and load,
//!   search. Run live in the tests against milvus-lite.
//! - [`qdrant`]: a named sparse vector (IDF modifier when asked) over Qdrant's REST API, and
//!   points files in Qdrant's JSON shape. The requests are checked against Qdrant's OpenAPI
//!   schema; points files are loaded into Qdrant's own engine (qdrant-edge-py) by the tests.
//! - [`lucene`]: OpenSearch (`rank_features`, 3.3+ `sparse_vector` seismic) and
//!   Elasticsearch (`sparse_vector`): token maps from the model's vocabulary, mappings,
//!   `_bulk` lines, query bodies. Shape-checked against their documentation.
//!
//! ## Why Milvus's gRPC API (the `milvus-sdk-rust` crate) and not REST v2
//!
//! milvus-lite 3.2 (`milvus-lite server`), the only Milvus that runs on the test machines,
//! serves Milvus's gRPC API and nothing else: a REST v2 request to its port gets no HTTP
//! answer (checked: `POST /v2/vectordb/collections/list` fails at the protocol level). A
//! REST client could therefore never be tested against a real server here, while the
//! official SDK's gRPC client is (upsert, flush, load, count, sparse search; see
//! `tests/engines/milvus.rs`). The SDK also brings the Milvus-side retries of transient
//! errors; the export adds its own bounded retries per batch ([`retry::RetryPolicy`]).
//! Its one gap with milvus-lite: index creation must not wait on `AllocTimestamp`, which
//! milvus-lite does not implement, so the index is created with `sync(false)` and loading
//! waits instead.

#![warn(missing_docs)]

pub mod atomic;
pub mod document;
pub mod error;
pub mod lucene;
pub mod milvus;
pub mod qdrant;
pub mod retry;

pub use document::{DocumentSource, ExportDocument};
pub use error::{EngineError, Result};

/// One hit returned by an engine: the document id and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineHit {
    /// The document id.
    pub id: String,
    /// The engine's score (an inner product).
    pub score: f32,
}
