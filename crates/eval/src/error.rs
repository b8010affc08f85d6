//! Errors of the evaluation crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading evaluation data or computing metrics.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a data file is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A parquet file (or folder of the Hugging Face parquet layout) is unusable.
    #[error("{}: {message}", path.display())]
    Parquet {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The evaluation data as a whole is unusable (e.g. no query has a relevant document).
    #[error("{0}")]
    InvalidData(String),
    /// An argument is out of range (e.g. an empty list of cut-offs).
    #[error("{0}")]
    InvalidArgument(String),
    /// The encoder failed.
    #[error(transparent)]
    Encoder(#[from] splade_encoder::EncoderError),
    /// The index failed (building or searching the corpus index).
    #[error(transparent)]
    Index(#[from] splade_index::IndexError),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, EvalError>;
