//! Milvus: a collection keyed by document id with a `SPARSE_FLOAT_VECTOR` field, indexed with
//! `SPARSE_INVERTED_INDEX` and metric `IP` (the inner product our index ranks by), written
//! by batched upserts and searched with query vectors.
//!
//! The collection splade-rs writes:
//!
//! | field | type | |
//! |---|---|---|
//! | `id` | VarChar (max 65,535 bytes), primary key | the document id |
//! | `vector` | SparseFloatVector | term id -> weight, zero weights left out |
//! | `text` | VarChar (max 65,535 bytes) | only with `--store-text` |

mod address;
mod client;
mod export;

pub use address::MilvusTarget;
pub use client::{CollectionLayout, MilvusCollection, MAX_HITS_PER_REQUEST, MAX_K};
pub use export::{export_milvus, MilvusExportOptions, MilvusExportReport};

/// The primary key field: the document id.
pub const ID_FIELD: &str = "id";
/// The sparse vector field.
pub const VECTOR_FIELD: &str = "vector";
/// The optional text field.
pub const TEXT_FIELD: &str = "text";
/// Longest id (bytes) the primary key holds: Milvus's VarChar maximum.
pub const MAX_ID_BYTES: usize = 65_535;
/// Longest text (bytes) the text field holds.
pub const MAX_TEXT_BYTES: usize = 65_535;
