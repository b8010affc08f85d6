//! The live index: searches read an immutable snapshot (an [`Index`] behind an atomic
//! pointer, swapped after each commit, so a search sees the old or the new state and never
//! waits for a writer); one writer thread owns the [`IndexWriter`] and applies updates in
//! arrival order.
//!
//! **Group commit**: the writer takes every update queued while it was busy (up to
//! `--max-commit-documents` documents) and commits them together, so many clients adding
//! single documents make one segment per commit, not one each. An update is answered only
//! after its commit is durable (the index's atomic, fsynced manifest switch) and visible to
//! searches. Merges happen inside commits, on the writer thread: searches go on meanwhile
//! on the previous snapshot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use splade_index::{Index, IndexBuilder, IndexWriter};
use splade_sparse::SparseVector;
use tokio::sync::oneshot;

use crate::error::{ApiError, ErrorType};
use crate::metrics::Metrics;
use crate::types::UpdateResponse;

/// One update, answered once committed.
enum WriteOp {
    Upsert(
        Vec<(String, SparseVector)>,
        oneshot::Sender<Result<UpdateResponse, ApiError>>,
    ),
    Delete(
        Vec<String>,
        oneshot::Sender<Result<UpdateResponse, ApiError>>,
    ),
    /// Commit what came before, then stop.
    Shutdown,
}

impl WriteOp {
    fn documents(&self) -> usize {
        match self {
            WriteOp::Upsert(docs, _) => docs.len(),
            WriteOp::Delete(ids, _) => ids.len(),
            WriteOp::Shutdown => 0,
        }
    }
}

/// An index being searched and updated.
pub struct LiveIndex {
    path: PathBuf,
    snapshot: Arc<ArcSwap<Index>>,
    ops: Sender<WriteOp>,
    healthy: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
    dim: usize,
}

impl std::fmt::Debug for LiveIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIndex")
            .field("path", &self.path)
            .finish()
    }
}

impl LiveIndex {
    /// Opens the index in `dir` for searching and writing, or creates an empty one of
    /// dimension `dim` when `dir` holds none (a missing or empty folder; a folder with
    /// other files is refused). Takes the index's write lock for the server's lifetime.
    pub fn open_or_create(
        dir: &Path,
        dim: usize,
        max_commit_documents: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let writer = if dir.join(splade_index::format::MANIFEST_FILE).exists() {
            IndexWriter::open(dir)?
        } else {
            IndexBuilder::check_target(dir, false)?;
            IndexWriter::create(dir, dim)?
        };
        let dim = writer.dim();
        let snapshot = Arc::new(ArcSwap::from_pointee(writer.index().clone()));
        let healthy = Arc::new(AtomicBool::new(true));
        let (ops, rx) = bounded(1024);
        let thread = {
            let snapshot = snapshot.clone();
            let healthy = healthy.clone();
            std::thread::Builder::new()
                .name("splade-index-writer".into())
                .spawn(move || {
                    writer_loop(
                        writer,
                        &rx,
                        &snapshot,
                        &healthy,
                        max_commit_documents,
                        &metrics,
                    )
                })?
        };
        Ok(Self {
            path: dir.to_path_buf(),
            snapshot,
            ops,
            healthy,
            writer: Mutex::new(Some(thread)),
            dim,
        })
    }

    /// The index's dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current snapshot (cheap: an atomic pointer load).
    pub fn snapshot(&self) -> Arc<Index> {
        self.snapshot.load_full()
    }

    /// False after a commit failed (until one succeeds) or when the writer stopped.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// Adds or replaces documents; answers after the commit holding them is durable.
    pub async fn upsert(
        &self,
        docs: Vec<(String, SparseVector)>,
    ) -> Result<UpdateResponse, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Upsert(docs, tx))?;
        Self::wait(rx).await
    }

    /// Deletes documents by id; answers after the commit is durable.
    pub async fn delete(&self, ids: Vec<String>) -> Result<UpdateResponse, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Delete(ids, tx))?;
        Self::wait(rx).await
    }

    fn send(&self, op: WriteOp) -> Result<(), ApiError> {
        self.ops.try_send(op).map_err(|e| match e {
            TrySendError::Full(_) => ApiError::new(
                ErrorType::Overloaded,
                "Index is overloaded: too many updates waiting for a commit",
            ),
            TrySendError::Disconnected(_) => {
                ApiError::new(ErrorType::Unhealthy, "the index writer has stopped")
            }
        })
    }

    async fn wait(
        rx: oneshot::Receiver<Result<UpdateResponse, ApiError>>,
    ) -> Result<UpdateResponse, ApiError> {
        rx.await
            .map_err(|_| ApiError::new(ErrorType::Unhealthy, "the index writer has stopped"))?
    }

    /// Commits the updates already queued, then stops the writer and waits for it (the
    /// write lock is released). Idempotent.
    pub fn shutdown(&self) {
        let _ = self.ops.send(WriteOp::Shutdown);
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn writer_loop(
    mut writer: IndexWriter,
    rx: &Receiver<WriteOp>,
    snapshot: &ArcSwap<Index>,
    healthy: &AtomicBool,
    max_documents: usize,
    metrics: &Metrics,
) {
    publish_gauges(writer.index(), metrics);
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut group = Vec::new();
        let mut documents = first.documents();
        match first {
            WriteOp::Shutdown => break,
            op => group.push(op),
        }
        while documents < max_documents {
            match rx.try_recv() {
                Ok(WriteOp::Shutdown) => {
                    stop = true;
                    break;
                }
                Ok(op) => {
                    documents += op.documents();
                    group.push(op);
                }
                Err(_) => break,
            }
        }
        commit_group(&mut writer, group, snapshot, healthy, metrics);
    }
    healthy.store(false, Ordering::SeqCst);
}

