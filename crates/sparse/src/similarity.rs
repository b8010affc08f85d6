//! Similarity functions with sentence-transformers' names and sign conventions.

use std::fmt;
use std::str::FromStr;

use crate::batch::SparseBatch;
use crate::error::SparseError;
use crate::vector::SparseView;

/// The norm floor used when normalising for cosine similarity, as `torch.nn.functional.normalize`
/// does: a zero vector has cosine similarity 0 with everything.
const COSINE_EPS: f64 = 1e-12;

/// A similarity function. Larger is always more similar: distances are negated, exactly as
/// sentence-transformers' `euclidean_sim` and `manhattan_sim` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Similarity {
    /// Dot product (the SPLADE default).
    #[default]
    Dot,
    /// Cosine similarity.
    Cosine,
    /// Negative Euclidean distance.
    Euclidean,
    /// Negative Manhattan (L1) distance.
    Manhattan,
}

impl Similarity {
    /// All functions, in sentence-transformers' order of evaluation reports.
    pub const ALL: [Similarity; 4] = [
        Similarity::Cosine,
        Similarity::Dot,
        Similarity::Euclidean,
        Similarity::Manhattan,
    ];

    /// The name sentence-transformers uses (`similarity_fn_name`).
    pub fn name(self) -> &'static str {
        match self {
            Similarity::Dot => "dot",
            Similarity::Cosine => "cosine",
            Similarity::Euclidean => "euclidean",
            Similarity::Manhattan => "manhattan",
        }
    }

    /// Scores one pair of vectors.
    pub fn score(self, a: &SparseView<'_>, b: &SparseView<'_>) -> f32 {
        match self {
            Similarity::Dot => a.dot(b),
            Similarity::Cosine => {
                let na = a.squared_norm().sqrt().max(COSINE_EPS);
                let nb = b.squared_norm().sqrt().max(COSINE_EPS);
                (a.dot(b) as f64 / (na * nb)) as f32
            }
            Similarity::Euclidean => -a.euclidean_distance(b),
            Similarity::Manhattan => -a.manhattan_distance(b),
        }
    }
}

impl fmt::Display for Similarity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Similarity {
    type Err = SparseError;
    fn from_str(s: &str) -> Result<Self, SparseError> {
        match s.to_ascii_lowercase().as_str() {
            "dot" | "dot_score" | "dot_product" => Ok(Similarity::Dot),
            "cosine" | "cos_sim" => Ok(Similarity::Cosine),
            "euclidean" => Ok(Similarity::Euclidean),
            "manhattan" => Ok(Similarity::Manhattan),
            _ => Err(SparseError::UnknownSimilarity(s.to_string())),
        }
    }
}

/// A dense row-major matrix of scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreMatrix {
    /// Number of rows (left-hand vectors).
    pub rows: usize,
    /// Number of columns (right-hand vectors).
    pub cols: usize,
    /// `rows * cols` scores, row-major.
    pub data: Vec<f32>,
}

impl ScoreMatrix {
    /// The score of row `r` against column `c`.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.cols + c]
    }

    /// Row `r` as a slice.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Every row of `a` against every row of `b` (sentence-transformers' `similarity`).
pub fn similarity(a: &SparseBatch, b: &SparseBatch, function: Similarity) -> ScoreMatrix {
    let mut data = Vec::with_capacity(a.len() * b.len());
    for ra in a.rows() {
        for rb in b.rows() {
            data.push(function.score(&ra, &rb));
        }
    }
    ScoreMatrix {
        rows: a.len(),
        cols: b.len(),
        data,
    }
}

/// Row `i` of `a` against row `i` of `b` (sentence-transformers' `similarity_pairwise`).
/// Extra rows of the longer batch are ignored.
pub fn similarity_pairwise(a: &SparseBatch, b: &SparseBatch, function: Similarity) -> Vec<f32> {
    a.rows()
        .zip(b.rows())
        .map(|(ra, rb)| function.score(&ra, &rb))
        .collect()
}
