//! `splade eval ir --engine milvus://...`: the IR evaluator's [`Ranker`] answered by a Milvus
//! collection holding the corpus (what `splade export milvus` wrote).
//!
//! Milvus ranks by inner product, like the evaluator's dot-product rankers, but does not
//! promise their tie order (smaller corpus id first, as sentence-transformers). So each query
//! asks Milvus for [`TIE_MARGIN`] hits more than the evaluator needs, orders them by score,
//! then corpus id, and keeps the first k; documents sharing no term with the query (score 0,
//! which Milvus does not return) complete a short list in corpus-id order, as a full scan
//! would.

use std::collections::{HashMap, HashSet};

use splade_engines::milvus::{MilvusCollection, MilvusTarget, MAX_K};
use splade_eval::ranking::{id_ranks, Hit, Ranker};
use splade_eval::EvalError;
use splade_sparse::SparseBatch;

/// Extra hits asked for, so that documents tied at the k-th score can be reordered.
pub const TIE_MARGIN: usize = 20;

/// Ranks queries through a Milvus collection whose ids are the evaluator's corpus ids.
pub struct MilvusRanker {
    collection: MilvusCollection,
    /// Corpus id -> corpus position.
    position: HashMap<String, usize>,
    /// Corpus position -> rank of its id in ascending order.
    tie_rank: Vec<u32>,
}

impl MilvusRanker {
    /// Connects to `address` (milvus://HOST:PORT/COLLECTION); `corpus_ids` in corpus order.
    pub fn new(address: &str, corpus_ids: &[&str]) -> anyhow::Result<Self> {
        let collection = MilvusCollection::connect(&MilvusTarget::parse(address)?)?;
        let count = collection.count()?;
        if count != corpus_ids.len() as u64 {
            anyhow::bail!(
                "{address} holds {count} documents but the corpus has {}: export the corpus's vectors to it first (splade export milvus)",
                corpus_ids.len()
            );
        }
        Ok(Self {
            collection,
            position: corpus_ids
                .iter()
                .enumerate()
                .map(|(p, id)| (id.to_string(), p))
                .collect(),
            tie_rank: id_ranks(corpus_ids),
        })
    }
}

impl Ranker for MilvusRanker {
    fn top_k(&self, queries: &SparseBatch, k: usize) -> splade_eval::Result<Vec<Vec<Hit>>> {
        let views: Vec<_> = queries.rows().collect();
        let want = (k + TIE_MARGIN).min(MAX_K).min(self.tie_rank.len().max(1));
        let found = self
            .collection
            .search(&views, want)
            .map_err(|e| EvalError::InvalidArgument(e.to_string()))?;
        let mut by_tie_rank: Vec<usize> = (0..self.tie_rank.len()).collect();
        by_tie_rank.sort_by_key(|&p| self.tie_rank[p]);
        let mut results = Vec::with_capacity(found.len());
        for hits in found {
            let mut ranked = Vec::with_capacity(hits.len());
            for h in hits {
                let doc = *self.position.get(&h.id).ok_or_else(|| {
                    EvalError::InvalidArgument(format!(
                        "Milvus returned document {:?}, which is not in the corpus",
                        h.id
                    ))
                })?;
                ranked.push(Hit {
                    doc,
                    score: h.score,
                });
            }
            ranked.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(self.tie_rank[a.doc].cmp(&self.tie_rank[b.doc]))
            });
            ranked.truncate(k);
            if ranked.len() < k {
                let taken: HashSet<usize> = ranked.iter().map(|h| h.doc).collect();
                let fill = by_tie_rank
                    .iter()
                    .filter(|p| !taken.contains(p))
                    .take(k - ranked.len())
                    .map(|&doc| Hit { doc, score: 0.0 });
                ranked.extend(fill.collect::<Vec<_>>());
            }
            results.push(ranked);
        }
        Ok(results)
    }
}