/// Applies a group of updates in order, commits once, publishes the new snapshot and
/// answers every update (all with the error when the commit fails: none of them is kept).
fn commit_group(
    writer: &mut IndexWriter,
    group: Vec<WriteOp>,
    snapshot: &ArcSwap<Index>,
    healthy: &AtomicBool,
    metrics: &Metrics,
) {
    let start = Instant::now();
    // Refuse invalid documents before touching the writer, so one bad update never fails
    // the others of its group.
    let dim = writer.dim();
    let group: Vec<WriteOp> = group
        .into_iter()
        .filter_map(|op| match op {
            WriteOp::Upsert(docs, reply) => {
                let bad = docs
                    .iter()
                    .find_map(|(id, v)| splade_index::check_document(id, v.view(), dim).err());
                match bad {
                    Some(e) => {
                        let _ = reply.send(Err(ApiError::validation(format!(
                            "Input validation error: {e}"
                        ))));
                        None
                    }
                    None => Some(WriteOp::Upsert(docs, reply)),
                }
            }
            other => Some(other),
        })
        .collect();
    if group.is_empty() {
        return;
    }
    let mut counts = Vec::with_capacity(group.len());
    let mut failure: Option<ApiError> = None;
    for op in &group {
        let (mut upserted, mut deleted) = (0, 0);
        match op {
            WriteOp::Upsert(docs, _) => {
                for (id, vector) in docs {
                    match writer.add(id, vector.view()) {
                        Ok(_) => upserted += 1,
                        Err(e) => {
                            failure.get_or_insert(ApiError::validation(format!(
                                "Input validation error: {e}"
                            )));
                        }
                    }
                }
            }
            WriteOp::Delete(ids, _) => {
                deleted = ids.iter().filter(|id| writer.delete(id)).count();
            }
            WriteOp::Shutdown => {}
        }
        counts.push((upserted, deleted));
    }
    let documents: usize = group.iter().map(WriteOp::documents).sum();
    let result = match failure {
        Some(e) => {
            writer.rollback();
            Err(e)
        }
        None => writer.commit().map_err(|e| {
            writer.rollback();
            healthy.store(false, Ordering::SeqCst);
            metrics.count("splade_index_commit_failure", &[]);
            tracing::error!("index commit failed: {e}");
            ApiError::new(
                ErrorType::Backend,
                format!("Backend error: index commit failed: {e}"),
            )
        }),
    };
    let answer = match result {
        Ok(summary) => {
            healthy.store(true, Ordering::SeqCst);
            snapshot.store(Arc::new(writer.index().clone()));
            metrics.count("splade_index_commit_count", &[]);
            metrics.time("splade_index_commit_duration", start.elapsed());
            metrics
                .histogram("splade_index_commit_documents", &[])
                .record(documents as f64);
            publish_gauges(writer.index(), metrics);
            Ok((summary.generation, summary.live))
        }
        Err(e) => Err(e),
    };
    for (op, (upserted, deleted)) in group.into_iter().zip(counts) {
        let reply = match op {
            WriteOp::Upsert(_, reply) | WriteOp::Delete(_, reply) => reply,
            WriteOp::Shutdown => continue,
        };
        let _ = reply.send(
            answer
                .clone()
                .map(|(generation, documents)| UpdateResponse {
                    upserted,
                    deleted,
                    generation,
                    documents,
                }),
        );
    }
}

fn publish_gauges(index: &Index, metrics: &Metrics) {
    metrics
        .gauge("splade_index_documents", &[])
        .set(index.len() as f64);
    metrics
        .gauge("splade_index_segments", &[])
        .set(index.num_segments() as f64);
    metrics
        .gauge("splade_index_generation", &[])
        .set(index.generation() as f64);
}
