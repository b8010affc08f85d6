//! One immutable segment: the arrays [`crate::IndexBuilder`] writes (format version 6),
//! memory-mapped from a directory or built in memory. An [`crate::Index`] is a list of
//! segments plus, per segment, the set of deleted documents.
//!
//! Besides the mapped files, a segment holds what searches derive from it and keep: the
//! term-major postings copy ([`postings`], made on first use), dense block-maxima columns of
//! its most widespread terms ([`dense_bounds`], made on first use) and what the automatic
//! traversal learned ([`memory`]). The search itself (`crate::search`) depends on this
//! module, never the reverse.

pub(crate) mod blocks;
pub(crate) mod dense_bounds;
pub(crate) mod memory;
pub(crate) mod postings;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{IndexError, Result};
use crate::format::{crc32, FileEntry, FileId, Manifest};
use crate::storage::{Bytes, Residency};
use crate::validate::{file_path, validate};
use blocks::BlockArrays;
use dense_bounds::{DenseView, LazyDenseBounds};
use memory::TraversalMemory;
use postings::{LazyTermPostings, TermPostings};

/// A validated segment. Document numbers are local (`0..num_docs`).
#[derive(Debug)]
pub(crate) struct Segment {
    /// For a segment built in memory, every file's checksum is 0 here: see
    /// [`Self::manifest`].
    manifest: Manifest,
    /// `Some` for a segment built in memory: its manifest with every file's checksum,
    /// computed on the first request ([`crate::Index::manifest`],
    /// [`crate::Index::segments`], [`crate::Index::verify`]). Searches never read them, and
    /// files written to disk are checksummed as they are written, so a build does not pay
    /// for them up front: they were about a fifteenth of an in-memory build at 1M
    /// documents.
    checksummed: Option<OnceLock<Manifest>>,
    files: Vec<Bytes>,
    dir: Option<PathBuf>,
    /// The term-major postings copy of the term-at-a-time search, made on first use.
    term_postings: LazyTermPostings,
    /// Dense block-maxima columns of the most widespread terms, made on first use.
    dense_bounds: LazyDenseBounds,
    /// What the automatic traversal learned from this segment's searches.
    traversal_memory: TraversalMemory,
}

impl Segment {
    /// Maps (or reads into memory, as `residency` says) the files of the segment in `dir`
    /// described by `manifest`, verifies their checksums when `verify` and validates the
    /// structure.
    pub(crate) fn open(
        dir: &Path,
        manifest: Manifest,
        verify: bool,
        residency: Residency,
    ) -> Result<Self> {
        let mut files = Vec::with_capacity(FileId::ALL.len());
        for id in FileId::ALL {
            files.push(Bytes::open(&dir.join(id.name()), residency)?);
        }
        if verify {
            verify_files(&manifest, &files, Some(dir))?;
        }
        Self::from_parts(manifest, files, Some(dir.to_path_buf()))
    }

    pub(crate) fn from_parts(
        manifest: Manifest,
        files: Vec<Bytes>,
        dir: Option<PathBuf>,
    ) -> Result<Self> {
        // Sizes are checked before structure, so a truncated file reports its size.
        validate(&manifest, &files, dir.as_deref())?;
        Ok(Self::from_trusted_parts(manifest, files, dir))
    }

    /// A segment of arrays this process has just built ([`crate::IndexBuilder::build`]),
    /// without the structural validation of [`Self::from_parts`] (which exists for files
    /// that may be damaged, and took about a tenth of an in-memory build at 1M
    /// documents). The builder's output is valid by construction; the crate's own tests
    /// validate it anyway, and every index written to disk is validated when opened.
    pub(crate) fn from_built_parts(manifest: Manifest, files: Vec<Bytes>) -> Result<Self> {
        if cfg!(any(test, debug_assertions)) {
            validate(&manifest, &files, None)?;
        }
        let mut segment = Self::from_trusted_parts(manifest, files, None);
        segment.checksummed = Some(OnceLock::new());
        Ok(segment)
    }

    fn from_trusted_parts(manifest: Manifest, files: Vec<Bytes>, dir: Option<PathBuf>) -> Self {
        Self {
            manifest,
            checksummed: None,
            files,
            dir,
            term_postings: LazyTermPostings::default(),
            dense_bounds: LazyDenseBounds::default(),
            traversal_memory: TraversalMemory::default(),
        }
    }

    /// Recomputes every file's CRC32 and compares it with the manifest. (For a segment
    /// built in memory whose checksums were never asked for, they are computed now from
    /// the same arrays, so this cannot fail: there is no file that could differ.)
    pub(crate) fn verify(&self) -> Result<()> {
        verify_files(self.manifest(), &self.files, self.dir.as_deref())
    }

    /// The manifest, with every file's size and checksum (computed now, once, for a
    /// segment built in memory).
    pub(crate) fn manifest(&self) -> &Manifest {
        match &self.checksummed {
            None => &self.manifest,
            Some(cell) => cell.get_or_init(|| {
                let mut manifest = self.manifest.clone();
                for (id, bytes) in FileId::ALL.iter().zip(&self.files) {
                    manifest
                        .files
                        .insert(id.name().to_string(), FileEntry::of(bytes.bytes()));
                }
                manifest
            }),
        }
    }

