//! Qdrant: a named sparse vector per point (optionally with Qdrant's IDF modifier), over
//! Qdrant's REST API or into a points file in Qdrant's JSON shape.
//!
//! Point ids: Qdrant accepts only unsigned integers and UUIDs, so a document id becomes a
//! UUID derived from it ([`point_id`]: the first 16 bytes of its SHA-256, marked as a
//! version 8 "custom" UUID), and the document id itself is kept in the payload as `doc_id`
//! (with `text` when asked). The same id always gives the same point, so exporting again
//! replaces points instead of adding them.
//!
//! Scores: without the IDF modifier Qdrant scores sparse vectors by their dot product, the
//! score of our index. With `--idf` Qdrant multiplies each query weight by an IDF computed
//! from its collection at query time: rankings then differ from ours by design.

mod bodies;
mod export;
mod rest;

pub use bodies::{
    collection_body, count_body, point, point_id, query_batch_body, query_body, upsert_body,
    write_points_file, QdrantVectors,
};
pub use export::{export_qdrant, QdrantExportOptions, QdrantExportReport};
pub use rest::{QdrantRest, Request};

/// The payload key holding the document id.
pub const DOC_ID_KEY: &str = "doc_id";
/// The payload key holding the text (`--store-text`).
pub const TEXT_KEY: &str = "text";
/// The default name of the sparse vector.
pub const DEFAULT_VECTOR_NAME: &str = "splade";
