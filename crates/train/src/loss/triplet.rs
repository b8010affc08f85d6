//! `SparseTripletLoss`: `mean(relu(d(anchor, positive) − d(anchor, negative) + margin))`.

use candle_core::{Result, Tensor};

use super::pairs::pairwise_cosine;

/// The distance of `SparseTripletLoss` (`TripletDistanceMetric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TripletDistance {
    /// `‖a − b‖₂` (the default).
    #[default]
    Euclidean,
    /// `1 − cos(a, b)`.
    Cosine,
    /// `‖a − b‖₁`.
    Manhattan,
}

impl TripletDistance {
    /// The distance of each row pair, `[batch]`.
    pub fn distance(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            TripletDistance::Euclidean => (a - b)?.sqr()?.sum(1)?.sqrt(),
            TripletDistance::Manhattan => (a - b)?.abs()?.sum(1),
            TripletDistance::Cosine => pairwise_cosine(a, b)?.affine(-1.0, 1.0),
        }
    }

    /// The name sentence-transformers gives it (`TripletDistanceMetric.EUCLIDEAN`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TripletDistance::Euclidean => "EUCLIDEAN",
            TripletDistance::Cosine => "COSINE",
            TripletDistance::Manhattan => "MANHATTAN",
        }
    }
}

/// `SparseTripletLoss(distance_metric, triplet_margin)` on `[anchors, positives, negatives]`
/// (the reference's defaults: Euclidean, margin 5).
pub fn triplet_loss(columns: &[Tensor], distance: TripletDistance, margin: f64) -> Result<Tensor> {
    let [anchor, positive, negative] = columns else {
        candle_core::bail!(
            "SparseTripletLoss needs exactly three columns (anchor, positive, negative), got {}",
            columns.len()
        );
    };
    let d_pos = distance.distance(anchor, positive)?;
    let d_neg = distance.distance(anchor, negative)?;
    ((d_pos - d_neg)? + margin)?.relu()?.mean_all()
}
