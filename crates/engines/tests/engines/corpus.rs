//! Small synthetic corpora with SPLADE-like vectors (seeded, so every run is the same), and
//! the exact top k of our index to compare engines with.

use splade_engines::ExportDocument;
use splade_index::{brute_force_top_k, Hit};
use splade_sparse::SparseVector;

/// A tiny deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A vector of `nnz` distinct terms below `dim` with weights in (0, 3].
pub fn vector(rng: &mut Rng, dim: u32, nnz: usize) -> SparseVector {
    let mut terms = std::collections::BTreeMap::new();
    while terms.len() < nnz {
        // Zipf-like: low term ids are common, as frequent word pieces are.
        let t = (rng.below(dim as u64) * rng.below(dim as u64) / dim as u64) as u32;
        terms.insert(t, 0.01 + 3.0 * rng.unit());
    }
    SparseVector::new(
        terms.keys().copied().collect(),
        terms.values().copied().collect(),
    )
    .unwrap()
}

/// `n` documents `doc-0`.. with 20-60 terms each over a vocabulary of `dim`.
pub fn documents(n: usize, dim: u32, seed: u64) -> Vec<ExportDocument> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let nnz = 20 + rng.below(40) as usize;
            ExportDocument::new(format!("doc-{i}"), vector(&mut rng, dim, nnz))
        })
        .collect()
}

/// `n` queries of 5-15 terms.
pub fn queries(n: usize, dim: u32, seed: u64) -> Vec<SparseVector> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let nnz = 5 + rng.below(10) as usize;
            vector(&mut rng, dim, nnz)
        })
        .collect()
}

/// Our exact top k (brute force, f64 accumulation), as (id, score).
pub fn exact_top_k(
    docs: &[ExportDocument],
    dim: u32,
    query: &SparseVector,
    k: usize,
) -> Vec<(String, f32)> {
    let _ = dim;
    let hits: Vec<Hit> = brute_force_top_k(docs.iter().map(|d| d.vector.view()), query.view(), k);
    hits.iter()
        .map(|h| (docs[h.doc as usize].id.clone(), h.score))
        .collect()
}

/// Checks an engine's top k against ours: the same ids in the same order except among
/// scores within `rel` of each other (ties), every score within `rel` relative.
pub fn assert_same_top_k(what: &str, ours: &[(String, f32)], theirs: &[(String, f32)], rel: f32) {
    assert_eq!(ours.len(), theirs.len(), "{what}: {ours:?} vs {theirs:?}");
    let close = |a: f32, b: f32| (a - b).abs() <= rel * a.abs().max(b.abs()).max(f32::MIN_POSITIVE);
    for (i, ((oid, os), (tid, ts))) in ours.iter().zip(theirs).enumerate() {
        assert!(
            close(*os, *ts),
            "{what}: rank {}: score {os} vs {ts}",
            i + 1
        );
        if oid != tid {
            // Allowed only where both lists hold tied scores and the same set of ids among them.
            let tied_ours: Vec<&String> = ours
                .iter()
                .filter(|(_, s)| close(*s, *os))
                .map(|(id, _)| id)
                .collect();
            assert!(
                tied_ours.contains(&tid),
                "{what}: rank {}: {tid} (score {ts}) where ours has {oid} (score {os})",
                i + 1
            );
        }
    }
    // Outside the boundary tie, the sets agree.
    let last = ours.last().map(|(_, s)| *s).unwrap_or(0.0);
    let strict_ours: Vec<&String> = ours
        .iter()
        .filter(|(_, s)| !close(*s, last))
        .map(|(id, _)| id)
        .collect();
    for id in strict_ours {
        assert!(
            theirs.iter().any(|(t, _)| t == id),
            "{what}: {id} is in our top k but not in the engine's"
        );
    }
}
