//! sentence-transformers' `SparseTripletEvaluator`: the share of (anchor, positive, negative)
//! triplets where the anchor is more similar to the positive than to the negative by more
//! than a margin.
//!
//! Keys (before the name prefix): `{fn}_accuracy` per function; `max_accuracy` with more than
//! one; then `anchor_active_dims`, `anchor_sparsity_ratio`, `positive_…`, `negative_…`.
//! Anchors are encoded with `encode_query`, positives and negatives with `encode_document`.
//! Primary metric: `{main}_accuracy`, else `max_accuracy` with several functions, else
//! `{fn}_accuracy`.

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_sparse::{similarity_pairwise, sparsity, Similarity, SparseBatch};

use crate::error::{EvalError, Result};
use crate::keyed::{keyed, stats_keys, KeyedResult};
use crate::similarity_eval::python_max;

/// `SparseTripletEvaluator(anchors, positives, negatives, ...)`.
#[derive(Debug, Clone)]
pub struct TripletEvaluator {
    /// Anchor texts.
    pub anchors: Vec<String>,
    /// Positive texts.
    pub positives: Vec<String>,
    /// Negative texts.
    pub negatives: Vec<String>,
    /// `main_similarity_function`: the primary metric (and the function when
    /// [`Self::functions`] is empty).
    pub main_similarity: Option<Similarity>,
    /// `similarity_fn_names`; empty = `[main]`, or the model's function.
    pub functions: Vec<Similarity>,
    /// Margin per function (`margin`, default 0 for every function): a triplet counts when
    /// `score(a, p) > score(a, n) + margin` (float32, as torch compares).
    pub margins: Vec<(Similarity, f32)>,
    /// Key prefix; empty for none.
    pub name: String,
    /// Batch size and `max_active_dims` of the encoding.
    pub options: EncodeOptions,
}

impl TripletEvaluator {
    /// An evaluator with the reference's defaults. Errors when the lists differ in length or
    /// are empty.
    pub fn new(
        anchors: Vec<String>,
        positives: Vec<String>,
        negatives: Vec<String>,
    ) -> Result<Self> {
        if anchors.len() != positives.len() || anchors.len() != negatives.len() {
            return Err(EvalError::InvalidArgument(format!(
                "anchors ({}), positives ({}) and negatives ({}) differ in length",
                anchors.len(),
                positives.len(),
                negatives.len()
            )));
        }
        if anchors.is_empty() {
            return Err(EvalError::InvalidData("no triplets to evaluate".into()));
        }
        Ok(Self {
            anchors,
            positives,
            negatives,
            main_similarity: None,
            functions: Vec::new(),
            margins: Vec::new(),
            name: String::new(),
            options: EncodeOptions::default(),
        })
    }

    fn margin(&self, f: Similarity) -> f32 {
        self.margins
            .iter()
            .rev()
            .find(|(g, _)| *g == f)
            .map_or(0.0, |(_, m)| *m)
    }

    /// Encodes the three columns and evaluates.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<KeyedResult> {
        let a = encoder.encode_query(&self.anchors, &self.options)?;
        let p = encoder.encode_document(&self.positives, &self.options)?;
        let n = encoder.encode_document(&self.negatives, &self.options)?;
        self.evaluate_embeddings(&a, &p, &n, encoder.similarity_fn())
    }

    /// Evaluates precomputed embeddings of the three columns.
    pub fn evaluate_embeddings(
        &self,
        anchors: &SparseBatch,
        positives: &SparseBatch,
        negatives: &SparseBatch,
        model_function: Similarity,
    ) -> Result<KeyedResult> {
        let rows = self.anchors.len();
        if anchors.len() != rows || positives.len() != rows || negatives.len() != rows {
            return Err(EvalError::InvalidArgument(format!(
                "{}, {} and {} embeddings for {rows} triplets",
                anchors.len(),
                positives.len(),
                negatives.len()
            )));
        }
        let functions = if !self.functions.is_empty() {
            self.functions.clone()
        } else if let Some(main) = self.main_similarity {
            vec![main]
        } else {
            vec![model_function]
        };
        let mut metrics = Vec::new();
        let mut accuracies = Vec::new();
        for f in &functions {
            let pos = similarity_pairwise(anchors, positives, *f);
            let neg = similarity_pairwise(anchors, negatives, *f);
            let margin = self.margin(*f);
            let hits = pos
                .iter()
                .zip(&neg)
                .filter(|(p, n)| **p > **n + margin)
                .count();
            // torch: (bool tensor).float().mean().item(), a float32 mean.
            let accuracy = f64::from(hits as f32 / rows as f32);
            metrics.push((format!("{}_accuracy", f.name()), accuracy));
            accuracies.push(accuracy);
        }
        if functions.len() > 1 {
            metrics.push(("max_accuracy".into(), python_max(&accuracies)));
        }
        let primary = match (self.main_similarity, functions.as_slice()) {
            (Some(main), _) => format!("{}_accuracy", main.name()),
            (None, [one]) => format!("{}_accuracy", one.name()),
            _ => "max_accuracy".to_string(),
        };
        metrics.extend(stats_keys("anchor_", sparsity(anchors)));
        metrics.extend(stats_keys("positive_", sparsity(positives)));
        metrics.extend(stats_keys("negative_", sparsity(negatives)));
        Ok(keyed(&self.name, metrics, &primary))
    }
}
