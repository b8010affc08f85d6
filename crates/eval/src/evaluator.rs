//! The model-running evaluators: encode with a [`SparseEncoder`], then compute the metrics of
//! [`crate::binary`] / [`crate::ir`]. Each also has an `*_embeddings` entry point that takes
//! precomputed vectors (used by the parity tests).

use std::collections::{HashMap, HashSet};

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_sparse::{sparsity, Similarity, SparseBatch, SparsityStats};

use crate::binary::{classification_metrics, pair_scores, BinaryMetrics, ThresholdSemantics};
use crate::data::{LabeledPairs, RetrievalData};
use crate::error::{EvalError, Result};
use crate::ir::{ir_metrics, Cutoffs, IrMetrics};
use crate::ranking::{id_ranks, BruteForceRanker, Ranker};

/// sentence-transformers' `SparseBinaryClassificationEvaluator`.
#[derive(Debug, Clone)]
pub struct BinaryClassificationEvaluator {
    /// The pairs and labels.
    pub pairs: LabeledPairs,
    /// Prefix of every metric key (`{name}_cosine_accuracy`); empty for none.
    pub name: String,
    /// Similarity functions to evaluate, in report order (default: all four).
    pub functions: Vec<Similarity>,
    /// Current (ST >= 5.7) or legacy (seed card) distance semantics.
    pub semantics: ThresholdSemantics,
    /// Batch size and `max_active_dims` of the encoding.
    pub options: EncodeOptions,
}

/// The result of a binary classification evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryResult {
    /// Key prefix (may be empty).
    pub name: String,
    /// Metrics per similarity function, in evaluation order.
    pub functions: Vec<(Similarity, BinaryMetrics)>,
    /// Sparsity of the embeddings of the unique sentences.
    pub sparsity: SparsityStats,
}

impl BinaryClassificationEvaluator {
    /// An evaluator of all four functions with current semantics. Errors if there are no pairs.
    pub fn new(pairs: LabeledPairs, name: impl Into<String>) -> Result<Self> {
        if pairs.labels.is_empty() {
            return Err(EvalError::InvalidData(
                "no sentence pairs to evaluate".into(),
            ));
        }
        if pairs.sentences1.len() != pairs.labels.len()
            || pairs.sentences2.len() != pairs.labels.len()
        {
            return Err(EvalError::InvalidArgument(
                "sentences1, sentences2 and labels differ in length".into(),
            ));
        }
        Ok(Self {
            pairs,
            name: name.into(),
            functions: vec![
                Similarity::Cosine,
                Similarity::Dot,
                Similarity::Euclidean,
                Similarity::Manhattan,
            ],
            semantics: ThresholdSemantics::Current,
            options: EncodeOptions::default(),
        })
    }

    /// The distinct sentences (first-occurrence order) and, for each pair, the positions of
    /// its two sentences among them: every sentence is encoded once, as the reference does.
    pub fn unique_sentences(&self) -> (Vec<&str>, Vec<usize>, Vec<usize>) {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<&str> = Vec::new();
        let mut p1 = Vec::with_capacity(self.pairs.labels.len());
        let mut p2 = Vec::with_capacity(self.pairs.labels.len());
        for (a, b) in self.pairs.sentences1.iter().zip(&self.pairs.sentences2) {
            for (s, out) in [(a.as_str(), &mut p1), (b.as_str(), &mut p2)] {
                let next = unique.len();
                let i = *index.entry(s).or_insert(next);
                if i == next {
                    unique.push(s);
                }
                out.push(i);
            }
        }
        (unique, p1, p2)
    }

    /// Encodes the unique sentences with `encoder.encode` and evaluates.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<BinaryResult> {
        let (unique, p1, p2) = self.unique_sentences();
        let embeddings = encoder.encode(&unique, &self.options)?;
        let emb1 = gather(&embeddings, &p1)?;
        let emb2 = gather(&embeddings, &p2)?;
        self.evaluate_embeddings(&emb1, &emb2, sparsity(&embeddings))
    }

    /// Evaluates precomputed embeddings of `sentences1` / `sentences2`; `stats` is reported
    /// as the sparsity (the reference measures it over the unique sentences).
    pub fn evaluate_embeddings(
        &self,
        emb1: &SparseBatch,
        emb2: &SparseBatch,
        stats: SparsityStats,
    ) -> Result<BinaryResult> {
        if emb1.len() != self.pairs.labels.len() || emb2.len() != self.pairs.labels.len() {
            return Err(EvalError::InvalidArgument(format!(
                "{} and {} embeddings for {} pairs",
                emb1.len(),
                emb2.len(),
                self.pairs.labels.len()
            )));
        }
        let mut functions = Vec::new();
        for &f in &self.functions {
            let (scores, greater) = pair_scores(emb1, emb2, f, self.semantics)?;
            let m = classification_metrics(&scores, &self.pairs.labels, greater, self.semantics)?;
            functions.push((f, m));
        }
        Ok(BinaryResult {
            name: self.name.clone(),
            functions,
            sparsity: stats,
        })
    }
}

