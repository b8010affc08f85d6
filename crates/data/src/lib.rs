//! The text datasets of splade-rs, read in one place so that every command accepts the same
//! formats with the same error messages (each names the file and, for malformed content,
//! the 1-based line):
//!
//! - [`text`]: plain text (one text per line) and JSONL fields, as `splade encode` and the
//!   other commands read their `--input` / `--corpus` / `--queries` files;
//! - [`beir`]: sentence-pair TSV files and BEIR retrieval folders;
//! - [`parquet`]: retrieval datasets in the Hugging Face parquet layout (NanoBEIR);
//! - [`datasets`]: finding the datasets of a data folder (`splade eval beir`,
//!   `splade train --eval-beir`);
//! - [`training`]: training rows (anchor, positive, negatives, labels) from JSONL, CSV/TSV
//!   or parquet with a column mapping (`splade train --train`);
//! - [`shard`]: one contiguous part of an input (`--shard I/N`), for encoding a corpus on
//!   several machines;
//! - [`partial`]: line outputs written as `FILE.part`, resumable after a crash (`--resume`)
//!   and renamed to `FILE` when complete.
//!
//! The rules shared by every reader: a UTF-8 byte-order mark at the start of a file is
//! ignored; in JSONL a blank line holds no record and is skipped, in plain text every line
//! is a text; ids (`_id`, id fields) may not hold control characters.
//!
//! Sparse *vector* files (JSONL vectors, Seismic binary) are read by `splade-index`'s
//! `readers`, next to the index they feed (that crate has no dependency on this one).

#![warn(missing_docs)]

pub mod beir;
pub mod datasets;
mod error;
pub mod parquet;
pub mod partial;
pub mod shard;
pub mod text;
pub mod training;

pub use error::{DataError, Result};

/// Checks an id read from a dataset: non-empty and without control characters (newlines,
/// tabs), which no line-based format of ids (TREC runs, qrels) can hold. `Err(message)`.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("empty id".into());
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(format!(
            "id {id:?} contains the control character {c:?} (ids may not hold newlines, tabs or other control characters)"
        ));
    }
    Ok(())
}
