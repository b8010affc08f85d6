//! sentence-transformers' sparse evaluators for Python (`splade_rs.evaluate_ir`,
//! `splade_rs.evaluate_binary`): splade-eval's `InformationRetrievalEvaluator` and
//! `BinaryClassificationEvaluator`, returning the same flat `(key, value)` lists, in the same
//! order, as sentence-transformers' dictionaries.

use std::collections::{HashMap, HashSet};

use pyo3::prelude::*;
use splade_eval::data::{LabeledPairs, RetrievalData};
use splade_eval::report::{binary_keys, ir_keys};
use splade_eval::{BinaryClassificationEvaluator, EvalError, InformationRetrievalEvaluator};

use crate::encoder::NativeEncoder;
use crate::errors;

fn eval_error(err: EvalError) -> PyErr {
    match err {
        EvalError::Encoder(e) => errors::encoder(e),
        other => errors::value(other.to_string()),
    }
}

/// `SparseInformationRetrievalEvaluator` over `corpus` and `queries` (`(id, text)` in
/// order) and `relevant` (query id -> relevant document ids), keys prefixed with `name`
/// when it is not empty; encoding and ranking run with the GIL released.
#[pyfunction]
#[pyo3(signature = (encoder, corpus, queries, relevant, name, batch_size=32, max_active_dims=None))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_ir(
    py: Python<'_>,
    encoder: &Bound<'_, NativeEncoder>,
    corpus: Vec<(String, String)>,
    queries: Vec<(String, String)>,
    relevant: HashMap<String, Vec<String>>,
    name: String,
    batch_size: usize,
    max_active_dims: Option<usize>,
) -> PyResult<Vec<(String, f64)>> {
    let relevant: HashMap<String, HashSet<String>> = relevant
        .into_iter()
        .map(|(q, docs)| (q, docs.into_iter().collect()))
        .collect();
    let data = RetrievalData {
        corpus,
        queries,
        relevant,
    };
    let with_name = !name.is_empty();
    let native = encoder.get();
    let mut ev = InformationRetrievalEvaluator::new(data, name).map_err(eval_error)?;
    ev.options.batch_size = batch_size;
    ev.options.max_active_dims = max_active_dims;
    let result = py
        .detach(|| ev.evaluate(native.inner()))
        .map_err(eval_error)?;
    Ok(ir_keys(&result, with_name))
}

/// `SparseBinaryClassificationEvaluator` over sentence pairs with 0/1 labels, keys
/// prefixed with `name` when it is not empty.
#[pyfunction]
#[pyo3(signature = (encoder, sentences1, sentences2, labels, name, batch_size=32, max_active_dims=None))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_binary(
    py: Python<'_>,
    encoder: &Bound<'_, NativeEncoder>,
    sentences1: Vec<String>,
    sentences2: Vec<String>,
    labels: Vec<i64>,
    name: String,
    batch_size: usize,
    max_active_dims: Option<usize>,
) -> PyResult<Vec<(String, f64)>> {
    if let Some(bad) = labels.iter().position(|&l| l != 0 && l != 1) {
        return Err(errors::value(format!(
            "label {bad} is {}: labels must be 0 or 1",
            labels[bad]
        )));
    }
    let pairs = LabeledPairs {
        sentences1,
        sentences2,
        labels: labels.iter().map(|&l| l == 1).collect(),
    };
    let native = encoder.get();
    let mut ev = BinaryClassificationEvaluator::new(pairs, name).map_err(eval_error)?;
    ev.options.batch_size = batch_size;
    ev.options.max_active_dims = max_active_dims;
    let result = py
        .detach(|| ev.evaluate(native.inner()))
        .map_err(eval_error)?;
    Ok(binary_keys(&result))
}
