//! `splade export milvus`: documents into a collection, in batches, with retries; then flush
//! and load. Upserts by id, so an export run again (or resumed after a failure part way)
//! leaves every document exactly once.

use std::time::Instant;

use super::{MilvusCollection, MilvusTarget};
use crate::document::{check_unique_ids, ExportDocument};
use crate::error::{EngineError, Result};
use crate::retry::RetryPolicy;

/// How an export runs.
#[derive(Debug, Clone)]
pub struct MilvusExportOptions {
    /// Documents per upsert request (at least 1).
    pub batch_size: usize,
    /// Create the collection with a text field and store each document's text.
    pub store_text: bool,
    /// How a failing batch is retried.
    pub retry: RetryPolicy,
}

impl Default for MilvusExportOptions {
    /// 1,000 documents per request (about 1-2 MB for SPLADE documents, far below gRPC's
    /// 64 MB message limit), no text, [`RetryPolicy::default`].
    fn default() -> Self {
        Self {
            batch_size: 1000,
            store_text: false,
            retry: RetryPolicy::default(),
        }
    }
}

/// What an export did.
#[derive(Debug, Clone, PartialEq)]
pub struct MilvusExportReport {
    /// Documents sent.
    pub documents: usize,
    /// Whether the collection was created by this export.
    pub created: bool,
    /// Documents in the collection afterwards.
    pub count: u64,
    /// Seconds spent upserting (flush and load excluded).
    pub upsert_seconds: f64,
    /// Seconds for the whole export.
    pub seconds: f64,
}

/// Exports `docs` (ids unique) to `target`; `progress` is called with the number of
/// documents sent after each batch.
pub fn export_milvus(
    target: &MilvusTarget,
    docs: &[ExportDocument],
    options: &MilvusExportOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<MilvusExportReport> {
    if options.batch_size == 0 {
        return Err(EngineError::Input(
            "the batch size must be at least 1".into(),
        ));
    }
    check_unique_ids(docs, "the documents to export")?;
    if options.store_text {
        if let Some(d) = docs.iter().find(|d| d.text.is_none()) {
            return Err(EngineError::Input(format!(
                "--store-text: document {:?} has no text (texts come with --model --corpus)",
                d.id
            )));
        }
    }
    let start = Instant::now();
    let mut collection = MilvusCollection::connect(target)?;
    collection.retry = options.retry;
    let created = collection.ensure(options.store_text)?;
    let upsert_start = Instant::now();
    let mut sent = 0;
    for batch in docs.chunks(options.batch_size) {
        collection.upsert(batch, sent, options.store_text)?;
        sent += batch.len();
        progress(sent);
    }
    let upsert_seconds = upsert_start.elapsed().as_secs_f64();
    collection.flush_and_load()?;
    let count = collection.count()?;
    Ok(MilvusExportReport {
        documents: docs.len(),
        created,
        count,
        upsert_seconds,
        seconds: start.elapsed().as_secs_f64(),
    })
}
