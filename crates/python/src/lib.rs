//! Python bindings of splade-rs: the native module `splade_rs._native` of the `splade_rs`
//! package (built with maturin; the Python layer in `python/splade_rs` turns the flat
//! arrays exchanged here into numpy arrays and scipy CSR matrices).
//!
//! - [`encoder`]: `NativeEncoder`, the `SparseEncoder` of splade-encoder (encode, prompts,
//!   similarity, decode, sparsity, intersection).
//! - [`index`]: `NativeIndex`, a splade-index directory (build, open, add, delete, optimize,
//!   search, info).
//! - [`eval`]: sentence-transformers' sparse IR and binary-classification evaluators.
//! - [`train`]: `splade train` with its options as keyword arguments and a progress callback.
//! - [`csr`]: CSR batches across the boundary as little-endian byte buffers (`indptr` i64,
//!   `indices` i32, `data` f32), the layout of a scipy `csr_matrix`.
//!
//! Every model or index computation runs with the GIL released. Errors become Python
//! exceptions carrying the Rust message: `OSError` for files, `ValueError` for bad input.

#![warn(missing_docs)]

pub mod csr;
pub mod encoder;
mod errors;
pub mod eval;
pub mod index;
pub mod train;

use pyo3::prelude::*;

/// The native module `splade_rs._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<encoder::NativeEncoder>()?;
    m.add_class::<index::NativeIndex>()?;
    m.add_function(wrap_pyfunction!(encoder::similarity, m)?)?;
    m.add_function(wrap_pyfunction!(encoder::intersection, m)?)?;
    m.add_function(wrap_pyfunction!(eval::evaluate_ir, m)?)?;
    m.add_function(wrap_pyfunction!(eval::evaluate_binary, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add(
        "DEFAULT_MODEL",
        splade_encoder::default_model::DEFAULT_MODEL,
    )?;
    Ok(())
}
