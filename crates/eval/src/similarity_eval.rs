//! sentence-transformers' `SparseEmbeddingSimilarityEvaluator`: Pearson and Spearman
//! correlations between gold pair scores (STS-B, SICK) and the embeddings' similarities.
//!
//! Keys (before the name prefix): per function `pearson_{fn}`, `spearman_{fn}`; with more than
//! one function `pearson_max`, `spearman_max`; then `active_dims`, `sparsity_ratio` (the mean
//! of the statistics of the two `encode` calls). Primary metric: `spearman_{main}` with a main
//! similarity, else `spearman_max` with several functions, else `spearman_{fn}`.

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_sparse::{similarity_pairwise, sparsity, Similarity, SparseBatch, SparsityStats};

use crate::correlation::{pearson, spearman};
use crate::error::{EvalError, Result};
use crate::keyed::{keyed, mean_stats, stats_keys, KeyedResult};

/// `SparseEmbeddingSimilarityEvaluator(sentences1, sentences2, scores, ...)`.
#[derive(Debug, Clone)]
pub struct EmbeddingSimilarityEvaluator {
    /// First sentences of the pairs.
    pub sentences1: Vec<String>,
    /// Second sentences.
    pub sentences2: Vec<String>,
    /// Gold similarity of each pair.
    pub scores: Vec<f64>,
    /// `main_similarity`: decides the primary metric (and the function when
    /// [`Self::functions`] is empty).
    pub main_similarity: Option<Similarity>,
    /// `similarity_fn_names`; empty = `[main_similarity]`, or the model's function.
    pub functions: Vec<Similarity>,
    /// Key prefix; empty for none.
    pub name: String,
    /// Batch size and `max_active_dims` of the encoding (the reference's default batch is 16;
    /// batching does not change the vectors).
    pub options: EncodeOptions,
}

impl EmbeddingSimilarityEvaluator {
    /// An evaluator with the reference's defaults (the model's function, no name). Errors when
    /// the three lists differ in length or are empty, or a score is not finite.
    pub fn new(sentences1: Vec<String>, sentences2: Vec<String>, scores: Vec<f64>) -> Result<Self> {
        if sentences1.len() != sentences2.len() || sentences1.len() != scores.len() {
            return Err(EvalError::InvalidArgument(format!(
                "sentences1 ({}), sentences2 ({}) and scores ({}) differ in length",
                sentences1.len(),
                sentences2.len(),
                scores.len()
            )));
        }
        if scores.is_empty() {
            return Err(EvalError::InvalidData(
                "no sentence pairs to evaluate".into(),
            ));
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(EvalError::InvalidData(format!(
                "the score of pair {} is {}",
                i + 1,
                scores[i]
            )));
        }
        Ok(Self {
            sentences1,
            sentences2,
            scores,
            main_similarity: None,
            functions: Vec::new(),
            name: String::new(),
            options: EncodeOptions::default(),
        })
    }

    /// The functions evaluated, given the model's own.
    pub fn resolved_functions(&self, model_function: Similarity) -> Vec<Similarity> {
        if !self.functions.is_empty() {
            self.functions.clone()
        } else if let Some(main) = self.main_similarity {
            vec![main]
        } else {
            vec![model_function]
        }
    }

    /// Encodes both sides with `encoder.encode` and evaluates.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<KeyedResult> {
        let e1 = encoder.encode(&self.sentences1, &self.options)?;
        let e2 = encoder.encode(&self.sentences2, &self.options)?;
        self.evaluate_embeddings(&e1, &e2, encoder.similarity_fn())
    }

    /// Evaluates precomputed embeddings of both sides.
    pub fn evaluate_embeddings(
        &self,
        emb1: &SparseBatch,
        emb2: &SparseBatch,
        model_function: Similarity,
    ) -> Result<KeyedResult> {
        let n = self.scores.len();
        if emb1.len() != n || emb2.len() != n {
            return Err(EvalError::InvalidArgument(format!(
                "{} and {} embeddings for {n} pairs",
                emb1.len(),
                emb2.len()
            )));
        }
        let functions = self.resolved_functions(model_function);
        let mut metrics = Vec::new();
        let (mut pearsons, mut spearmans) = (Vec::new(), Vec::new());
        for f in &functions {
            let s: Vec<f64> = similarity_pairwise(emb1, emb2, *f)
                .into_iter()
                .map(f64::from)
                .collect();
            let p = pearson(&self.scores, &s);
            let r = spearman(&self.scores, &s);
            metrics.push((format!("pearson_{}", f.name()), p));
            metrics.push((format!("spearman_{}", f.name()), r));
            pearsons.push(p);
            spearmans.push(r);
        }
        if functions.len() > 1 {
            metrics.push(("pearson_max".into(), python_max(&pearsons)));
            metrics.push(("spearman_max".into(), python_max(&spearmans)));
        }
        let primary = match (self.main_similarity, functions.as_slice()) {
            (Some(main), _) => format!("spearman_{}", main.name()),
            (None, [one]) => format!("spearman_{}", one.name()),
            _ => "spearman_max".to_string(),
        };
        let stats: SparsityStats = mean_stats(&[sparsity(emb1), sparsity(emb2)]);
        metrics.extend(stats_keys("", stats));
        Ok(keyed(&self.name, metrics, &primary))
    }
}

/// Python's `max` over floats: a later value replaces the best only when strictly greater
/// (comparisons with NaN are false, as in Python).
pub(crate) fn python_max(values: &[f64]) -> f64 {
    let mut it = values.iter().copied();
    let Some(mut best) = it.next() else {
        return f64::NAN;
    };
    for v in it {
        if v > best {
            best = v;
        }
    }
    best
}
