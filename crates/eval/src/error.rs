//! Errors of the evaluation crate.

/// Everything that can go wrong while reading evaluation data or computing metrics.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The evaluation data as a whole is unusable (e.g. no query has a relevant document).
    #[error("{0}")]
    InvalidData(String),
    /// An argument is out of range (e.g. an empty list of cut-offs).
    #[error("{0}")]
    InvalidArgument(String),
    /// A dataset could not be read.
    #[error(transparent)]
    Data(#[from] splade_data::DataError),
    /// The encoder failed.
    #[error(transparent)]
    Encoder(#[from] splade_encoder::EncoderError),
    /// A sparse vector or batch was rejected.
    #[error(transparent)]
    Sparse(#[from] splade_sparse::SparseError),
    /// The index failed (building or searching the corpus index).
    #[error(transparent)]
    Index(#[from] splade_index::IndexError),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, EvalError>;
