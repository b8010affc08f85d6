//! [`DiskIndexBuilder`]: an index written to disk while the documents stream in, with
//! memory bounded by the ids and the layout rather than the postings.

use std::path::{Path, PathBuf};

use splade_sparse::SparseView;

use crate::builder::arrays::{
    check_layout, effective_block_size, segment_arrays, write_outputs, SegmentOptions,
};
use crate::builder::assemble::RANGE_SLOTS;
use crate::builder::catalog::{check_target, Catalog};
use crate::builder::cluster::Reorder;
use crate::builder::sink::{FileSink, Output};
use crate::builder::source::FileDocs;
use crate::error::{IndexError, Result};
use crate::format::{self, DirState, FileId, Manifest};
use crate::index::Index;
use crate::replace::replace_index;

/// Builds an index on disk from documents added one at a time, holding in memory only what
/// does not grow with the postings: per document its id, its offset and a signature of its
/// heaviest terms for the layout (about 8 bytes a signature term, at most
/// 64 terms), plus per-term statistics.
///
/// The postings go straight to the index's forward files in a temporary directory beside
/// the target as they are added; [`Self::finish`] lays the documents out
/// ([`Reorder`]), reads them back from those files in block order (positioned reads: the
/// page cache holds them, not the process), streams the block arrays into their files,
/// spills the (block, term) slots and fills the term-major lists in passes of bounded
/// memory, then publishes the directory atomically, as [`crate::IndexBuilder::write`]
/// does. The index is byte for byte the one an [`crate::IndexBuilder`] writes from the same
/// documents. If the builder is dropped before `finish`, the temporary directory is
/// removed; a crash leaves it, and the next build of the same target removes it.
///
/// ```
/// use splade_index::{DiskIndexBuilder, Index};
/// use splade_sparse::SparseVector;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("idx");
/// let mut b = DiskIndexBuilder::create(&path, 10)?;
/// b.add("a", SparseVector::new(vec![1, 4], vec![0.5, 2.0])?.view())?;
/// b.add("b", SparseVector::new(vec![4], vec![1.0])?.view())?;
/// let manifest = b.finish()?;
/// assert_eq!(manifest.num_docs, 2);
/// let index = Index::open(&path)?;
/// let q = SparseVector::new(vec![4], vec![1.0])?;
/// assert_eq!(index.id(index.top_k(q.view(), 1)[0].doc), Some("a"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DiskIndexBuilder {
    catalog: Catalog,
    block_size: Option<usize>,
    reorder: Reorder,
    target: PathBuf,
    overwrite: bool,
    parent: PathBuf,
    tmp: PathBuf,
    /// The forward terms and values (`None` once finished).
    forward: Option<(FileSink, FileSink)>,
}

impl DiskIndexBuilder {
    /// A builder of a new index at `dir`, which must not exist or be empty (the same
    /// refusals as [`crate::IndexBuilder::write`], checked now, before any document), for
    /// vectors of dimension `dim`.
    pub fn create(dir: &Path, dim: usize) -> Result<Self> {
        Self::new(dir, dim, false)
    }

    /// As [`Self::create`], but an index already at `dir` is replaced when the build
    /// finishes, atomically (as [`crate::IndexBuilder::write_over`]).
    pub fn create_over(dir: &Path, dim: usize) -> Result<Self> {
        Self::new(dir, dim, true)
    }

