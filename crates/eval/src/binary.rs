//! Binary classification metrics from pair scores and 0/1 labels, exactly as
//! sentence-transformers' `BinaryClassificationEvaluator` (6.2) computes them.
//!
//! Reference: `sentence_transformer/evaluation/binary_classification.py`
//! (`compute_metrics`, `find_best_acc_and_threshold`, `find_best_f1_and_threshold`) and
//! scikit-learn's `average_precision_score` / `matthews_corrcoef`. No model is involved here:
//! [`classification_metrics`] takes the scores.

use splade_sparse::{Similarity, SparseBatch};

use crate::error::{EvalError, Result};

/// Which version of the reference semantics to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThresholdSemantics {
    /// sentence-transformers >= 5.7: Euclidean and Manhattan scores are positive distances
    /// (smaller = more similar), tied scores form one candidate threshold, and the accuracy
    /// search starts from "everything dissimilar".
    #[default]
    Current,
    /// sentence-transformers < 5.7 (the seed model card): Euclidean and Manhattan scores are
    /// the *negated* distances of `pairwise_*_sim` but still ranked as if smaller were more
    /// similar (hence negative thresholds), every sorted position (not every distinct score)
    /// is a candidate, and the last row is never one.
    Legacy,
}

/// The metrics of one similarity function (the reference's per-function dictionary).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BinaryMetrics {
    /// Best accuracy over all thresholds.
    pub accuracy: f64,
    /// The threshold giving [`Self::accuracy`].
    pub accuracy_threshold: f64,
    /// Best F1 over all thresholds.
    pub f1: f64,
    /// The threshold giving [`Self::f1`].
    pub f1_threshold: f64,
    /// Precision at the best-F1 threshold.
    pub precision: f64,
    /// Recall at the best-F1 threshold.
    pub recall: f64,
    /// Average precision (scikit-learn's `average_precision_score`).
    pub ap: f64,
    /// Matthews correlation of the best-F1 predictions (scikit-learn's `matthews_corrcoef`).
    pub mcc: f64,
}

impl BinaryMetrics {
    /// Metric names in the reference's order, as used in report keys (`cosine_accuracy`, ...).
    pub const NAMES: [&'static str; 8] = [
        "accuracy",
        "accuracy_threshold",
        "f1",
        "f1_threshold",
        "precision",
        "recall",
        "ap",
        "mcc",
    ];

    /// The values in the order of [`Self::NAMES`].
    pub fn values(&self) -> [f64; 8] {
        [
            self.accuracy,
            self.accuracy_threshold,
            self.f1,
            self.f1_threshold,
            self.precision,
            self.recall,
            self.ap,
            self.mcc,
        ]
    }
}

/// Pair scores for `function` as the reference feeds them to the threshold search, and
/// whether larger scores mean "more similar" (`greater_is_better`).
///
/// Cosine and dot are similarities. Euclidean and Manhattan are positive distances with
/// [`ThresholdSemantics::Current`] (ST >= 5.7, issue #3702) and negative distances ranked the
/// wrong way round with [`ThresholdSemantics::Legacy`].
pub fn pair_scores(
    a: &SparseBatch,
    b: &SparseBatch,
    function: Similarity,
    semantics: ThresholdSemantics,
) -> Result<(Vec<f32>, bool)> {
    if a.len() != b.len() {
        return Err(EvalError::InvalidArgument(format!(
            "pair scores need equally many rows, got {} and {}",
            a.len(),
            b.len()
        )));
    }
    let raw = a.rows().zip(b.rows()).map(|(x, y)| function.score(&x, &y));
    Ok(match (function, semantics) {
        (Similarity::Cosine | Similarity::Dot, _) => (raw.collect(), true),
        (_, ThresholdSemantics::Current) => (raw.map(|s| -s).collect(), false),
        (_, ThresholdSemantics::Legacy) => (raw.collect(), false),
    })
}

