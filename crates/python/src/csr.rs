//! CSR batches across the Python boundary. A batch travels as three little-endian byte
//! buffers, the arrays of a scipy `csr_matrix`: `indptr` (i64, rows + 1), `indices` (i32,
//! ascending within a row) and `data` (f32), plus the number of columns. The Python side
//! wraps the buffers with `numpy.frombuffer` (no copy) and sorts a matrix's indices before
//! sending it.

use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use splade_sparse::{SparseBatch, SparseView};

use crate::errors;

/// A CSR matrix as byte buffers: `(indptr i64, indices i32, data f32, rows, cols)`.
pub type CsrBytes = (
    Py<PyByteArray>,
    Py<PyByteArray>,
    Py<PyByteArray>,
    usize,
    usize,
);

/// `batch` as [`CsrBytes`].
pub fn to_python(py: Python<'_>, batch: &SparseBatch) -> CsrBytes {
    let (indptr, indices, values) = batch.csr();
    let indptr: Vec<u8> = indptr
        .iter()
        .flat_map(|&p| (p as i64).to_le_bytes())
        .collect();
    let indices: Vec<u8> = indices
        .iter()
        .flat_map(|&i| (i as i32).to_le_bytes())
        .collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (
        PyByteArray::new(py, &indptr).unbind(),
        PyByteArray::new(py, &indices).unbind(),
        PyByteArray::new(py, &data).unbind(),
        batch.len(),
        batch.dim(),
    )
}

fn words<const N: usize>(bytes: &[u8], what: &str) -> PyResult<Vec<[u8; N]>> {
    if bytes.len() % N != 0 {
        return Err(errors::value(format!(
            "CSR {what}: {} bytes is not a whole number of {N}-byte values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks of N bytes"))
        .collect())
}

/// Reads a CSR matrix of `cols` columns from its byte buffers, checking the structure
/// (`indptr` from 0, non-decreasing, ending at the number of entries; indices in
/// `0..cols` and strictly ascending within each row; finite values). Errors name the row.
pub fn from_bytes(
    indptr: &[u8],
    indices: &[u8],
    data: &[u8],
    cols: usize,
) -> PyResult<SparseBatch> {
    let indptr: Vec<i64> = words::<8>(indptr, "indptr")?
        .into_iter()
        .map(i64::from_le_bytes)
        .collect();
    let indices: Vec<i32> = words::<4>(indices, "indices")?
        .into_iter()
        .map(i32::from_le_bytes)
        .collect();
    let data: Vec<f32> = words::<4>(data, "data")?
        .into_iter()
        .map(f32::from_le_bytes)
        .collect();
    if indices.len() != data.len() {
        return Err(errors::value(format!(
            "CSR: {} indices but {} values",
            indices.len(),
            data.len()
        )));
    }
    if indptr.first() != Some(&0) || indptr.last() != Some(&(indices.len() as i64)) {
        return Err(errors::value(
            "CSR indptr must start at 0 and end at the number of stored values",
        ));
    }
    let mut batch = SparseBatch::new(cols);
    let mut row_indices: Vec<u32> = Vec::new();
    for (r, w) in indptr.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(errors::value(format!("CSR indptr decreases at row {r}")));
        }
        let (s, e) = (w[0] as usize, w[1] as usize);
        row_indices.clear();
        for &i in &indices[s..e] {
            if i < 0 || i as usize >= cols {
                return Err(errors::value(format!(
                    "row {r}: column {i} is outside 0..{cols}"
                )));
            }
            row_indices.push(i as u32);
        }
        let row = SparseView::new(&row_indices, &data[s..e])
            .map_err(|err| errors::value(format!("row {r}: {err}")))?;
        batch
            .push(row)
            .map_err(|err| errors::value(format!("row {r}: {err}")))?;
    }
    Ok(batch)
}
