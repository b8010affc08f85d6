//! The owned sparse vector and its borrowed view.

use serde::{Deserialize, Serialize};

use crate::error::SparseError;

/// A borrowed sparse vector: strictly ascending `u32` indices and their `f32` values.
///
/// Every view handed out by this crate upholds the invariants checked by
/// [`SparseVector::new`]; the operations below rely on the ascending order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseView<'a> {
    indices: &'a [u32],
    values: &'a [f32],
}

/// An owned sparse vector: strictly ascending `u32` indices and their `f32` values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSparseVector")]
pub struct SparseVector {
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// Unchecked serde shape, validated into a [`SparseVector`].
#[derive(Deserialize)]
struct RawSparseVector {
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl TryFrom<RawSparseVector> for SparseVector {
    type Error = SparseError;
    fn try_from(raw: RawSparseVector) -> Result<Self, SparseError> {
        SparseVector::new(raw.indices, raw.values)
    }
}

fn validate(indices: &[u32], values: &[f32]) -> Result<(), SparseError> {
    if indices.len() != values.len() {
        return Err(SparseError::LengthMismatch {
            indices: indices.len(),
            values: values.len(),
        });
    }
    for (pos, pair) in indices.windows(2).enumerate() {
        if pair[0] >= pair[1] {
            return Err(SparseError::NotAscending {
                position: pos + 1,
                previous: pair[0],
                index: pair[1],
            });
        }
    }
    if let Some(position) = values.iter().position(|v| !v.is_finite()) {
        return Err(SparseError::NonFinite {
            position,
            index: indices[position],
        });
    }
    Ok(())
}

impl SparseVector {
    /// Builds a vector from strictly ascending indices and finite values of the same length.
    pub fn new(indices: Vec<u32>, values: Vec<f32>) -> Result<Self, SparseError> {
        validate(&indices, &values)?;
        Ok(Self { indices, values })
    }

    /// Builds a vector from `(index, value)` pairs in any order; duplicate indices are an error.
    pub fn from_pairs(mut pairs: Vec<(u32, f32)>) -> Result<Self, SparseError> {
        pairs.sort_unstable_by_key(|p| p.0);
        let (indices, values) = pairs.into_iter().unzip();
        Self::new(indices, values)
    }

    /// Keeps every non-zero entry of a dense slice.
    pub fn from_dense(dense: &[f32]) -> Self {
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for (i, &v) in dense.iter().enumerate() {
            if v != 0.0 {
                indices.push(i as u32);
                values.push(v);
            }
        }
        Self { indices, values }
    }

    /// Builds a vector without validation. The caller guarantees ascending, unique indices
    /// and equal lengths (used on hot paths that construct vectors in order).
    pub(crate) fn from_sorted_unchecked(indices: Vec<u32>, values: Vec<f32>) -> Self {
        debug_assert!(validate(&indices, &values).is_ok());
        Self { indices, values }
    }

    /// The borrowed view of this vector.
    pub fn view(&self) -> SparseView<'_> {
        SparseView {
            indices: &self.indices,
            values: &self.values,
        }
    }

    /// Splits the vector into its index and value arrays.
    pub fn into_parts(self) -> (Vec<u32>, Vec<f32>) {
        (self.indices, self.values)
    }

    /// Ascending indices.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Values, aligned with [`Self::indices`].
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

impl<'a> SparseView<'a> {
    /// Borrows already-validated slices. Fails like [`SparseVector::new`] on bad input.
    pub fn new(indices: &'a [u32], values: &'a [f32]) -> Result<Self, SparseError> {
        validate(indices, values)?;
        Ok(Self { indices, values })
    }

    pub(crate) fn new_unchecked(indices: &'a [u32], values: &'a [f32]) -> Self {
        Self { indices, values }
    }

    /// Ascending indices.
    pub fn indices(&self) -> &'a [u32] {
        self.indices
    }

    /// Values, aligned with [`Self::indices`].
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Iterates `(index, value)` pairs in ascending index order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + 'a {
        self.indices
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    /// Copies into an owned vector.
    pub fn to_owned(&self) -> SparseVector {
        SparseVector {
            indices: self.indices.to_vec(),
            values: self.values.to_vec(),
        }
    }

    /// Expands into a dense vector of length `dim`; indices at or past `dim` are an error.
    pub fn to_dense(&self, dim: usize) -> Result<Vec<f32>, SparseError> {
        let mut out = vec![0.0; dim];
        for (i, v) in self.iter() {
            let slot = out
                .get_mut(i as usize)
                .ok_or(SparseError::IndexOutOfRange { index: i, dim })?;
            *slot = v;
        }
        Ok(out)
    }