    /// The vector dimension.
    pub(crate) fn dim(&self) -> usize {
        self.manifest.dim as usize
    }

    pub(crate) fn len(&self) -> usize {
        self.manifest.num_docs as usize
    }

    pub(crate) fn nnz(&self) -> usize {
        self.manifest.nnz as usize
    }

    pub(crate) fn block_size(&self) -> usize {
        self.manifest.block_size as usize
    }

    pub(crate) fn num_blocks(&self) -> usize {
        self.len().div_ceil(self.block_size())
    }

    /// The external id of local document `doc`.
    pub(crate) fn id(&self, doc: u32) -> Option<&str> {
        let offs = self.id_offsets();
        let (s, e) = (
            *offs.get(doc as usize)? as usize,
            *offs.get(doc as usize + 1)? as usize,
        );
        std::str::from_utf8(self.id_data().get(s..e)?).ok()
    }

    /// Term ids and weights of local document `doc` (validated: ascending, `< dim`,
    /// finite, >= 0).
    pub(crate) fn document_slices(&self, doc: u32) -> Option<(&[u32], &[f32])> {
        let indptr = self.forward_indptr();
        let (s, e) = (
            *indptr.get(doc as usize)? as usize,
            *indptr.get(doc as usize + 1)? as usize,
        );
        Some((
            self.forward_terms().get(s..e)?,
            self.forward_values().get(s..e)?,
        ))
    }

    fn array<T: bytemuck::Pod>(&self, id: FileId) -> &[T] {
        self.files.get(id.slot()).map_or(&[], |b| b.typed())
    }

    pub(crate) fn forward_indptr(&self) -> &[u64] {
        self.array(FileId::ForwardIndptr)
    }
    pub(crate) fn forward_terms(&self) -> &[u32] {
        self.array(FileId::ForwardTerms)
    }
    pub(crate) fn forward_values(&self) -> &[f32] {
        self.array(FileId::ForwardValues)
    }
    fn id_offsets(&self) -> &[u64] {
        self.array(FileId::IdOffsets)
    }
    fn id_data(&self) -> &[u8] {
        self.array(FileId::IdData)
    }

    /// The term-major postings copy (see [`postings`]), made on first use.
    pub(crate) fn term_postings(&self) -> &TermPostings {
        let forward = postings::Forward {
            indptr: self.forward_indptr(),
            terms: self.forward_terms(),
            values: self.forward_values(),
        };
        self.term_postings
            .get(&self.blocks(), &forward, self.term_df())
    }

    /// Per term, the documents it occurs in (made on first use).
    pub(crate) fn term_df(&self) -> &[u32] {
        let terms = self.blocks().bound_offsets.len().saturating_sub(1);
        self.term_postings.df(terms, self.forward_terms())
    }

    /// The dense block-maxima columns of the most widespread terms (see [`dense_bounds`]),
    /// made on first use.
    pub(crate) fn dense_bounds(&self) -> DenseView<'_> {
        self.dense_bounds.get(|| self.blocks())
    }

    /// Records how a block-max search of this segment ended (finished by block-max pruning,
    /// or handed over to term at a time): after enough finished ones in a row the segment
    /// makes more dense columns (see [`dense_bounds`]).
    pub(crate) fn record_block_max(&self, finished: bool) {
        self.dense_bounds.record(finished, || self.blocks());
    }

    /// What the automatic traversal learned from this segment's searches.
    pub(crate) fn traversal_memory(&self) -> &TraversalMemory {
        &self.traversal_memory
    }

    /// The block layout and block maxima, borrowed together for a search.
    pub(crate) fn blocks(&self) -> BlockArrays<'_> {
        BlockArrays {
            block_size: self.block_size(),
            num_docs: self.len(),
            entry_docs: self.array(FileId::BlockEntryDocs),
            entry_values: self.array(FileId::BlockEntryValues),
            bound_offsets: self.array(FileId::BoundOffsets),
            bound_blocks: self.array(FileId::BoundBlocks),
            bound_codes: self.array(FileId::BoundCodes),
            bound_scales: self.array(FileId::BoundScales),
            bound_starts: self.array(FileId::BoundStarts),
            bound_lengths: self.array(FileId::BoundLengths),
            doc_order: self.array(FileId::DocOrder),
        }
    }
}

/// Compares every file's size, then its CRC32, with the manifest.
fn verify_files(manifest: &Manifest, files: &[Bytes], dir: Option<&Path>) -> Result<()> {
    for (id, bytes) in FileId::ALL.into_iter().zip(files) {
        let entry = manifest.entry(id);
        let size = bytes.bytes().len() as u64;
        if entry.map(|e| e.size) != Some(size) {
            return Err(IndexError::corrupt(
                file_path(dir, id),
                format!(
                    "size {size} bytes, manifest says {} (truncated or overwritten?)",
                    entry.map_or_else(|| "nothing".into(), |e| e.size.to_string())
                ),
            ));
        }
        bytes.populate();
        let actual = crc32(bytes.bytes());
        if entry.map(|e| e.crc32) != Some(actual) {
            return Err(IndexError::corrupt(
                file_path(dir, id),
                format!(
                    "checksum mismatch (crc32 {actual:08x}, manifest says {})",
                    entry.map_or_else(|| "nothing".into(), |e| format!("{:08x}", e.crc32))
                ),
            ));
        }
    }
    Ok(())
}
