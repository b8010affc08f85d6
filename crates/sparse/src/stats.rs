//! Sparsity statistics, as sentence-transformers' `SparseEncoder.sparsity` reports them.

use crate::batch::SparseBatch;

/// Mean active dimensions per vector and the matching sparsity ratio.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SparsityStats {
    /// Mean number of non-zero dimensions per vector.
    pub active_dims: f64,
    /// `1 - active_dims / dim`.
    pub sparsity_ratio: f64,
}

/// Computes [`SparsityStats`] over a batch; an empty batch has 0 active dims and ratio 1.
pub fn sparsity(batch: &SparseBatch) -> SparsityStats {
    if batch.is_empty() || batch.dim() == 0 {
        return SparsityStats {
            active_dims: 0.0,
            sparsity_ratio: 1.0,
        };
    }
    let total: usize = batch.rows().map(|r| r.active_dims()).sum();
    let active_dims = total as f64 / batch.len() as f64;
    SparsityStats {
        active_dims,
        sparsity_ratio: 1.0 - active_dims / batch.dim() as f64,
    }
}
