//! A batch of sparse vectors in compressed sparse row (CSR) layout.

use crate::error::SparseError;
use crate::vector::{SparseVector, SparseView};

/// Rows of sparse vectors stored contiguously: row `r` spans `indptr[r]..indptr[r + 1]`
/// of `indices` and `values`. `dim` is the vocabulary size the indices live in.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseBatch {
    dim: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl SparseBatch {
    /// An empty batch whose rows live in `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Builds a batch from owned vectors; any index `>= dim` is an error.
    pub fn from_vectors<'a>(
        dim: usize,
        rows: impl IntoIterator<Item = &'a SparseVector>,
    ) -> Result<Self, SparseError> {
        let mut batch = Self::new(dim);
        for row in rows {
            batch.push(row.view())?;
        }
        Ok(batch)
    }

    /// Appends one row; an index `>= dim` is an error.
    pub fn push(&mut self, row: SparseView<'_>) -> Result<(), SparseError> {
        if let Some(&last) = row.indices().last() {
            if last as usize >= self.dim {
                return Err(SparseError::IndexOutOfRange {
                    index: last,
                    dim: self.dim,
                });
            }
        }
        self.indices.extend_from_slice(row.indices());
        self.values.extend_from_slice(row.values());
        self.indptr.push(self.indices.len());
        Ok(())
    }

    /// The dimension (vocabulary size).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total stored entries over all rows.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`, or `None` past the end.
    pub fn row(&self, r: usize) -> Option<SparseView<'_>> {
        let (start, end) = (*self.indptr.get(r)?, *self.indptr.get(r + 1)?);
        Some(SparseView::new_unchecked(
            &self.indices[start..end],
            &self.values[start..end],
        ))
    }

    /// Iterates the rows in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = SparseView<'_>> + '_ {
        self.indptr.windows(2).map(move |w| {
            SparseView::new_unchecked(&self.indices[w[0]..w[1]], &self.values[w[0]..w[1]])
        })
    }

    /// Copies the rows out as owned vectors.
    pub fn to_vectors(&self) -> Vec<SparseVector> {
        self.rows().map(|r| r.to_owned()).collect()
    }

    /// The CSR arrays `(indptr, indices, values)`.
    pub fn csr(&self) -> (&[usize], &[u32], &[f32]) {
        (&self.indptr, &self.indices, &self.values)
    }
}
