//! A sparse inverted index for SPLADE vectors: exact top-k search (block-max pruning with
//! exact f32 scoring, identical to a brute-force dot product), persistent and
//! memory-mapped, with no machine-learning dependency.
//!
//! - Build: [`IndexBuilder`] from vectors with external string ids, or from files with the
//!   [`readers`] (JSONL, Seismic binary).
//! - Persist: [`IndexBuilder::write`] writes a versioned directory ([`mod@format`]) atomically;
//!   [`Index::open`] memory-maps it, verifying checksums and structure.
//! - Update: [`IndexWriter`] adds documents (an existing id is replaced: upsert) and
//!   deletes them by id without a rebuild; [`IndexWriter::commit`] writes the additions as
//!   a new immutable segment and the deletions as per-segment deletion files, then switches
//!   the manifest atomically (a crash leaves the old or the new state, never a mix), and
//!   merges neighbouring segments per [`MergePolicy`]; [`IndexWriter::optimize`] merges
//!   everything into one segment, dropping deleted documents.
//! - Merge: [`merge::merge_indexes`] joins indexes built from shards of one corpus into the
//!   index of the whole corpus, byte for byte what a build from the whole corpus writes.
//! - Layout: the builder clusters similar documents into the same blocks ([`Reorder`]), so
//!   block maxima are tight and pruning skips most blocks; document numbers stay insertion
//!   order (the format stores the permutation).
//! - Search: [`Index::top_k`] (exact, pruned), [`Index::brute_force_top_k`] (reference),
//!   [`Index::search`] / [`Index::search_batch`] with [`SearchOptions`] (method, query term
//!   pruning, threads, [`Traversal`]), [`Method::Approximate`] (α / β: recall for speed),
//!   [`Index::explain`]. Where the block bounds prune little (long queries over long
//!   documents; stopword-like terms in almost every document, flat weights), the search
//!   goes term at a time instead: on small segments (at most 32,768 documents) every
//!   posting of every query term into one f64 accumulator per document, in ascending term
//!   order, so the scores are still bit-identical; on larger ones an approximate f32 pass
//!   (frequent terms as byte columns) with a proven error bound screens the documents
//!   that may enter the top k, which are then rescored exactly by the brute force's dot
//!   product. The choice is made per segment and query by a cost model
//!   ([`Traversal::Auto`]), never changes a result, and can be forced.
//! - Block size: [`auto_block_size`] from the documents' mean length and number unless set.
//!
//! Ranking everywhere: score descending, ties to the smaller document number; only
//! documents with a score `> 0` are returned. Document numbers follow segment order, then
//! insertion order within a segment, so an earlier-added document wins a tie (a replaced
//! document counts as added when it was replaced); for an index [`IndexBuilder`] made
//! (one segment) they are insertion order. Deleted documents are never returned. Exact
//! search over any number of segments returns the same hits as
//! [`Index::brute_force_top_k`] over the live documents.
//!
//! # Module layers
//!
//! Each module uses only modules of lower layers (so the module graph has no cycle);
//! `tests/module_layers.rs` reads this diagram and checks it against every `crate::`,
//! `super::` and child-module path of the non-test code.
//!
//! ```text
//! 9  search  explain  writer  merge
//! 8  brute  builder
//! 7  builder::disk
//! 6  replace
//! 5  index
//! 4  segment  builder::arrays
//! 3  segment::postings  segment::memory  builder::catalog  builder::assemble
//! 2  segment::blocks  validate  deletes  readers  builder::cluster  builder::sink
//! 1  format  storage  quantize  topk  counts  builder::source  builder::scatter
//! 0  error  hint
//! ```
//!
//! - 0-1, the on-disk format and the bytes: [`mod@format`] (file layout, manifests, limits
//!   such as [`MAX_BLOCK_SIZE`], atomic directory writes), `storage` (memory-mapped or
//!   owned arrays), `quantize` (block-maximum codes), `topk` (the ranking, [`Hit`]),
//!   `counts` (per-term counts of a postings array), `hint` (cache prefetches).
//! - 2-4, one segment: `segment::blocks` (borrowed views of the block arrays),
//!   `segment::postings` (the term-major copy and dense columns of the term-at-a-time
//!   search, made on first use), `segment::memory` (what the automatic traversal learned),
//!   `validate` (structure checks when a segment is opened), `segment` (a mapped, validated
//!   segment); `deletes` (deletion bitsets) and [`readers`] (input files) sit beside them.
//! - 5, [`Index`]: segments plus their deletions, global document numbers.
//! - 6-7, what uses an index: `brute` (the reference scorer), [`IndexBuilder`], `search`
//!   ([`Searcher`]: `search::block_max`, the block-max traversal of exact and approximate
//!   search, and `search::taat`, the term-at-a-time traversal), [`Index::explain`], and
//!   [`IndexWriter`] (which writes its segments with an [`IndexBuilder`]), and [`merge`]
//!   (indexes built from shards of a corpus merged into the whole corpus's index).
//!
//! # Example
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

#![warn(missing_docs)]

mod brute;
mod builder;
mod counts;
mod deletes;
mod error;
mod explain;
pub mod format;
mod hint;
mod index;
pub mod merge;
mod quantize;
pub mod readers;
mod replace;
mod search;
mod segment;
mod storage;
mod topk;
mod validate;
mod writer;

pub use brute::brute_force_top_k;
pub use builder::{
    auto_block_size, check_document, DiskIndexBuilder, IndexBuilder, Reorder, AUTO_MIN_SLOT_CUT,
    AUTO_SAMPLED_ABOVE, AUTO_SAMPLE_DOCS, SHORT_DOCUMENTS_BLOCK_SIZE, SHORT_DOCUMENTS_MAX_DOCS,
    SHORT_DOCUMENT_TERMS,
};
pub use error::{IndexError, Result};
pub use explain::{Explanation, TermContribution};
pub use format::{DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE};
pub use index::{Index, OpenOptions, SegmentInfo};
pub use search::{prune_query, Method, SearchOptions, SearchStats, Searcher, Traversal};
pub use storage::Residency;
pub use topk::Hit;
pub use writer::{CommitSummary, IndexWriter, MergePolicy};

/// A sparse vector of `n` (term, weight) draws: sorted by term, a term drawn again kept
/// with its first weight.
#[cfg(test)]
fn drawn_vector(n: usize, mut draw: impl FnMut() -> (u32, f32)) -> splade_sparse::SparseVector {
    let mut pairs: Vec<(u32, f32)> = (0..n).map(|_| draw()).collect();
    pairs.sort_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    splade_sparse::SparseVector::from_pairs(pairs).expect("drawn terms are sorted and distinct")
}

/// A seeded xorshift64 stream (deterministic test data without a dependency).
#[cfg(test)]
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
