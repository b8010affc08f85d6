//! sentence-transformers' `SparseMSEEvaluator` (knowledge distillation): the mean squared
//! error, over every vocabulary entry, between a teacher's embeddings of source sentences and
//! the evaluated model's embeddings of target sentences, times 100 and negated.
//!
//! Keys (before the name prefix): `negative_mse` (primary), `active_dims`, `sparsity_ratio`
//! (of the evaluated model's embeddings only: the reference resets its statistics after
//! encoding the teacher's). `max_active_dims` applies to the teacher too, as in the reference.

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_sparse::{sparsity, SparseBatch};

use crate::error::{EvalError, Result};
use crate::keyed::{keyed, stats_keys, KeyedResult};

/// `SparseMSEEvaluator(source_sentences, target_sentences, teacher_model, ...)` with the
/// teacher's embeddings computed once.
#[derive(Debug, Clone)]
pub struct MseEvaluator {
    /// The teacher's embeddings of the source sentences.
    pub source_embeddings: SparseBatch,
    /// The sentences the evaluated model encodes.
    pub target_sentences: Vec<String>,
    /// Key prefix; empty for none.
    pub name: String,
    /// Batch size and `max_active_dims` of the evaluated model's encoding.
    pub options: EncodeOptions,
}

impl MseEvaluator {
    /// Encodes `sources` with the teacher (`encode`, with `options`), as the reference's
    /// constructor does. Errors when the lists differ in length or are empty.
    pub fn with_teacher(
        teacher: &SparseEncoder,
        sources: &[String],
        targets: Vec<String>,
        options: EncodeOptions,
    ) -> Result<Self> {
        if sources.len() != targets.len() {
            return Err(EvalError::InvalidArgument(format!(
                "source_sentences ({}) and target_sentences ({}) must have the same length",
                sources.len(),
                targets.len()
            )));
        }
        let source_embeddings = teacher.encode(sources, &options)?;
        Self::from_embeddings(source_embeddings, targets, options)
    }

    /// Takes the teacher's embeddings as given (one row per target sentence).
    pub fn from_embeddings(
        source_embeddings: SparseBatch,
        target_sentences: Vec<String>,
        options: EncodeOptions,
    ) -> Result<Self> {
        if source_embeddings.len() != target_sentences.len() {
            return Err(EvalError::InvalidArgument(format!(
                "{} source embeddings for {} target sentences",
                source_embeddings.len(),
                target_sentences.len()
            )));
        }
        if target_sentences.is_empty() {
            return Err(EvalError::InvalidData("no sentences to evaluate".into()));
        }
        Ok(Self {
            source_embeddings,
            target_sentences,
            name: String::new(),
            options,
        })
    }

    /// Encodes the targets with `encoder.encode` and evaluates.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<KeyedResult> {
        let target = encoder.encode(&self.target_sentences, &self.options)?;
        self.evaluate_embeddings(&target)
    }

    /// Evaluates precomputed target embeddings.
    pub fn evaluate_embeddings(&self, target: &SparseBatch) -> Result<KeyedResult> {
        if target.len() != self.source_embeddings.len()
            || target.dim() != self.source_embeddings.dim()
        {
            return Err(EvalError::InvalidArgument(format!(
                "{} target embeddings of dimension {} against {} source embeddings of dimension {}",
                target.len(),
                target.dim(),
                self.source_embeddings.len(),
                self.source_embeddings.dim()
            )));
        }
        let mut sum = 0.0f64;
        for (s, t) in self.source_embeddings.rows().zip(target.rows()) {
            sum += squared_distance(&s, &t);
        }
        let cells = (target.len() * target.dim()) as f64;
        let mse = sum / cells * 100.0;
        let mut metrics = vec![("negative_mse".to_string(), -mse)];
        metrics.extend(stats_keys("", sparsity(target)));
        Ok(keyed(&self.name, metrics, "negative_mse"))
    }
}

/// Σ (a_i − b_i)² over the union of both vectors' indices, in f64.
fn squared_distance(a: &splade_sparse::SparseView<'_>, b: &splade_sparse::SparseView<'_>) -> f64 {
    let (ai, av) = (a.indices(), a.values());
    let (bi, bv) = (b.indices(), b.values());
    let (mut i, mut j, mut sum) = (0, 0, 0.0f64);
    while i < ai.len() || j < bi.len() {
        let d = match (ai.get(i), bi.get(j)) {
            (Some(x), Some(y)) if x == y => {
                let d = f64::from(av[i]) - f64::from(bv[j]);
                i += 1;
                j += 1;
                d
            }
            (Some(x), Some(y)) if x < y => {
                i += 1;
                f64::from(av[i - 1])
            }
            (Some(_), None) => {
                i += 1;
                f64::from(av[i - 1])
            }
            _ => {
                j += 1;
                f64::from(bv[j - 1])
            }
        };
        sum += d * d;
    }
    sum
}