/// All metrics of one similarity function from its scores (see [`pair_scores`]) and labels.
///
/// Errors on a length mismatch or a NaN score.
pub fn classification_metrics(
    scores: &[f32],
    labels: &[bool],
    greater_is_better: bool,
    semantics: ThresholdSemantics,
) -> Result<BinaryMetrics> {
    if scores.len() != labels.len() {
        return Err(EvalError::InvalidArgument(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(EvalError::InvalidData(format!("score of pair {i} is NaN")));
    }
    let (accuracy, accuracy_threshold, (f1, precision, recall, f1_threshold)) = match semantics {
        ThresholdSemantics::Current => {
            let (acc, thr) = best_accuracy(scores, labels, greater_is_better);
            (acc, thr, best_f1(scores, labels, greater_is_better))
        }
        ThresholdSemantics::Legacy => {
            let (acc, thr) = legacy_best_accuracy(scores, labels, greater_is_better);
            (acc, thr, legacy_best_f1(scores, labels, greater_is_better))
        }
    };
    let signed: Vec<f32> = if greater_is_better {
        scores.to_vec()
    } else {
        scores.iter().map(|s| -s).collect()
    };
    let ap = average_precision(labels, &signed);
    let predicted: Vec<bool> = scores
        .iter()
        .map(|&s| {
            if greater_is_better {
                s >= f1_threshold
            } else {
                s <= f1_threshold
            }
        })
        .collect();
    let mcc = matthews_corrcoef(labels, &predicted);
    Ok(BinaryMetrics {
        accuracy,
        accuracy_threshold: accuracy_threshold as f64,
        f1,
        f1_threshold: f1_threshold as f64,
        precision,
        recall,
        ap,
        mcc,
    })
}

/// Rows sorted most-similar first; a stable sort, as Python's `sorted(..., reverse=True)`
/// keeps equal scores in input order.
fn sorted_rows(scores: &[f32], labels: &[bool], greater_is_better: bool) -> Vec<(f32, bool)> {
    let mut rows: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    if greater_is_better {
        rows.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    } else {
        rows.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    }
    rows
}

/// The threshold between score group `i` and the next one: their midpoint in f32 (as numpy
/// float32 arithmetic gives), or the group's own score when that is the last group or the
/// rounded midpoint would swallow the next group.
fn group_threshold(rows: &[(f32, bool)], i: usize) -> f32 {
    let score = rows[i].0;
    match rows.get(i + 1) {
        None => score,
        Some(&(next, _)) => {
            let mid = (score + next) / 2.0;
            if mid == next {
                score
            } else {
                mid
            }
        }
    }
}

/// `find_best_acc_and_threshold` (ST >= 5.7): best accuracy and its threshold. Starts from
/// "every pair dissimilar" (threshold just beyond the most similar score); tied scores are
/// one candidate.
pub fn best_accuracy(scores: &[f32], labels: &[bool], greater_is_better: bool) -> (f64, f32) {
    let rows = sorted_rows(scores, labels, greater_is_better);
    let n = rows.len();
    let mut max_acc = 0.0f64;
    let mut best_threshold = -1.0f32;
    let mut positive_so_far = 0usize;
    let mut remaining_negatives = labels.iter().filter(|l| !**l).count();
    if let Some(&(first, _)) = rows.first() {
        max_acc = remaining_negatives as f64 / n as f64;
        best_threshold = next_after(first, greater_is_better);
    }
    for i in 0..n {
        if rows[i].1 {
            positive_so_far += 1;
        } else {
            remaining_negatives -= 1;
        }
        let is_last = i + 1 == n;
        if !is_last && rows[i].0 == rows[i + 1].0 {
            continue;
        }
        let acc = (positive_so_far + remaining_negatives) as f64 / n as f64;
        if acc > max_acc {
            max_acc = acc;
            best_threshold = group_threshold(&rows, i);
        }
    }
    (max_acc, best_threshold)
}

/// `np.nextafter(x, ±inf, dtype=float32)`.
fn next_after(x: f32, up: bool) -> f32 {
    if x.is_infinite() && (x > 0.0) == up {
        return x;
    }
    if x == 0.0 {
        let tiny = f32::from_bits(1);
        return if up { tiny } else { -tiny };
    }
    let bits = x.to_bits();
    // Moving away from zero increments the magnitude bits, towards zero decrements them.
    let away = (x > 0.0) == up;
    f32::from_bits(if away { bits + 1 } else { bits - 1 })
}

/// `find_best_f1_and_threshold` (ST >= 5.7): `(f1, precision, recall, threshold)`; tied
/// scores are one candidate. With no positive label everything is 0.
pub fn best_f1(scores: &[f32], labels: &[bool], greater_is_better: bool) -> (f64, f64, f64, f32) {
    let rows = sorted_rows(scores, labels, greater_is_better);
    let n = rows.len();
    let total_positive = labels.iter().filter(|l| **l).count();
    let (mut best_f1, mut best_precision, mut best_recall) = (0.0f64, 0.0f64, 0.0f64);
    let mut threshold = 0.0f32;
    let (mut nextract, mut ncorrect) = (0usize, 0usize);
    for i in 0..n {
        nextract += 1;
        if rows[i].1 {
            ncorrect += 1;
        }
        let is_last = i + 1 == n;
        if !is_last && rows[i].0 == rows[i + 1].0 {
            continue;
        }
        if ncorrect > 0 {
            let (f1, precision, recall) = f1_at(ncorrect, nextract, total_positive);
            if f1 > best_f1 {
                best_f1 = f1;
                best_precision = precision;
                best_recall = recall;
                threshold = group_threshold(&rows, i);
            }
        }
    }
    (best_f1, best_precision, best_recall, threshold)
}

/// F1, precision and recall when the top `nextract` rows are predicted positive and
/// `ncorrect` of them are (sklearn's float64 arithmetic).
fn f1_at(ncorrect: usize, nextract: usize, total_positive: usize) -> (f64, f64, f64) {
    let precision = ncorrect as f64 / nextract as f64;
    let recall = ncorrect as f64 / total_positive as f64;
    (
        2.0 * precision * recall / (precision + recall),
        precision,
        recall,
    )
}

/// The pre-5.7 `find_best_acc_and_threshold`: candidates between consecutive sorted rows
/// (ties not grouped, the last row never a candidate); 0 and -1 when nothing beats 0.
pub fn legacy_best_accuracy(
    scores: &[f32],
    labels: &[bool],
    greater_is_better: bool,
) -> (f64, f32) {
    let rows = sorted_rows(scores, labels, greater_is_better);
    let n = rows.len();
    let mut max_acc = 0.0f64;
    let mut best_threshold = -1.0f32;
    let mut positive_so_far = 0usize;
    let mut remaining_negatives = labels.iter().filter(|l| !**l).count();
    for i in 0..n.saturating_sub(1) {
        if rows[i].1 {
            positive_so_far += 1;
        } else {
            remaining_negatives -= 1;
        }
        let acc = (positive_so_far + remaining_negatives) as f64 / n as f64;
        if acc > max_acc {
            max_acc = acc;
            best_threshold = (rows[i].0 + rows[i + 1].0) / 2.0;
        }
    }
    (max_acc, best_threshold)
}

/// The pre-5.7 `find_best_f1_and_threshold` (ties not grouped, last row never a candidate).
pub fn legacy_best_f1(
    scores: &[f32],
    labels: &[bool],
    greater_is_better: bool,
) -> (f64, f64, f64, f32) {
    let rows = sorted_rows(scores, labels, greater_is_better);
    let n = rows.len();
    let total_positive = labels.iter().filter(|l| **l).count();
    let (mut best_f1, mut best_precision, mut best_recall) = (0.0f64, 0.0f64, 0.0f64);
    let mut threshold = 0.0f32;
    let (mut nextract, mut ncorrect) = (0usize, 0usize);
    for i in 0..n.saturating_sub(1) {
        nextract += 1;
        if rows[i].1 {
            ncorrect += 1;
        }
        if ncorrect > 0 {
            let (f1, precision, recall) = f1_at(ncorrect, nextract, total_positive);
            if f1 > best_f1 {
                best_f1 = f1;
                best_precision = precision;
                best_recall = recall;
                threshold = (rows[i].0 + rows[i + 1].0) / 2.0;
            }
        }
    }
    (best_f1, best_precision, best_recall, threshold)
}

/// scikit-learn's `average_precision_score(labels, scores)`: the step integral
/// `Σ (R_n - R_{n-1}) P_n` over distinct score thresholds, highest first. 0 without positives.
pub fn average_precision(labels: &[bool], scores: &[f32]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let total_positive = labels.iter().filter(|l| **l).count();
    if total_positive == 0 {
        return 0.0;
    }
    let mut ap = 0.0f64;
    let mut prev_recall = 0.0f64;
    let mut tps = 0usize;
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] {
            tps += 1;
        }
        let group_end = order
            .get(rank + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if group_end {
            let precision = tps as f64 / (rank + 1) as f64;
            let recall = tps as f64 / total_positive as f64;
            ap += (recall - prev_recall) * precision;
            prev_recall = recall;
        }
    }
    ap.max(0.0)
}

/// scikit-learn's `matthews_corrcoef` for two boolean label vectors (its multiclass
/// covariance formula in f64; 0 when either side has a single class).
pub fn matthews_corrcoef(truth: &[bool], predicted: &[bool]) -> f64 {
    let mut c = [[0u64; 2]; 2];
    for (&t, &p) in truth.iter().zip(predicted) {
        c[t as usize][p as usize] += 1;
    }
    let t_sum = [(c[0][0] + c[0][1]) as f64, (c[1][0] + c[1][1]) as f64];
    let p_sum = [(c[0][0] + c[1][0]) as f64, (c[0][1] + c[1][1]) as f64];
    let n_correct = (c[0][0] + c[1][1]) as f64;
    let n = p_sum[0] + p_sum[1];
    let cov_ytyp = n_correct * n - (t_sum[0] * p_sum[0] + t_sum[1] * p_sum[1]);
    let cov_ypyp = n * n - (p_sum[0] * p_sum[0] + p_sum[1] * p_sum[1]);
    let cov_ytyt = n * n - (t_sum[0] * t_sum[0] + t_sum[1] * t_sum[1]);
    let denom = cov_ypyp * cov_ytyt;
    if denom == 0.0 {
        0.0
    } else {
        cov_ytyp / denom.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_form_one_threshold_candidate() {
        // Scores 0.5 (pos), 0.5 (neg), 0.2 (pos), 0.1 (neg).
        let scores = [0.5, 0.5, 0.2, 0.1];
        let labels = [true, false, true, false];
        let (acc, thr) = best_accuracy(&scores, &labels, true);
        // Candidates: none (0.5), after 0.5 group (2/4), after 0.2 (3/4), all (2/4).
        assert_eq!(acc, 0.75);
        assert_eq!(thr, 0.15);
        let (f1, p, r, t) = best_f1(&scores, &labels, true);
        assert_eq!((p, r, t), (2.0 / 3.0, 1.0, 0.15));
        assert!((f1 - 0.8).abs() < 1e-12);
    }

    #[test]
    fn distances_rank_small_first() {
        let scores = [1.0, 3.0, 2.0];
        let labels = [true, false, true];
        let (acc, thr) = best_accuracy(&scores, &labels, false);
        assert_eq!((acc, thr), (1.0, 2.5));
        let m =
            classification_metrics(&scores, &labels, false, ThresholdSemantics::Current).unwrap();
        assert_eq!(m.ap, 1.0);
        assert_eq!(m.mcc, 1.0);
    }

    #[test]
    fn average_precision_matches_sklearn_example() {
        // sklearn: average_precision_score([1,0,1,0], [0.5,0.5,0.2,0.1]) = 0.58333...
        let ap = average_precision(&[true, false, true, false], &[0.5, 0.5, 0.2, 0.1]);
        assert!((ap - 0.5833333333333333).abs() < 1e-15);
        assert_eq!(average_precision(&[false, false], &[0.1, 0.2]), 0.0);
    }

    #[test]
    fn next_after_matches_numpy() {
        assert_eq!(next_after(1.0, true), 1.0000001);
        assert_eq!(next_after(-1.0, false), -1.0000001);
        assert_eq!(next_after(1.0, false), 0.99999994);
        assert_eq!(next_after(0.0, false), -f32::from_bits(1));
    }

    #[test]
    fn nan_scores_are_an_error() {
        let e = classification_metrics(&[f32::NAN], &[true], true, ThresholdSemantics::Current);
        assert!(e.is_err());
    }
}
