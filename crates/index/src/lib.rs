//! A sparse inverted index for SPLADE vectors: exact top-k search (block-max pruning with
//! exact f32 scoring, identical to a brute-force dot product), persistent and
//! memory-mapped, with no machine-learning dependency.
//!
//! - Build: [`IndexBuilder`] from vectors with external string ids, or from files with the
//!   [`readers`] (JSONL, Seismic binary).
//! - Persist: [`IndexBuilder::write`] writes a versioned directory ([`mod@format`]) atomically;
//!   [`Index::open`] memory-maps it, verifying checksums and structure.
//! - Layout: the builder clusters similar documents into the same blocks ([`Reorder`]), so
//!   block maxima are tight and pruning skips most blocks; document numbers stay insertion
//!   order (the format stores the permutation).
//! - Search: [`Index::top_k`] (exact, pruned), [`Index::brute_force_top_k`] (reference),
//!   [`Index::search`] / [`Index::search_batch`] with [`SearchOptions`] (method, query term
//!   pruning, threads), [`Method::Approximate`] (α / β: recall for speed), [`Index::explain`].
//!
//! Ranking everywhere: score descending, ties to the smaller document number (insertion
//! order); only documents with a score `> 0` are returned.
//!
//! ```
//! use splade_index::{IndexBuilder, SearchOptions};
//! use splade_sparse::SparseVector;
//! let docs = [("d1", vec![(1, 1.0), (5, 0.5)]), ("d2", vec![(5, 2.0)]), ("d3", vec![(7, 1.0)])];
//! let mut builder = IndexBuilder::new(8);
//! for (id, pairs) in docs {
//!     builder.add(id, SparseVector::from_pairs(pairs)?.view())?;
//! }
//! let index = builder.build()?;
//! let query = SparseVector::from_pairs(vec![(1, 1.0), (5, 1.0)])?;
//! let hits = index.search(query.view(), &SearchOptions::new(10));
//! let ids: Vec<_> = hits.iter().map(|h| index.id(h.doc).unwrap()).collect();
//! assert_eq!(ids, ["d2", "d1"]); // d3 shares no term: not returned
//! assert_eq!(hits, index.brute_force_top_k(query.view(), 10));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod brute;
mod builder;
mod error;
mod explain;
pub mod format;
mod index;
mod quantize;
pub mod readers;
mod search;
mod storage;
mod topk;
mod validate;

pub use brute::brute_force_top_k;
pub use builder::{IndexBuilder, Reorder, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE};
pub use error::{IndexError, Result};
pub use explain::{Explanation, TermContribution};
pub use index::Index;
pub use search::{prune_query, Method, SearchOptions, SearchStats, Searcher};
pub use topk::Hit;
