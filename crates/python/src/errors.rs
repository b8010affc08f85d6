//! Rust errors as Python exceptions: `OSError` for files, `ValueError` for everything the
//! caller gave wrong; the message is the error with its causes.

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::PyErr;
use splade_encoder::EncoderError;
use splade_index::IndexError;

/// The error and its sources joined by ": " (skipping a source the message already holds).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// An encoder error: files (reading a model folder, fetching the default model) are
/// `OSError`, the rest `ValueError`.
pub fn encoder(err: EncoderError) -> PyErr {
    let text = chain(&err);
    match err {
        EncoderError::Io { .. }
        | EncoderError::MissingFile { .. }
        | EncoderError::Hub { .. }
        | EncoderError::DefaultModel(_) => PyOSError::new_err(text),
        _ => PyValueError::new_err(text),
    }
}

/// An index error: files (I/O, damaged or locked indexes, refused directories) are
/// `OSError`, bad documents and arguments `ValueError`.
pub fn index(err: IndexError) -> PyErr {
    let text = chain(&err);
    match err {
        IndexError::InvalidDocument { .. }
        | IndexError::InvalidArgument(_)
        | IndexError::Input { .. } => PyValueError::new_err(text),
        _ => PyOSError::new_err(text),
    }
}

/// A `ValueError` with `text`.
pub fn value(text: impl Into<String>) -> PyErr {
    PyValueError::new_err(text.into())
}
