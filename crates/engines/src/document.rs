//! The documents an export sends: an id, a sparse vector and, optionally, the text; and
//! where they come from (a vector file, a Seismic file pair, the live documents of an index,
//! or documents the caller encoded).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use splade_index::readers::{open_jsonl, read_seismic};
use splade_index::Index;
use splade_sparse::SparseVector;

use crate::error::{EngineError, Result};

/// One document to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportDocument {
    /// The document's id (the engine's primary key, or the payload's `doc_id` for Qdrant).
    pub id: String,
    /// Its sparse vector (term ids ascending, weights finite and `>= 0`).
    pub vector: SparseVector,
    /// Its text, stored beside the vector when asked (`--store-text`).
    pub text: Option<String>,
}

impl ExportDocument {
    /// A document without text.
    pub fn new(id: impl Into<String>, vector: SparseVector) -> Self {
        Self {
            id: id.into(),
            vector,
            text: None,
        }
    }
}

/// Where the documents of an export are read from.
#[derive(Debug, Clone)]
pub enum DocumentSource {
    /// A JSONL vector file (`{"id", "indices", "values"}` per line).
    Jsonl(PathBuf),
    /// A Seismic/kANNolo binary vector file and its id file.
    Seismic {
        /// The binary vectors.
        vectors: PathBuf,
        /// One id per line, in the same order.
        ids: PathBuf,
    },
    /// The live documents of a splade index (deleted documents are not exported).
    Index(PathBuf),
}

impl DocumentSource {
    /// Reads every document of the source, in order (an index in document-number order).
    /// Vectors are checked as the readers of `splade-index` check them; errors name the file
    /// and line.
    pub fn read_all(&self) -> Result<Vec<ExportDocument>> {
        match self {
            DocumentSource::Jsonl(path) => {
                let reader = open_jsonl(path, None)?;
                let mut docs = Vec::new();
                for doc in reader {
                    let doc = doc?;
                    docs.push(ExportDocument::new(doc.id, doc.vector));
                }
                Ok(docs)
            }
            DocumentSource::Seismic { vectors, ids } => Ok(read_seismic(vectors, ids, None)?
                .into_iter()
                .map(|d| ExportDocument::new(d.id, d.vector))
                .collect()),
            DocumentSource::Index(dir) => index_documents(dir),
        }
    }
}

/// The live documents of the index in `dir`, in document-number order.
pub fn index_documents(dir: &Path) -> Result<Vec<ExportDocument>> {
    let index = Index::open(dir)?;
    let mut docs = Vec::with_capacity(index.len());
    for doc in 0..index.max_doc() as u32 {
        let (Some(id), Some(view)) = (index.id(doc), index.document(doc)) else {
            continue; // deleted
        };
        let vector = SparseVector::new(view.indices().to_vec(), view.values().to_vec())
            .map_err(|e| EngineError::Input(format!("{}: document {id:?}: {e}", dir.display())))?;
        docs.push(ExportDocument::new(id, vector));
    }
    Ok(docs)
}

/// Checks that no id occurs twice (an engine keyed by id would keep only the last one, and
/// the export would silently hold fewer documents than its input).
pub fn check_unique_ids(docs: &[ExportDocument], source: &str) -> Result<()> {
    let mut seen = HashSet::with_capacity(docs.len());
    for (n, d) in docs.iter().enumerate() {
        if !seen.insert(d.id.as_str()) {
            return Err(EngineError::Input(format!(
                "{source}: document {} repeats the id {:?} of an earlier document (an engine keeps one document per id)",
                n + 1,
                d.id
            )));
        }
    }
    Ok(())
}
