//! Evaluators of splade-rs with sentence-transformers' exact semantics (6.2):
//!
//! * [`binary`]: `SparseBinaryClassificationEvaluator` metrics from pair scores (accuracy,
//!   F1, precision, recall, AP, MCC and thresholds for cosine, dot, Euclidean, Manhattan),
//!   with the current (>= 5.7) and the legacy (seed model card) distance semantics;
//! * [`ir`]: `SparseInformationRetrievalEvaluator` metrics from rankings (accuracy@k,
//!   precision@k, recall@k, NDCG@k, MRR@k, MAP@k);
//! * [`ranking`]: exact top-k retrieval behind the [`ranking::Ranker`] trait;
//! * [`nanobeir`]: `SparseNanoBEIREvaluator`-style aggregation over datasets;
//! * [`similarity_eval`], [`triplet_eval`], [`reranking`], [`mse_eval`], [`translation_eval`],
//!   [`rrf_eval`]: `SparseEmbeddingSimilarityEvaluator`, `SparseTripletEvaluator`,
//!   `SparseRerankingEvaluator`, `SparseMSEEvaluator`, `SparseTranslationEvaluator` and
//!   `ReciprocalRankFusionEvaluator`, each returning a [`KeyedResult`] with the reference's keys
//!   in its order ([`correlation`]: SciPy's Pearson and Spearman);
//! * [`data`]: pair TSV and BEIR folder readers; [`hf_parquet`]: the Hugging Face NanoBEIR
//!   parquet layout; [`evaluator`]: the model-running parts;
//!   [`report`]: flat keys, JSON and markdown tables.
//!
//! See `scripts/parity/EVAL_SEMANTICS.md` for the reference semantics, with source references.

#![warn(missing_docs)]

pub mod binary;
pub mod corpus;
pub mod correlation;
mod error;
pub mod evaluator;
pub mod index_ranker;
pub mod ir;
pub mod keyed;
pub mod mse_eval;
pub mod nanobeir;
pub mod ranking;
pub mod report;
pub mod reranking;
pub mod rrf_eval;
pub mod similarity_eval;
pub mod translation_eval;
pub mod trec;
pub mod triplet_eval;

/// The dataset readers, from `splade-data` (kept under their former paths).
pub use splade_data::{beir as data, datasets, parquet as hf_parquet};

pub use binary::{BinaryMetrics, ThresholdSemantics};
pub use error::{EvalError, Result};
pub use evaluator::{
    BinaryClassificationEvaluator, BinaryResult, InformationRetrievalEvaluator, IrResult,
};
pub use index_ranker::IndexRanker;
pub use ir::{Cutoffs, IrMetrics};
pub use keyed::KeyedResult;
pub use mse_eval::MseEvaluator;
pub use nanobeir::{aggregate, Aggregate, NanoBeirEvaluator, DEFAULT_AGGREGATE_NAME};
pub use ranking::{BruteForceRanker, Hit, Ranker};
pub use reranking::{RerankingEvaluator, RerankingSample};
pub use rrf_eval::{RankedSample, ReciprocalRankFusionEvaluator};
pub use similarity_eval::EmbeddingSimilarityEvaluator;
pub use translation_eval::TranslationEvaluator;
pub use triplet_eval::TripletEvaluator;
