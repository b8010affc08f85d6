//! SPLADE training for splade-rs on candle's autograd, as sentence-transformers'
//! `SparseEncoderTrainer` does it.
//!
//! - The numbers that must match sentence-transformers exactly: [`loss`] (SpladeLoss:
//!   SparseMultipleNegativesRankingLoss, SparseMarginMSELoss, SparseMSELoss,
//!   SparseCosineSimilarityLoss, SparseCoSENTLoss, SparseAnglELoss, SparseTripletLoss or
//!   SparseDistillKLDivLoss, plus the FLOPS regularisers),
//!   the learning-rate and regulariser warm-up [`schedule`]s, [`optim`] (AdamW), and
//!   [`step::TrainStep`], the one forward/backward/AdamW step (gradient accumulation,
//!   clipping, dropout, precision, non-finite checks) that both the parity tests and
//!   [`trainer::Trainer`] run.
//! - The loop: [`trainer::Trainer`] with its phases (resume, step, evaluate, checkpoint,
//!   finish), [`sampler`]s, [`checkpoint`]s; [`output::run_to_folder`] writes what
//!   `splade train` writes (logs, evaluations, [`plot`], model [`card`], the best model in
//!   the sentence-transformers layout via [`save`]).
//! - Data: training rows ([`data`], from `splade-data`) and triplets mined from pairs or
//!   BEIR qrels ([`triplets`]).
//!
//! `crates/train/examples/train_from_library.rs` trains a model from the library.

#![warn(missing_docs)]

pub mod card;
pub mod checkpoint;
pub mod data;
mod error;
pub mod loss;
pub mod optim;
pub mod options;
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
    splade_margin_mse_loss, BaseLoss, SpladeLossConfig, SpladeLossParts, TripletDistance,
};
