//! Errors of sparse vector construction and arithmetic.

/// Why a sparse vector or batch was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SparseError {
    /// `indices` and `values` differ in length.
    #[error("sparse vector has {indices} indices but {values} values")]
    LengthMismatch {
        /// Number of indices.
        indices: usize,
        /// Number of values.
        values: usize,
    },
    /// Indices are not strictly ascending (unsorted or duplicated).
    #[error("sparse vector indices must be strictly ascending: index {index} at position {position} follows {previous}")]
    NotAscending {
        /// Position of the offending index.
        position: usize,
        /// The index before it.
        previous: u32,
        /// The offending index.
        index: u32,
    },
    /// A value is NaN or infinite.
    #[error("sparse vector value at position {position} (index {index}) is not finite")]
    NonFinite {
        /// Position of the value.
        position: usize,
        /// Its index.
        index: u32,
    },
    /// An index does not fit the declared dimension.
    #[error("sparse index {index} is out of range for dimension {dim}")]
    IndexOutOfRange {
        /// The index.
        index: u32,
        /// The dimension.
        dim: usize,
    },
    /// An unknown similarity function name.
    #[error(
        "unknown similarity function '{0}' (expected one of: dot, cosine, euclidean, manhattan)"
    )]
    UnknownSimilarity(String),
}
