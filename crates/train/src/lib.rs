//! SPLADE training for splade-rs on candle's autograd.
//!
//! This first part holds the pieces whose numbers must match sentence-transformers exactly:
//! [`loss::splade_loss`] (SparseMultipleNegativesRankingLoss + FLOPS regularisers),
//! the regulariser warm-up and learning-rate [`schedule`]s, and [`step::TrainStep`], one
//! forward/backward/AdamW step over a batch of (anchor, positive, negatives…) texts.

pub mod card;
pub mod checkpoint;
pub mod data;
mod error;
pub mod loss;
pub mod optim;
pub mod output;
pub mod plot;
pub mod sampler;
pub mod save;
pub mod schedule;
pub mod step;
pub mod trainer;
pub mod triplets;

pub use error::{Result, TrainError};
pub use loss::{
    configured_splade_loss, flops, margin_mse, multiple_negatives_ranking, splade_loss,
    splade_margin_mse_loss, BaseLoss, SpladeLossConfig, SpladeLossParts,
};
