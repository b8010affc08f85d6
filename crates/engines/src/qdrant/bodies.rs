//! The JSON bodies splade-rs sends to Qdrant, each checked against Qdrant's published
//! OpenAPI schema by the tests (`fixtures/engines/qdrant/openapi.json`).

use std::path::Path;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use splade_sparse::SparseView;

use super::{DOC_ID_KEY, TEXT_KEY};
use crate::atomic::write_atomic;
use crate::document::ExportDocument;
use crate::error::{EngineError, Result};

/// How the collection's sparse vector is named and modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdrantVectors {
    /// The sparse vector's name.
    pub name: String,
    /// Whether Qdrant applies its IDF modifier at query time.
    pub idf: bool,
}

impl Default for QdrantVectors {
    fn default() -> Self {
        Self {
            name: super::DEFAULT_VECTOR_NAME.to_string(),
            idf: false,
        }
    }
}

/// The point id of document `doc_id`: a UUID from the first 16 bytes of the id's SHA-256,
/// with the version nibble set to 8 (RFC 9562 "custom") and the RFC 4122 variant bits.
pub fn point_id(doc_id: &str) -> String {
    let digest = Sha256::digest(doc_id.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `{"indices": [...], "values": [...]}`, zero weights left out.
fn sparse(v: SparseView<'_>) -> Value {
    let (indices, values): (Vec<u32>, Vec<f32>) = v
        .indices()
        .iter()
        .zip(v.values())
        .filter(|(_, &w)| w != 0.0)
        .map(|(&i, &w)| (i, w))
        .unzip();
    json!({"indices": indices, "values": values})
}

/// The body of `PUT /collections/{name}`: one named sparse vector, `modifier: idf` only
/// when asked.
pub fn collection_body(vectors: &QdrantVectors) -> Value {
    let params = if vectors.idf {
        json!({"modifier": "idf"})
    } else {
        json!({})
    };
    json!({"sparse_vectors": {vectors.name.clone(): params}})
}

/// One point (Qdrant's `PointStruct`): the document's point id, its named sparse vector and
/// the payload `{"doc_id", "text"?}`.
pub fn point(doc: &ExportDocument, vector_name: &str, with_text: bool) -> Value {
    let mut payload = Map::new();
    payload.insert(DOC_ID_KEY.into(), Value::String(doc.id.clone()));
    if with_text {
        if let Some(text) = &doc.text {
            payload.insert(TEXT_KEY.into(), Value::String(text.clone()));
        }
    }
    json!({
        "id": point_id(&doc.id),
        "vector": {vector_name: sparse(doc.vector.view())},
        "payload": payload,
    })
}

/// The body of `PUT /collections/{name}/points` (`PointsList`).
pub fn upsert_body(points: Vec<Value>) -> Value {
    json!({ "points": points })
}

/// The body of `POST /collections/{name}/points/query` for one query vector: the `k`
/// nearest by the named sparse vector, with the `doc_id` payload.
pub fn query_body(query: SparseView<'_>, vector_name: &str, k: usize) -> Value {
    json!({
        "query": sparse(query),
        "using": vector_name,
        "limit": k,
        "with_payload": [DOC_ID_KEY],
    })
}

/// The body of `POST /collections/{name}/points/query/batch`.
pub fn query_batch_body(queries: &[SparseView<'_>], vector_name: &str, k: usize) -> Value {
    json!({"searches": queries.iter().map(|q| query_body(*q, vector_name, k)).collect::<Vec<_>>()})
}

/// The body of `POST /collections/{name}/points/count` (exact).
pub fn count_body() -> Value {
    json!({"exact": true})
}

/// Writes `docs` as a points file: one `PointStruct` per line, in order, atomically.
/// Ids must be unique (see [`crate::document::check_unique_ids`]).
pub fn write_points_file(
    path: &Path,
    docs: &[ExportDocument],
    vector_name: &str,
    with_text: bool,
) -> Result<()> {
    crate::document::check_unique_ids(docs, "the documents to export")?;
    write_atomic(path, |out| {
        use std::io::Write;
        for doc in docs {
            serde_json::to_writer(&mut *out, &point(doc, vector_name, with_text))
                .map_err(|e| EngineError::io(path, e.into()))?;
            out.write_all(b"\n").map_err(|e| EngineError::io(path, e))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use splade_sparse::SparseVector;

    #[test]
    fn point_ids_are_stable_uuids() {
        let a = point_id("doc-1");
        assert_eq!(a, point_id("doc-1"));
        assert_ne!(a, point_id("doc-2"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        // Pinned: a change here would duplicate every point of an existing collection.
        assert_eq!(point_id(""), "e3b0c442-98fc-8c14-9afb-f4c8996fb924");
    }

    #[test]
    fn points_leave_out_zero_weights_and_keep_the_id_in_the_payload() {
        let v = SparseVector::new(vec![1, 5, 9], vec![0.5, 0.0, 2.0]).unwrap();
        let mut d = ExportDocument::new("Global warming:14", v);
        d.text = Some("t".into());
        let p = point(&d, "splade", true);
        assert_eq!(p["vector"]["splade"]["indices"], json!([1, 9]));
        assert_eq!(p["vector"]["splade"]["values"], json!([0.5, 2.0]));
        assert_eq!(
            p["payload"],
            json!({"doc_id": "Global warming:14", "text": "t"})
        );
        assert_eq!(
            point(&d, "splade", false)["payload"],
            json!({"doc_id": "Global warming:14"})
        );
    }
}
