//! The SPLADE encoder of splade-rs.
//!
//! Loads sentence-transformers `SparseEncoder` folders (the v4/v5 layout of the seed model
//! card and the v6 layout), plain Hugging Face `BertForMaskedLM` / `DistilBertForMaskedLM`
//! folders and Hugging Face Hub ids, and encodes text into vocabulary-sized sparse vectors
//! with the same numbers as the Python reference; and CSR models (`Transformer` + `Pooling` +
//! `SparseAutoEncoder`, module [`csr`]), whose dimensions are autoencoder latents.
//!
//! ```no_run
//! use splade_encoder::{EncodeOptions, SparseEncoder};
//! let encoder = SparseEncoder::from_pretrained("splade-tiny")?;
//! let queries = encoder.encode_query(&["what causes rain"], &EncodeOptions::default())?;
//! let docs = encoder.encode_document(&["Rain forms when water vapour condenses."], &EncodeOptions::default())?;
//! let scores = encoder.similarity(&queries, &docs);
//! for (token, weight) in encoder.decode(queries.row(0).unwrap(), Some(5)) {
//!     println!("{token}\t{weight:.3}");
//! }
//! # Ok::<(), splade_encoder::EncoderError>(())
//! ```
//!
//! Texts longer than the model's max sequence length are truncated (as in the reference).
//!
//! [`SparseEncoder`] is inference only. Training loads a [`TrainableEncoder`] (module
//! [`trainable`]): the same encoder over trainable weights, with the differentiable forward
//! pass, dropout and mixed precision; the `splade-train` crate drives it.

#![warn(missing_docs)]

pub mod config;
pub mod csr;
pub mod default_model;
pub mod device;
mod encoder;
mod error;
pub mod hub;
pub mod layout;
pub mod model;
mod paths;
pub mod pooling;
pub mod quant;
pub mod router;
pub mod static_embedding;
pub mod tokenize;
pub mod trainable;

pub use csr::{CsrHead, PoolingMode, SentencePooling, SparseAutoEncoder, SparseAutoEncoderConfig};
pub use encoder::{EncodeOptions, LoadOptions, Quantize, RouteChoice, SparseEncoder};
pub use error::{EncoderError, Result, NON_FINITE};
pub use layout::{CsrLayout, FolderLayout, ModelFolder};
pub use model::Dropout;
pub use pooling::{PoolingActivation, PoolingConfig, PoolingStrategy};
pub use router::{Route, RouteKind, RouterLayout};
pub use splade_sparse::{
    ScoreMatrix, Similarity, SparseBatch, SparseVector, SparseView, SparsityStats,
};
pub use static_embedding::StaticEmbedding;
pub use tokenize::{TokenizedText, Truncation};
pub use trainable::TrainableEncoder;
