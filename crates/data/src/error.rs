//! Errors of the data readers. Every variant names the file (or the input, such as
//! `<stdin>`), and a malformed line its 1-based number.

use std::path::PathBuf;

/// What can go wrong reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a data file is malformed.
    #[error("{}: line {line}: {message}", path.display())]
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
    /// The data as a whole is unusable (e.g. no dataset in a folder).
    #[error("{0}")]
    InvalidData(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DataError>;
