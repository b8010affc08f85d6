//! `NativeIndex`: a splade-index directory for Python (see `splade_rs.Index`). Building
//! writes a new directory atomically; `add`, `delete` and `optimize` are one atomic commit
//! each (splade-index's `IndexWriter`), after which the index is reopened.

use std::path::PathBuf;
use std::sync::RwLock;

use pyo3::prelude::*;
use splade_index::{
    Index, IndexBuilder, IndexWriter, Method, OpenOptions, Residency, SearchOptions,
};
use splade_sparse::SparseView;

use crate::csr;
use crate::errors;

/// An index directory opened for searching and updating.
#[pyclass(module = "splade_rs._native", frozen)]
pub struct NativeIndex {
    path: PathBuf,
    /// How the index is (re)opened: mapped, or read into memory.
    residency: Residency,
    index: RwLock<Index>,
}

/// CSR byte buffers and column count, as the Python layer sends them.
type Csr = (Vec<u8>, Vec<u8>, Vec<u8>, usize);

/// `(documents, deleted, nnz, dim, [(segment id, live, deleted, block size)])`.
type IndexInfo = (usize, usize, usize, usize, Vec<(u64, u64, u64, u32)>);

impl NativeIndex {
    fn read(&self) -> PyResult<std::sync::RwLockReadGuard<'_, Index>> {
        self.index
            .read()
            .map_err(|_| errors::value("the index was poisoned by an earlier panic"))
    }

    /// Opens the index at `path` as this one was opened (verified).
    fn reopen(&self) -> splade_index::Result<Index> {
        OpenOptions::new()
            .residency(self.residency)
            .open(&self.path)
    }

    /// Runs one writer commit, then reopens the index.
    fn update<T: Send>(
        &self,
        py: Python<'_>,
        change: impl FnOnce(&mut IndexWriter) -> splade_index::Result<T> + Send,
    ) -> PyResult<T> {
        let path = self.path.clone();
        let (out, fresh) = py
            .detach(|| {
                let mut writer = IndexWriter::open(&path)?;
                let out = change(&mut writer)?;
                writer.commit()?;
                drop(writer);
                Ok((out, self.reopen()?))
            })
            .map_err(errors::index)?;
        *self
            .index
            .write()
            .map_err(|_| errors::value("the index was poisoned by an earlier panic"))? = fresh;
        Ok(out)
    }
}

fn check_ids(ids: &[String], rows: usize) -> PyResult<()> {
    if ids.len() != rows {
        return Err(errors::value(format!(
            "{} ids for {} vectors",
            ids.len(),
            rows
        )));
    }
    Ok(())
}

#[pymethods]
impl NativeIndex {
    /// Builds a new index at `path` from `ids` and the rows of a CSR matrix (documents in
    /// this order, which breaks score ties), atomically; `overwrite` replaces an index
    /// already there.
    #[staticmethod]
    #[pyo3(signature = (path, ids, vectors, overwrite=false, block_size=None))]
    fn build(
        py: Python<'_>,
        path: PathBuf,
        ids: Vec<String>,
        vectors: Csr,
        overwrite: bool,
        block_size: Option<usize>,
    ) -> PyResult<Self> {
        let batch = csr::from_bytes(&vectors.0, &vectors.1, &vectors.2, vectors.3)?;
        check_ids(&ids, batch.len())?;
        let index = py
            .detach(|| {
                // The rows go to the builder as one CSR matrix (every document checked in
                // parallel, ids without a copy each).
                let (indptr, indices, values) = batch.csr();
                let indptr = indptr.iter().map(|&p| p as u64).collect();
                let mut builder = IndexBuilder::from_csr(
                    batch.dim(),
                    &ids,
                    indptr,
                    indices.to_vec(),
                    values.to_vec(),
                )?;
                if let Some(b) = block_size {
                    builder = builder.block_size(b);
                }
                if overwrite {
                    builder.write_over(&path)
                } else {
                    builder.write(&path)
                }
            })
            .map_err(errors::index)?;
        Ok(Self {
            path,
            residency: Residency::Mapped,
            index: RwLock::new(index),
        })
    }

    /// Opens the index at `path` (checksums and structure verified): memory-mapped, or with
    /// `in_memory` read into the process's memory on transparent huge pages (faster
    /// searches on a large index for the time to read it; kept on every reopen).
    #[staticmethod]
    #[pyo3(signature = (path, in_memory=false))]
    fn open(py: Python<'_>, path: PathBuf, in_memory: bool) -> PyResult<Self> {
        if !path.join(splade_index::format::MANIFEST_FILE).is_file() {
            return Err(pyo3::exceptions::PyFileNotFoundError::new_err(format!(
                "{}: no index there (no {})",
                path.display(),
                splade_index::format::MANIFEST_FILE
            )));
        }
        let residency = if in_memory {
            Residency::Memory
        } else {
            Residency::Mapped
        };
        let index = py
            .detach(|| OpenOptions::new().residency(residency).open(&path))
            .map_err(errors::index)?;
        Ok(Self {
            path,
            residency,
            index: RwLock::new(index),
        })
    }

