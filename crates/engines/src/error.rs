//! One error type for every engine: each variant names what it was doing (the file, line,
//! field, server address or document id), so a failed export says where to look.

use std::path::PathBuf;

/// What went wrong while reading documents or talking to an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An input (vectors, index, vocabulary, query) is not what the engine can take.
    #[error("{0}")]
    Input(String),
    /// An address (`milvus://HOST:PORT/COLLECTION`, `--url`) could not be understood.
    #[error("{address:?}: {message}")]
    Address {
        /// The address as given.
        address: String,
        /// Why it was refused.
        message: String,
    },
    /// Milvus refused a request or could not be reached.
    #[error("Milvus at {uri}: {action}: {message}")]
    Milvus {
        /// The server's URI.
        uri: String,
        /// What was being done (`creating collection scifact`, `upserting documents 0..500`).
        action: String,
        /// The SDK's or the server's message.
        message: String,
    },
    /// An HTTP engine (Qdrant, OpenSearch, Elasticsearch) refused a request or could not be
    /// reached.
    #[error("{method} {url}: {message}")]
    Http {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The status and body of the answer, or the transport error.
        message: String,
    },
    /// The engine's collection exists but does not have the layout splade-rs writes.
    #[error("{0}")]
    Collection(String),
    /// An error of the index crate (opening an index, reading vector files).
    #[error(transparent)]
    Index(#[from] splade_index::IndexError),
}

impl EngineError {
    /// An [`EngineError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
