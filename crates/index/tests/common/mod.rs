//! Shared test helpers: random collections and an independent reference ranking.

#![allow(dead_code)]

use proptest::prelude::*;
use splade_index::{Hit, Index, IndexBuilder};
use splade_sparse::SparseVector;

/// A random collection: `dim`, documents (with duplicates for exact ties), block size.
#[derive(Debug, Clone)]
pub struct Collection {
    pub dim: usize,
    pub docs: Vec<SparseVector>,
    pub block_size: usize,
}

/// A sparse vector over `dim` with up to `max_nnz` terms; weights are drawn from a small
/// set of values sometimes (so that different documents tie) or uniformly. `zipf` skews term
/// ids towards small ids.
pub fn vector(dim: usize, max_nnz: usize, zipf: bool) -> impl Strategy<Value = SparseVector> {
    let term = (0..dim as u32, any::<bool>()).prop_map(move |(t, skew)| {
        if zipf && skew {
            // Square the unit position: small ids much more popular.
            let x = t as f64 / dim as f64;
            ((x * x * x) * dim as f64) as u32
        } else {
            t
        }
    });
    let weight = prop_oneof![
        3 => 0.0f32..3.0,
        1 => prop::sample::select(vec![0.0f32, 0.25, 0.5, 1.0, 2.0]),
    ];
    prop::collection::vec((term, weight), 0..=max_nnz).prop_map(|pairs| {
        let mut pairs: Vec<(u32, f32)> = pairs;
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        SparseVector::from_pairs(pairs).expect("deduplicated pairs")
    })
}

/// Random collections: dims 1..200, 0..300 documents with up to 40 terms each, some of
/// them copies of earlier documents, block sizes 1..=256 (small ones favoured).
pub fn collection() -> impl Strategy<Value = Collection> {
    (1usize..200, any::<bool>())
        .prop_flat_map(|(dim, zipf)| {
            let block_size = prop_oneof![1usize..=8, prop::sample::select(vec![16, 64, 256])];
            (
                Just(dim),
                prop::collection::vec((vector(dim, 40, zipf), any::<u16>(), 0u8..4), 0..300),
                block_size,
            )
        })
        .prop_map(|(dim, raw, block_size)| {
            let mut docs: Vec<SparseVector> = Vec::with_capacity(raw.len());
            for (v, pick, kind) in raw {
                // One in four documents duplicates an earlier one: exact ties.
                if kind == 0 && !docs.is_empty() {
                    let copy = docs[pick as usize % docs.len()].clone();
                    docs.push(copy);
                } else {
                    docs.push(v);
                }
            }
            Collection {
                dim,
                docs,
                block_size,
            }
        })
}

/// A query over `dim` with 1..=50 terms (before deduplication).
pub fn query(dim: usize) -> impl Strategy<Value = SparseVector> {
    prop::collection::vec((0..dim as u32, 0.0f32..3.0), 1..=50).prop_map(|pairs| {
        let mut pairs = pairs;
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        SparseVector::from_pairs(pairs).expect("deduplicated pairs")
    })
}

pub fn doc_id(d: usize) -> String {
    format!("doc-{d}")
}

pub fn builder(c: &Collection) -> IndexBuilder {
    let mut b = IndexBuilder::new(c.dim).block_size(c.block_size);
    for (d, v) in c.docs.iter().enumerate() {
        b.add(&doc_id(d), v.view()).expect("valid document");
    }
    b
}

pub fn build(c: &Collection) -> Index {
    builder(c).build().expect("build")
}

/// The reference: every document scored with `SparseView::dot`, positive scores only,
/// sorted by score descending then document number, first `k`.
pub fn reference(docs: &[SparseVector], query: &SparseVector, k: usize) -> Vec<Hit> {
    let mut all: Vec<Hit> = docs
        .iter()
        .enumerate()
        .map(|(d, v)| Hit {
            doc: d as u32,
            score: query.view().dot(&v.view()),
        })
        .filter(|h| h.score > 0.0)
        .collect();
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
    all.truncate(k);
    all
}

/// Hits as (doc, score bits): bit-exact comparison.
pub fn bits(hits: &[Hit]) -> Vec<(u32, u32)> {
    hits.iter().map(|h| (h.doc, h.score.to_bits())).collect()
}

/// A seeded xorshift64 stream (deterministic test data without a dependency).
pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