    /// Adds documents (an id already in the index is replaced unless `replace` is false,
    /// which makes it an error); one atomic commit. Returns how many replaced a document.
    #[pyo3(signature = (ids, vectors, replace=true))]
    fn add(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        vectors: Csr,
        replace: bool,
    ) -> PyResult<usize> {
        let batch = csr::from_bytes(&vectors.0, &vectors.1, &vectors.2, vectors.3)?;
        check_ids(&ids, batch.len())?;
        let dim = self.read()?.dim();
        if batch.dim() != dim {
            return Err(errors::value(format!(
                "vectors of dimension {} for an index of dimension {dim}",
                batch.dim()
            )));
        }
        self.update(py, |w| {
            let mut replaced = 0;
            for (id, row) in ids.iter().zip(batch.rows()) {
                if !replace && w.contains(id) {
                    return Err(splade_index::IndexError::InvalidDocument {
                        id: id.clone(),
                        message: "already in the index (replace=False); nothing was added".into(),
                    });
                }
                if w.add(id, row)? {
                    replaced += 1;
                }
            }
            Ok(replaced)
        })
    }

    /// Deletes documents by id; one atomic commit. Returns the ids not found.
    fn delete(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<Vec<String>> {
        self.update(py, |w| {
            Ok(ids.into_iter().filter(|id| !w.delete(id)).collect())
        })
    }

    /// Merges every segment into one, dropping deleted documents.
    fn optimize(&self, py: Python<'_>) -> PyResult<()> {
        let path = self.path.clone();
        let fresh = py
            .detach(|| {
                let mut writer = IndexWriter::open(&path)?;
                writer.optimize()?;
                drop(writer);
                self.reopen()
            })
            .map_err(errors::index)?;
        *self
            .index
            .write()
            .map_err(|_| errors::value("the index was poisoned by an earlier panic"))? = fresh;
        Ok(())
    }

    /// The top `k` `(id, score)` hits of each row of a CSR matrix of queries (exact unless
    /// `alpha`/`beta` ask for the approximate search), queries in parallel on `threads`
    /// threads; the GIL is released.
    #[pyo3(signature = (queries, k, alpha=None, beta=None, threads=None))]
    fn search(
        &self,
        py: Python<'_>,
        queries: Csr,
        k: usize,
        alpha: Option<f32>,
        beta: Option<f32>,
        threads: Option<usize>,
    ) -> PyResult<Vec<Vec<(String, f32)>>> {
        let batch = csr::from_bytes(&queries.0, &queries.1, &queries.2, queries.3)?;
        let method = match (alpha, beta) {
            (None, None) => Method::Exact,
            (a, b) => {
                Method::from_knobs(a.unwrap_or(1.0), b.unwrap_or(1.0)).map_err(errors::index)?
            }
        };
        let options = SearchOptions {
            k,
            method,
            ..SearchOptions::default()
        };
        let index = self.read()?;
        if batch.dim() > index.dim() {
            return Err(errors::value(format!(
                "queries of dimension {} for an index of dimension {}",
                batch.dim(),
                index.dim()
            )));
        }
        let hits = py
            .detach(|| {
                let rows: Vec<SparseView<'_>> = batch.rows().collect();
                index.search_batch(&rows, &options, threads)
            })
            .map_err(errors::index)?;
        Ok(hits
            .into_iter()
            .map(|list| {
                list.into_iter()
                    .map(|h| (index.id(h.doc).unwrap_or_default().to_string(), h.score))
                    .collect()
            })
            .collect())
    }

    /// Live documents.
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.read()?.len())
    }

    /// The vector dimension.
    #[getter]
    fn dim(&self) -> PyResult<usize> {
        Ok(self.read()?.dim())
    }

    /// The index directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Shape and segments: `(documents, deleted, nnz, dim, [(segment id, live, deleted,
    /// block size)])`.
    fn info(&self) -> PyResult<IndexInfo> {
        let index = self.read()?;
        let segments = index
            .segments()
            .iter()
            .map(|s| {
                (
                    s.id,
                    (s.num_docs - s.deleted) as u64,
                    s.deleted as u64,
                    s.manifest.block_size,
                )
            })
            .collect();
        Ok((
            index.len(),
            index.num_deleted(),
            index.nnz(),
            index.dim(),
            segments,
        ))
    }
}
