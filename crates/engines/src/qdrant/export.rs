//! `splade export qdrant --url ...`: documents into a Qdrant collection over REST, in
//! batches with retries, upserting by point id (derived from the document id), so that an
//! export run again or resumed leaves every document exactly once.

use std::time::Instant;

use super::bodies::{point, QdrantVectors};
use super::rest::{QdrantRest, Request};
use crate::document::{check_unique_ids, ExportDocument};
use crate::error::{EngineError, Result};
use crate::retry::RetryPolicy;

/// How an export runs.
#[derive(Debug, Clone)]
pub struct QdrantExportOptions {
    /// The sparse vector's name and modifier.
    pub vectors: QdrantVectors,
    /// Points per upsert request (at least 1).
    pub batch_size: usize,
    /// Store each document's text in the payload.
    pub store_text: bool,
    /// How a failing batch is retried.
    pub retry: RetryPolicy,
}

impl Default for QdrantExportOptions {
    /// Vector `splade` without IDF, 256 points per request, no text.
    fn default() -> Self {
        Self {
            vectors: QdrantVectors::default(),
            batch_size: 256,
            store_text: false,
            retry: RetryPolicy::default(),
        }
    }
}

/// What an export did.
#[derive(Debug, Clone, PartialEq)]
pub struct QdrantExportReport {
    /// Documents sent.
    pub documents: usize,
    /// Whether the collection was created.
    pub created: bool,
    /// Points in the collection afterwards.
    pub count: u64,
    /// Seconds for the whole export.
    pub seconds: f64,
}

/// Exports `docs` to collection `collection` of the server `client` talks to.
pub fn export_qdrant(
    client: &QdrantRest,
    collection: &str,
    docs: &[ExportDocument],
    options: &QdrantExportOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<QdrantExportReport> {
    if options.batch_size == 0 {
        return Err(EngineError::Input(
            "the batch size must be at least 1".into(),
        ));
    }
    check_unique_ids(docs, "the documents to export")?;
    let start = Instant::now();
    let created = if client.exists(collection)? {
        false
    } else {
        client.send(&Request::create_collection(collection, &options.vectors))?;
        true
    };
    let mut sent = 0;
    for batch in docs.chunks(options.batch_size) {
        let points = batch
            .iter()
            .map(|d| point(d, &options.vectors.name, options.store_text))
            .collect();
        let request = Request::upsert(collection, points);
        options
            .retry
            .run(|| client.send(&request))
            .map_err(|message| EngineError::Http {
                method: request.method.to_string(),
                url: format!(
                    "{collection}: documents {}..{}",
                    sent + 1,
                    sent + batch.len()
                ),
                message,
            })?;
        sent += batch.len();
        progress(sent);
    }
    let count = client.count(collection)?;
    Ok(QdrantExportReport {
        documents: docs.len(),
        created,
        count,
        seconds: start.elapsed().as_secs_f64(),
    })
}
