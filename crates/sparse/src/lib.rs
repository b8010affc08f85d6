//! Sparse vectors for learned sparse retrieval (SPLADE): the owned [`SparseVector`] and
//! borrowed [`SparseView`] (strictly ascending `u32` indices, `f32` values), the CSR
//! [`SparseBatch`], similarity functions with sentence-transformers' names and sign
//! conventions, and sparsity statistics.
//!
//! This crate has no machine-learning dependency: the index and evaluation crates build on it
//! without pulling in the model stack.
//!
//! ```
//! use splade_sparse::{SparseVector, Similarity};
//! let q = SparseVector::new(vec![3, 7], vec![1.0, 2.0]).unwrap();
//! let d = SparseVector::new(vec![7, 9], vec![0.5, 4.0]).unwrap();
//! assert_eq!(q.view().dot(&d.view()), 1.0);
//! assert_eq!(Similarity::Dot.score(&q.view(), &d.view()), 1.0);
//! ```

#![warn(missing_docs)]

mod batch;
mod error;
pub mod files;
mod similarity;
mod stats;
mod vector;

pub use batch::SparseBatch;
pub use error::SparseError;
pub use similarity::{similarity, similarity_pairwise, ScoreMatrix, Similarity};
pub use stats::{sparsity, SparsityStats};
pub use vector::{SparseVector, SparseView};