/// Rows `positions` of `batch`, in that order.
fn gather(batch: &SparseBatch, positions: &[usize]) -> Result<SparseBatch> {
    let mut out = SparseBatch::new(batch.dim());
    for &p in positions {
        let row = batch.row(p).ok_or_else(|| {
            EvalError::InvalidArgument(format!("row {p} of a batch of {}", batch.len()))
        })?;
        out.push(row)?;
    }
    Ok(out)
}

/// sentence-transformers' `SparseInformationRetrievalEvaluator`.
#[derive(Debug, Clone)]
pub struct InformationRetrievalEvaluator {
    /// Key prefix (`{name}_dot_ndcg@10`); empty for none.
    pub name: String,
    /// Queries that have at least one relevant document, in input order.
    pub queries: Vec<(String, String)>,
    /// The corpus in input order.
    pub corpus: Vec<(String, String)>,
    /// Query id -> relevant document ids.
    pub relevant: HashMap<String, HashSet<String>>,
    /// Metric cut-offs.
    pub cutoffs: Cutoffs,
    /// Score function; `None` = the model's `similarity_fn_name`.
    pub function: Option<Similarity>,
    /// Batch size and `max_active_dims` of the encoding.
    pub options: EncodeOptions,
    /// Rank with the index crate's exact search instead of a brute-force scan (dot product
    /// only; identical results, see [`crate::IndexRanker`]).
    pub use_index: bool,
    /// With `use_index`: BMP-style approximate search `(alpha, beta)` instead of the exact one
    /// (to measure what it costs in quality; see `splade_index::Method::Approximate`).
    pub approximate: Option<(f32, f32)>,
}

/// The result of an information-retrieval evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct IrResult {
    /// Key prefix (may be empty).
    pub name: String,
    /// The score function used.
    pub function: Similarity,
    /// The ranking metrics.
    pub metrics: IrMetrics,
    /// Sparsity of the query embeddings.
    pub query_sparsity: SparsityStats,
    /// Sparsity of the corpus embeddings.
    pub corpus_sparsity: SparsityStats,
    /// Mean over vocabulary terms of (share of queries using it) x (share of documents using it).
    pub avg_flops: f64,
    /// Queries evaluated (those with a relevant document).
    pub num_queries: usize,
    /// Documents in the corpus.
    pub num_corpus: usize,
    /// Per vocabulary term, how many query vectors activate it.
    pub query_counts: Vec<u64>,
    /// Per vocabulary term, how many document vectors activate it.
    pub corpus_counts: Vec<u64>,
}

/// Per-dimension count of rows with a non-zero value (`compute_count_vector`).
pub fn count_vector(batch: &SparseBatch) -> Vec<u64> {
    let mut counts = vec![0u64; batch.dim()];
    for row in batch.rows() {
        for (t, v) in row.iter() {
            if v != 0.0 {
                counts[t as usize] += 1;
            }
        }
    }
    counts
}

/// `dot(query_counts / nq, corpus_counts / nc)` (`_calculate_avg_flops`); 0 if either side is empty.
pub fn avg_flops(query_counts: &[u64], nq: usize, corpus_counts: &[u64], nc: usize) -> f64 {
    if nq == 0 || nc == 0 {
        return 0.0;
    }
    query_counts
        .iter()
        .zip(corpus_counts)
        .map(|(&q, &c)| (q as f64 / nq as f64) * (c as f64 / nc as f64))
        .sum()
}