    fn new(dir: &Path, dim: usize, overwrite: bool) -> Result<Self> {
        check_target(dir, overwrite)?;
        let (parent, tmp) = temp_dir_for(dir)?;
        std::fs::create_dir(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        let forward = FileSink::create(&tmp.join(FileId::ForwardTerms.name())).and_then(|t| {
            Ok((
                t,
                FileSink::create(&tmp.join(FileId::ForwardValues.name()))?,
            ))
        });
        let forward = match forward {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        Ok(Self {
            catalog: Catalog::new(dim),
            block_size: None,
            reorder: Reorder::default(),
            target: dir.to_path_buf(),
            overwrite,
            parent,
            tmp,
            forward: Some(forward),
        })
    }

    /// Sets the number of consecutive documents per block (1..=256) instead of choosing it
    /// from the documents ([`crate::auto_block_size`]).
    pub fn block_size(mut self, block_size: usize) -> Self {
        self.block_size = Some(block_size);
        self
    }

    /// Sets how documents are laid out in blocks (default [`Reorder::Auto`]).
    pub fn reorder(mut self, reorder: Reorder) -> Self {
        self.reorder = reorder;
        self
    }

    /// The block size the build will use.
    pub fn effective_block_size(&self) -> usize {
        effective_block_size(&self.catalog, self.block_size)
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.catalog.dim
    }

    /// Sets the dimension (for vectors whose dimension is known only once all are read:
    /// create the builder with [`crate::format::MAX_DIM`], then set the real one). Errors
    /// when a document added holds an index `>= dim`.
    pub fn set_dim(&mut self, dim: usize) -> Result<()> {
        self.catalog.set_dim(dim)
    }

    /// One more than the largest index added so far (0 before any posting).
    pub fn indices_used(&self) -> usize {
        self.catalog.terms_used()
    }

    /// Documents added so far.
    pub fn len(&self) -> usize {
        self.catalog.len()
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a document and returns its number: the checks and errors of
    /// [`crate::IndexBuilder::add`]; its postings are appended to the forward files.
    pub fn add(&mut self, id: &str, vector: SparseView<'_>) -> Result<u32> {
        let Some((terms, values)) = self.forward.as_mut() else {
            return Err(IndexError::InvalidArgument(
                "the builder has already finished".into(),
            ));
        };
        let doc = self.catalog.add(id, vector)?;
        terms.write(vector.indices())?;
        values.write(vector.values())?;
        Ok(doc)
    }

    /// Lays out and writes the rest of the index, syncs every file, and publishes the
    /// directory (renamed into place, or committed over the index there with
    /// [`Self::create_over`]). Returns the new index's manifest; open it with
    /// [`Index::open`]. On error nothing is published and the temporary files are removed.
    pub fn finish(mut self) -> Result<Manifest> {
        let result = self.finish_inner();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
        // Published or removed: nothing for `drop` to clean up.
        self.forward = None;
        result
    }

    fn finish_inner(&mut self) -> Result<Manifest> {
        check_layout(&self.catalog, self.block_size)?;
        let Some((mut terms, mut values)) = self.forward.take() else {
            return Err(IndexError::InvalidArgument(
                "the builder has already finished".into(),
            ));
        };
        terms.flush()?;
        values.flush()?;
        let dim = self.catalog.dim;
        let catalog = std::mem::replace(&mut self.catalog, Catalog::new(dim));
        let arrays = {
            let src = FileDocs::open(&catalog.indptr, terms.path(), values.path())?;
            segment_arrays(
                &catalog,
                &src,
                &SegmentOptions {
                    block_size: self.block_size,
                    reorder: self.reorder,
                    dir: Some(&self.tmp),
                    range_slots: RANGE_SLOTS,
                },
            )?
        };
        let (manifest, outputs) = arrays.with_forward(
            catalog,
            Output::File(terms.finish()?),
            Output::File(values.finish()?),
        );
        let manifest = write_outputs(&self.tmp, manifest, outputs)?;
        let tmp = self.tmp.clone();
        if self.overwrite && matches!(format::dir_state(&self.target)?, DirState::Index) {
            replace_index(&self.target, dim as u64, |seg| {
                std::fs::rename(&tmp, seg).map_err(|e| IndexError::io(seg, e))?;
                Ok(manifest.clone())
            })?;
        } else {
            rename_into_place(&self.parent, &tmp, &self.target)?;
        }
        Ok(manifest)
    }
}

impl Drop for DiskIndexBuilder {
    fn drop(&mut self) {
        if self.forward.is_some() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// The parent of `dir` (created if missing) and the temporary build directory beside
/// `dir` for this process (stale ones of crashed builds removed, a leftover of this
/// process's id too).
pub(crate) fn temp_dir_for(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| {
            IndexError::InvalidArgument(format!(
                "{}: give the index directory a name (a path ending in a folder name)",
                dir.display()
            ))
        })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| IndexError::io(&parent, e))?;
    format::remove_stale_builds(&parent, name);
    let tmp = parent.join(format::build_dir_name(name, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
    }
    Ok((parent, tmp))
}

/// Renames the complete build directory `tmp` to `dir` (missing or empty), durably.
pub(crate) fn rename_into_place(parent: &Path, tmp: &Path, dir: &Path) -> Result<()> {
    format::sync_dir(parent)?;
    std::fs::rename(tmp, dir).map_err(|e| match e.kind() {
        // Something was put into `dir` meanwhile.
        std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists => {
            IndexError::NotAnIndex {
                path: dir.to_path_buf(),
                example: "(files added while the index was being built)".into(),
            }
        }
        _ => IndexError::io(dir, e),
    })?;
    format::sync_dir(parent)
}

/// Writes a new index at `dir` (missing or empty): `write` fills a temporary directory
/// beside it, which is then renamed into place; the index is opened (and verified).
pub(crate) fn publish_new(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<Index> {
    let (parent, tmp) = temp_dir_for(dir)?;
    let written = write(&tmp).and_then(|_| rename_into_place(&parent, &tmp, dir));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Index::open(dir)
}
