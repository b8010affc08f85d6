//! sentence-transformers' `SparseTranslationEvaluator`: for each source sentence, is its own
//! target the most cosine-similar of all targets (and the other way round)?
//!
//! Keys (before the name prefix): `src2trg_accuracy`, `trg2src_accuracy`, `mean_accuracy`
//! (primary), `active_dims`, `sparsity_ratio` (the mean of the statistics of the two `encode`
//! calls). The best match is the first maximum (`np.argmax`); a match counts when its text
//! equals the expected one, so duplicated sentences count as found.

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_sparse::{similarity, sparsity, Similarity, SparseBatch};

use crate::error::{EvalError, Result};
use crate::keyed::{keyed, mean_stats, stats_keys, KeyedResult};

/// `SparseTranslationEvaluator(source_sentences, target_sentences, ...)`.
#[derive(Debug, Clone)]
pub struct TranslationEvaluator {
    /// Source sentences.
    pub source_sentences: Vec<String>,
    /// Their translations (paraphrases), aligned.
    pub target_sentences: Vec<String>,
    /// Key prefix; empty for none.
    pub name: String,
    /// Batch size and `max_active_dims` of the encoding.
    pub options: EncodeOptions,
}

impl TranslationEvaluator {
    /// Errors when the lists differ in length or are empty.
    pub fn new(source_sentences: Vec<String>, target_sentences: Vec<String>) -> Result<Self> {
        if source_sentences.len() != target_sentences.len() {
            return Err(EvalError::InvalidArgument(format!(
                "source_sentences ({}) and target_sentences ({}) differ in length",
                source_sentences.len(),
                target_sentences.len()
            )));
        }
        if source_sentences.is_empty() {
            return Err(EvalError::InvalidData("no sentences to evaluate".into()));
        }
        Ok(Self {
            source_sentences,
            target_sentences,
            name: String::new(),
            options: EncodeOptions::default(),
        })
    }

    /// Encodes both sides with `encoder.encode` and evaluates.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<KeyedResult> {
        let s = encoder.encode(&self.source_sentences, &self.options)?;
        let t = encoder.encode(&self.target_sentences, &self.options)?;
        self.evaluate_embeddings(&s, &t)
    }

    /// Evaluates precomputed embeddings of both sides.
    pub fn evaluate_embeddings(
        &self,
        sources: &SparseBatch,
        targets: &SparseBatch,
    ) -> Result<KeyedResult> {
        let n = self.source_sentences.len();
        if sources.len() != n || targets.len() != n {
            return Err(EvalError::InvalidArgument(format!(
                "{} and {} embeddings for {n} sentence pairs",
                sources.len(),
                targets.len()
            )));
        }
        let sims = similarity(sources, targets, Similarity::Cosine);
        let mut src2trg = 0usize;
        let mut trg2src = 0usize;
        for i in 0..n {
            let j = first_max((0..n).map(|j| sims.get(i, j)));
            if self.target_sentences[i] == self.target_sentences[j] {
                src2trg += 1;
            }
            let j = first_max((0..n).map(|j| sims.get(j, i)));
            if self.source_sentences[i] == self.source_sentences[j] {
                trg2src += 1;
            }
        }
        let a = src2trg as f64 / n as f64;
        let b = trg2src as f64 / n as f64;
        let mut metrics = vec![
            ("src2trg_accuracy".to_string(), a),
            ("trg2src_accuracy".to_string(), b),
            ("mean_accuracy".to_string(), (a + b) / 2.0),
        ];
        metrics.extend(stats_keys(
            "",
            mean_stats(&[sparsity(sources), sparsity(targets)]),
        ));
        Ok(keyed(&self.name, metrics, "mean_accuracy"))
    }
}

/// `np.argmax`: the position of the first maximum (a NaN counts as the maximum).
fn first_max(values: impl Iterator<Item = f32>) -> usize {
    let mut best: Option<(usize, f32)> = None;
    for (j, v) in values.enumerate() {
        match best {
            None => best = Some((j, v)),
            Some((_, b)) if b.is_nan() => break,
            Some((_, b)) if v.is_nan() || v > b => best = Some((j, v)),
            _ => {}
        }
    }
    best.map_or(0, |(j, _)| j)
}