    /// Number of non-zero values (the "active dimensions").
    pub fn active_dims(&self) -> usize {
        self.values.iter().filter(|v| **v != 0.0).count()
    }

    /// Dot product by merging the two index lists (accumulated in f64).
    pub fn dot(&self, other: &SparseView<'_>) -> f32 {
        let mut acc = 0.0f64;
        merge_join(self, other, |a, b| acc += a as f64 * b as f64);
        acc as f32
    }

    /// Squared L2 norm (accumulated in f64).
    pub fn squared_norm(&self) -> f64 {
        self.values.iter().map(|&v| v as f64 * v as f64).sum()
    }

    /// L2 norm.
    pub fn norm(&self) -> f32 {
        self.squared_norm().sqrt() as f32
    }

    /// Euclidean distance, computed exactly over the union of the two index sets.
    pub fn euclidean_distance(&self, other: &SparseView<'_>) -> f32 {
        let mut acc = 0.0f64;
        merge_union(self, other, |a, b| {
            let d = a as f64 - b as f64;
            acc += d * d;
        });
        acc.sqrt() as f32
    }

    /// Manhattan (L1) distance over the union of the two index sets.
    pub fn manhattan_distance(&self, other: &SparseView<'_>) -> f32 {
        let mut acc = 0.0f64;
        merge_union(self, other, |a, b| acc += (a as f64 - b as f64).abs());
        acc as f32
    }

    /// Element-wise product: the terms both vectors activate, weighted by the product of
    /// their weights (sentence-transformers' `SparseEncoder.intersection`). Zero products are dropped.
    pub fn intersection(&self, other: &SparseView<'_>) -> SparseVector {
        let mut indices = Vec::new();
        let mut values = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    let p = self.values[i] * other.values[j];
                    if p != 0.0 {
                        indices.push(self.indices[i]);
                        values.push(p);
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        SparseVector::from_sorted_unchecked(indices, values)
    }

    /// Positions of the `k` largest values, largest first; ties keep the smaller index first.
    pub fn top_positions(&self, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.values.len()).collect();
        let by_weight = |a: &usize, b: &usize| {
            self.values[*b]
                .total_cmp(&self.values[*a])
                .then(self.indices[*a].cmp(&self.indices[*b]))
        };
        if k < order.len() {
            order.select_nth_unstable_by(k, by_weight);
            order.truncate(k);
        }
        order.sort_unstable_by(by_weight);
        order
    }

    /// Keeps the `k` largest values (ties broken towards the smaller index); the result is
    /// in ascending index order. `k >= nnz` returns a copy.
    pub fn top_k(&self, k: usize) -> SparseVector {
        if k >= self.nnz() {
            return self.to_owned();
        }
        let mut keep = self.top_positions(k);
        keep.sort_unstable();
        let indices = keep.iter().map(|&p| self.indices[p]).collect();
        let values = keep.iter().map(|&p| self.values[p]).collect();
        SparseVector::from_sorted_unchecked(indices, values)
    }
}

/// Calls `f(a, b)` for every index present in both vectors.
fn merge_join(a: &SparseView<'_>, b: &SparseView<'_>, mut f: impl FnMut(f32, f32)) {
    let (mut i, mut j) = (0, 0);
    let (ai, bi) = (a.indices, b.indices);
    while i < ai.len() && j < bi.len() {
        match ai[i].cmp(&bi[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                f(a.values[i], b.values[j]);
                i += 1;
                j += 1;
            }
        }
    }
}

/// Calls `f(a, b)` for every index present in either vector, with 0 for the missing side.
fn merge_union(a: &SparseView<'_>, b: &SparseView<'_>, mut f: impl FnMut(f32, f32)) {
    let (mut i, mut j) = (0, 0);
    let (ai, bi) = (a.indices, b.indices);
    while i < ai.len() || j < bi.len() {
        let take_a = j >= bi.len() || (i < ai.len() && ai[i] < bi[j]);
        let take_b = i >= ai.len() || (j < bi.len() && bi[j] < ai[i]);
        if take_a {
            f(a.values[i], 0.0);
            i += 1;
        } else if take_b {
            f(0.0, b.values[j]);
            j += 1;
        } else {
            f(a.values[i], b.values[j]);
            i += 1;
            j += 1;
        }
    }
}

impl<'a> From<&'a SparseVector> for SparseView<'a> {
    fn from(v: &'a SparseVector) -> Self {
        v.view()
    }
}
