//! The index: opened from a directory by memory map, or built in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use splade_sparse::SparseView;

use crate::error::{IndexError, Result};
use crate::format::{crc32, FileId, Manifest};
use crate::storage::Bytes;
use crate::validate::{file_path, validate};

/// A read-only SPLADE index: forward (per-document) vectors, external ids, the per-block
/// inverted layout and the per-term block maxima used for pruning. See [`crate::format`] for
/// the files and [`Index::search`] / [`crate::Method`] for the search methods.
///
/// Every array is validated when the index is opened or built (offsets monotone and in
/// range, term ids `< dim`, weights finite and `>= 0`), so no input file can make a search
/// panic or read out of bounds.
#[derive(Debug)]
pub struct Index {
    manifest: Manifest,
    files: Vec<Bytes>,
    dir: Option<PathBuf>,
    id_lookup: OnceLock<HashMap<String, u32>>,
}

impl Index {
    /// Opens the index in `dir`: reads the manifest (format name and version checked first),
    /// memory-maps every file, **verifies every file's size and CRC32** and validates the
    /// structure. Both passes read each file once, sequentially (about as fast as the disk:
    /// fine up to several GB); use [`Self::open_unverified`] to skip the checksums. Every
    /// problem is an error naming the file.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_inner(dir, true)
    }

    /// Like [`Self::open`] but without checksum verification: sizes and structure are still
    /// validated, so a damaged file cannot cause a panic or an out-of-bounds read, but
    /// damaged weights inside the valid range go unnoticed (they give wrong scores).
    /// [`Self::verify`] checks the checksums later.
    pub fn open_unverified(dir: &Path) -> Result<Self> {
        Self::open_inner(dir, false)
    }

    fn open_inner(dir: &Path, verify: bool) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let mut files = Vec::with_capacity(FileId::ALL.len());
        for id in FileId::ALL {
            let bytes = Bytes::map(&dir.join(id.name()))?;
            files.push(bytes);
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
        Ok(Self {
            manifest,
            files,
            dir,
            id_lookup: OnceLock::new(),
        })
    }

    /// Recomputes every file's CRC32 and compares it with the manifest.
    pub fn verify(&self) -> Result<()> {
        verify_files(&self.manifest, &self.files, self.dir.as_deref())
    }

    /// The manifest (format, version, shape, file sizes and checksums).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The directory the index was opened from (`None` when built in memory).
    pub fn path(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Vector dimension: every term id is `< dim`.
    pub fn dim(&self) -> usize {
        self.manifest.dim as usize
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.manifest.num_docs as usize
    }

    /// Whether the index holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total stored entries over all documents.
    pub fn nnz(&self) -> usize {
        self.manifest.nnz as usize
    }

    /// Documents per block.
    pub fn block_size(&self) -> usize {
        self.manifest.block_size as usize
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.len().div_ceil(self.block_size())
    }

    /// The external id of document `doc`.
    pub fn id(&self, doc: u32) -> Option<&str> {
        let offs = self.id_offsets();
        let (s, e) = (
            *offs.get(doc as usize)? as usize,
            *offs.get(doc as usize + 1)? as usize,
        );
        std::str::from_utf8(self.id_data().get(s..e)?).ok()
    }

    /// The number of the document with external id `id` (the first one, should a damaged
    /// index hold duplicates). The first call builds a hash map of all ids.
    pub fn doc_number(&self, id: &str) -> Option<u32> {
        self.id_lookup
            .get_or_init(|| {
                let mut map = HashMap::with_capacity(self.len());
                for d in 0..self.len() as u32 {
                    if let Some(i) = self.id(d) {
                        map.entry(i.to_string()).or_insert(d);
                    }
                }
                map
            })
            .get(id)
            .copied()
    }

    /// The stored vector of document `doc`.
    pub fn document(&self, doc: u32) -> Option<SparseView<'_>> {
        let (terms, values) = self.document_slices(doc)?;
        SparseView::new(terms, values).ok()
    }

    /// Term ids and weights of document `doc` (validated: ascending, `< dim`, finite, >= 0).
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

    /// The block layout and block maxima, borrowed together for a search.
    pub(crate) fn blocks(&self) -> BlockArrays<'_> {
        BlockArrays {
            block_size: self.block_size(),
            num_docs: self.len(),
            entry_offsets: self.array(FileId::BlockEntryOffsets),
            entry_docs: self.array(FileId::BlockEntryDocs),
            entry_values: self.array(FileId::BlockEntryValues),
            bound_offsets: self.array(FileId::BoundOffsets),
            bound_blocks: self.array(FileId::BoundBlocks),
            bound_codes: self.array(FileId::BoundCodes),
            bound_scales: self.array(FileId::BoundScales),
            bound_slots: self.array(FileId::BoundSlots),
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

/// Borrowed views of the block arrays (see [`crate::format`]).
pub(crate) struct BlockArrays<'a> {
    pub block_size: usize,
    pub num_docs: usize,
    pub entry_offsets: &'a [u64],
    pub entry_docs: &'a [u8],
    pub entry_values: &'a [f32],
    pub bound_offsets: &'a [u64],
    pub bound_blocks: &'a [u32],
    pub bound_codes: &'a [u8],
    pub bound_scales: &'a [f32],
    pub bound_slots: &'a [u64],
    /// Block position -> document number.
    pub doc_order: &'a [u32],
}