impl InformationRetrievalEvaluator {
    /// An evaluator with the default cut-offs; queries without a relevant document are dropped
    /// (as the reference does). Errors if no query is left or the corpus is empty.
    pub fn new(data: RetrievalData, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let queries: Vec<(String, String)> = data
            .queries
            .into_iter()
            .filter(|(id, _)| data.relevant.get(id).is_some_and(|r| !r.is_empty()))
            .collect();
        let label = if name.is_empty() {
            "the dataset"
        } else {
            &name
        };
        if queries.is_empty() {
            return Err(EvalError::InvalidData(format!(
                "{label}: no query has a relevant document (qrels with score > 0)"
            )));
        }
        if data.corpus.is_empty() {
            return Err(EvalError::InvalidData(format!(
                "{label}: the corpus is empty"
            )));
        }
        Ok(Self {
            name,
            queries,
            corpus: data.corpus,
            relevant: data.relevant,
            cutoffs: Cutoffs::default(),
            function: None,
            options: EncodeOptions::default(),
            use_index: false,
            approximate: None,
        })
    }

    /// Encodes queries with `encode_query` and the corpus with `encode_document`, ranks by
    /// brute force and computes the metrics.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<IrResult> {
        let function = self.function.unwrap_or(encoder.similarity_fn());
        let q: Vec<&str> = self.queries.iter().map(|(_, t)| t.as_str()).collect();
        let c: Vec<&str> = self.corpus.iter().map(|(_, t)| t.as_str()).collect();
        let query_emb = encoder.encode_query(&q, &self.options)?;
        let corpus_emb = encoder.encode_document(&c, &self.options)?;
        self.evaluate_embeddings(&query_emb, &corpus_emb, function)
    }

    /// Evaluates precomputed query and corpus embeddings with the brute-force ranker.
    pub fn evaluate_embeddings(
        &self,
        query_emb: &SparseBatch,
        corpus_emb: &SparseBatch,
        function: Similarity,
    ) -> Result<IrResult> {
        let ids: Vec<&str> = self.corpus.iter().map(|(id, _)| id.as_str()).collect();
        if self.use_index {
            if function != Similarity::Dot {
                return Err(EvalError::InvalidArgument(format!(
                    "the index ranks by dot product; the evaluation asks for {function}"
                )));
            }
            let mut ranker = crate::IndexRanker::new(corpus_emb, &id_ranks(&ids))?;
            if let Some((alpha, beta)) = self.approximate {
                let method = splade_index::Method::approximate(alpha, beta)?;
                ranker = ranker.with_method(method);
            }
            return self.evaluate_with_ranker(query_emb, corpus_emb, function, &ranker);
        }
        let ranker = BruteForceRanker::new(corpus_emb, function, id_ranks(&ids))?;
        self.evaluate_with_ranker(query_emb, corpus_emb, function, &ranker)
    }

    /// Evaluates with any [`Ranker`] over `corpus_emb` (which still provides the sparsity
    /// statistics). The ranker must honour the tie order of [`id_ranks`] over the corpus ids.
    pub fn evaluate_with_ranker(
        &self,
        query_emb: &SparseBatch,
        corpus_emb: &SparseBatch,
        function: Similarity,
        ranker: &dyn Ranker,
    ) -> Result<IrResult> {
        if query_emb.len() != self.queries.len() || corpus_emb.len() != self.corpus.len() {
            return Err(EvalError::InvalidArgument(format!(
                "{} query and {} corpus embeddings for {} queries and {} documents",
                query_emb.len(),
                corpus_emb.len(),
                self.queries.len(),
                self.corpus.len()
            )));
        }
        self.cutoffs.validate()?;
        let hits = ranker.top_k(query_emb, self.cutoffs.max_k())?;
        let mut ranked = Vec::with_capacity(hits.len());
        for row in &hits {
            let mut ids = Vec::with_capacity(row.len());
            for h in row {
                let (id, _) = self.corpus.get(h.doc).ok_or_else(|| {
                    EvalError::InvalidArgument(format!("ranker returned document {}", h.doc))
                })?;
                ids.push(id.as_str());
            }
            ranked.push(ids);
        }
        let relevant: Vec<&HashSet<String>> = self
            .queries
            .iter()
            .map(|(id, _)| &self.relevant[id])
            .collect();
        let metrics = ir_metrics(&ranked, &relevant, &self.cutoffs)?;
        let query_counts = count_vector(query_emb);
        let corpus_counts = count_vector(corpus_emb);
        Ok(IrResult {
            name: self.name.clone(),
            function,
            metrics,
            query_sparsity: sparsity(query_emb),
            corpus_sparsity: sparsity(corpus_emb),
            avg_flops: avg_flops(
                &query_counts,
                query_emb.len(),
                &corpus_counts,
                corpus_emb.len(),
            ),
            num_queries: query_emb.len(),
            num_corpus: corpus_emb.len(),
            query_counts,
            corpus_counts,
        })
    }
}
