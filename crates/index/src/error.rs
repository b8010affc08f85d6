//! Errors of index construction, persistence, reading and search.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Errors about files name the file; errors
/// about input records name the record (line or vector number) and, where it applies, the
/// field.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// An operating-system error while reading or writing `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An index file is damaged: wrong size, failed checksum, or inconsistent structure.
    #[error("{path}: corrupt index file: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The index was written in a format or version this build cannot read.
    #[error("{path}: unsupported index format {found} (this build reads {expected})")]
    UnsupportedFormat {
        /// The manifest.
        path: PathBuf,
        /// The format and version found.
        found: String,
        /// The format and version supported.
        expected: String,
    },
    /// A record of an input file (JSONL line, binary vector) is invalid.
    #[error("{source_name}: {location}: {message}")]
    Input {
        /// The input file.
        source_name: String,
        /// `line N` or `vector N` (1-based), optionally with a field.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A document handed to [`crate::IndexBuilder::add`] was rejected.
    #[error("document '{id}': {message}")]
    InvalidDocument {
        /// The external id of the document.
        id: String,
        /// Why it was rejected.
        message: String,
    },
    /// Another [`crate::IndexWriter`] holds the index's write lock.
    #[error("{path}: another IndexWriter holds this index's write lock")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The manifest changed between an [`crate::IndexWriter`]'s open (or last commit) and
    /// its commit; nothing was committed.
    #[error("{path}: changed since this writer opened it (another writer or a rebuild?); nothing was committed")]
    Conflict {
        /// The manifest.
        path: PathBuf,
    },
    /// The directory to write an index into is not empty and holds no splade index;
    /// nothing was written or removed.
    #[error("{path}: not empty and not a splade index (it holds '{example}'); nothing was written there: choose a new or empty directory")]
    NotAnIndex {
        /// The directory.
        path: PathBuf,
        /// One of its entries.
        example: String,
    },
    /// The directory to build an index into already holds one, and replacing it was not
    /// asked for.
    #[error("{path}: already holds a splade index; replace it explicitly (`splade index build --overwrite`, IndexBuilder::write_over) or choose another directory")]
    IndexExists {
        /// The directory.
        path: PathBuf,
    },
    /// A path that must be a directory is a file (or something else).
    #[error("{path}: exists and is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// An argument out of its valid range (block size, thread count, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result with [`IndexError`].
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
