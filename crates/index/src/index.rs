//! The index: opened from a directory by memory map, or built in memory; one or more
//! segments, each with its set of deleted documents.

use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use splade_sparse::SparseView;

use crate::deletes::DeleteSet;
use crate::error::{IndexError, Result};
use crate::format::{
    self as format, crc32, IndexManifest, Manifest, SegmentEntry, SegmentsManifest, MANIFEST_FILE,
};
use crate::segment::Segment;
use crate::storage::Residency;

/// A read-only SPLADE index: forward (per-document) vectors, external ids, the per-block
/// inverted layout and the per-term block maxima used for pruning, in one or more
/// segments. See [`crate::format`] for the files, [`Index::search`] / [`crate::Method`] for
/// the search methods and [`crate::IndexWriter`] for adding and deleting documents.
///
/// **Document numbers** are global: the documents of the first segment are numbered from
/// 0, those of the next segment follow, and so on (segment order, then document number
/// within the segment). Deleted documents keep their numbers (so numbers run up to
/// [`Self::max_doc`], not [`Self::len`]) but are never returned by searches or lookups.
/// Score ties go to the smaller number, i.e. to the document added earlier. An index
/// [`crate::IndexBuilder`] makes has one segment and no deletions: numbers are insertion
/// order.
///
/// Every array is validated when the index is opened or built (offsets monotone and in
/// range, term ids `< dim`, weights finite and `>= 0`), so no input file can make a search
/// panic or read out of bounds.
#[derive(Debug, Clone)]
pub struct Index {
    slots: Vec<Slot>,
    dim: usize,
    live: usize,
    max_doc: usize,
    nnz: usize,
    dir: Option<PathBuf>,
    segments_manifest: Option<SegmentsManifest>,
    id_lookup: OnceLock<HashMap<String, u32>>,
}

/// One segment of an [`Index`], where its documents start and which are deleted.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub segment: Arc<Segment>,
    /// Global number of the segment's document 0.
    pub base: u32,
    pub deleted: DeleteSet,
    /// Segment number and directory (relative to the index).
    pub id: u64,
    pub dir: String,
}

impl Slot {
    pub(crate) fn live(&self) -> usize {
        self.segment.len() - self.deleted.len()
    }
}

/// A summary of one segment of an [`Index`] (see [`Index::segments`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentInfo<'a> {
    /// Segment number (0 for a single-segment index).
    pub id: u64,
    /// Directory of its arrays relative to the index directory (`.` for the top level).
    pub dir: &'a str,
    /// Global number of its first document.
    pub first_doc: u32,
    /// Documents stored in it, deleted ones included.
    pub num_docs: usize,
    /// Its deleted documents.
    pub deleted: usize,
    /// Its manifest (shape, files and checksums).
    pub manifest: &'a Manifest,
}

/// How [`Index`] opens a directory: whether checksums are verified and where the files
/// live ([`Residency`]). [`Index::open`] is `OpenOptions::new().open(dir)`.
///
/// ```
/// use splade_index::{Index, IndexBuilder, OpenOptions, Residency};
/// use splade_sparse::SparseVector;
/// let dir = tempfile::tempdir()?;
/// let mut b = IndexBuilder::new(10);
/// b.add("a", SparseVector::new(vec![1, 4], vec![0.5, 2.0])?.view())?;
/// b.write(&dir.path().join("idx"))?;
/// let index = OpenOptions::new()
///     .residency(Residency::Memory)
///     .open(&dir.path().join("idx"))?;
/// assert_eq!(index.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    verify: bool,
    residency: Residency,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// Checksums verified, files memory-mapped.
    pub fn new() -> Self {
        Self {
            verify: true,
            residency: Residency::Mapped,
        }
    }

    /// Whether every segment file's CRC32 is checked (default `true`; see
    /// [`Index::open_unverified`] for what is still checked without).
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Where the files live once opened (default [`Residency::Mapped`]). An
    /// [`crate::IndexWriter`] always maps its own index and the segments it writes.
    pub fn residency(mut self, residency: Residency) -> Self {
        self.residency = residency;
        self
    }

    pub(crate) fn verifies(&self) -> bool {
        self.verify
    }

    pub(crate) fn residency_of_files(&self) -> Residency {
        self.residency
    }

    /// Opens the index in `dir` (see [`Index::open`]).
    pub fn open(&self, dir: &Path) -> Result<Index> {
        Index::open_inner(dir, self)
    }
}

impl Index {
    /// Opens the index in `dir`, single-segment (version 6) or segmented (version 7):
    /// reads the manifest (format name and version checked first), memory-maps every file,
    /// **verifies every file's size and CRC32** and validates the structure and the
    /// deletion files. Both passes read each file once, sequentially (about as fast as the
    /// disk: fine up to several GB); use [`Self::open_unverified`] to skip the checksums of
    /// the segment arrays. Every problem is an error naming the file.
    ///
    /// Opening while an [`crate::IndexWriter`] commits is safe: the manifest is replaced
    /// atomically, and should the writer remove files of the previous generation while
    /// they are being opened, the open starts again from the new manifest.
    pub fn open(dir: &Path) -> Result<Self> {
        OpenOptions::new().open(dir)
    }

    /// Like [`Self::open`] but without checksum verification of the segment arrays: sizes
    /// and structure are still validated, so a damaged file cannot cause a panic or an
    /// out-of-bounds read, but damaged weights inside the valid range go unnoticed (they
    /// give wrong scores). [`Self::verify`] checks the checksums later.
    pub fn open_unverified(dir: &Path) -> Result<Self> {
        OpenOptions::new().verify(false).open(dir)
    }

    fn open_inner(dir: &Path, options: &OpenOptions) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let mut attempts = 0;
        loop {
            let text = format::read_manifest_bytes(&path)?;
            let result = IndexManifest::parse(&text, &path)
                .and_then(|m| Self::from_manifest(dir, m, &HashMap::new(), options));
            match result {
                Ok(index) => return Ok(index),
                Err(e) => {
                    // A commit replaced the manifest (and removed the files it no longer
                    // needs) while we were reading: open the new state.
                    attempts += 1;
                    let changed = format::read_manifest_bytes(&path).is_ok_and(|now| now != text);
                    if !(changed && attempts < 5) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// The index described by `manifest` in `dir`; segments found in `reuse` (by
    /// directory name) are taken from there instead of being opened again.
    pub(crate) fn from_manifest(
        dir: &Path,
        manifest: IndexManifest,
        reuse: &HashMap<String, Arc<Segment>>,
        options: &OpenOptions,
    ) -> Result<Self> {
        match manifest {
            IndexManifest::Single(m) => {
                let dim = m.dim as usize;
                let segment =
                    Segment::open(dir, m, options.verifies(), options.residency_of_files())?;
                Self::from_slots(
                    vec![(Arc::new(segment), DeleteSet::default(), 0, ".".to_string())],
                    dim,
                    Some(dir.to_path_buf()),
                    None,
                )
            }
            IndexManifest::Segments(m) => {
                let mut parts = Vec::with_capacity(m.segments.len());
                for entry in &m.segments {
                    let segment = match reuse.get(&entry.dir) {
                        Some(s) if s.manifest() == &entry.manifest => Arc::clone(s),
                        _ => Arc::new(Segment::open(
                            &dir.join(&entry.dir),
                            entry.manifest.clone(),
                            options.verifies(),
                            options.residency_of_files(),
                        )?),
                    };
                    let deleted = read_deletes(dir, entry)?;
                    parts.push((segment, deleted, entry.id, entry.dir.clone()));
                }
                let dim = m.dim as usize;
                Self::from_slots(parts, dim, Some(dir.to_path_buf()), Some(m))
            }
        }
    }

    /// An index of one segment built in memory.
    pub(crate) fn from_segment(segment: Segment) -> Result<Self> {
        let dim = segment.dim();
        Self::from_slots(
            vec![(Arc::new(segment), DeleteSet::default(), 0, ".".to_string())],
            dim,
            None,
            None,
        )
    }

    fn from_slots(
        parts: Vec<(Arc<Segment>, DeleteSet, u64, String)>,
        dim: usize,
        dir: Option<PathBuf>,
        segments_manifest: Option<SegmentsManifest>,
    ) -> Result<Self> {
        let mut slots = Vec::with_capacity(parts.len());
        let (mut base, mut live, mut nnz) = (0usize, 0usize, 0usize);
        for (segment, deleted, id, seg_dir) in parts {
            let too_many = || {
                IndexError::InvalidArgument(format!(
                    "more than 2^32 - 2 documents over all segments ({})",
                    dir.as_deref().unwrap_or(Path::new("<memory>")).display()
                ))
            };
            let start = u32::try_from(base).map_err(|_| too_many())?;
            base += segment.len();
            if base >= u32::MAX as usize {
                return Err(too_many());
            }
            let indptr = segment.forward_indptr();
            let deleted_nnz: usize = deleted
                .docs()
                .iter()
                .map(|&d| {
                    let (s, e) = (indptr.get(d as usize), indptr.get(d as usize + 1));
                    s.zip(e).map_or(0, |(s, e)| e.saturating_sub(*s) as usize)
                })
                .sum();
            nnz += segment.nnz().saturating_sub(deleted_nnz);
            live += segment.len() - deleted.len();
            slots.push(Slot {
                segment,
                base: start,
                deleted,
                id,
                dir: seg_dir,
            });
        }
        Ok(Self {
            slots,
            dim,
            live,
            max_doc: base,
            nnz,
            dir,
            segments_manifest,
            id_lookup: OnceLock::new(),
        })
    }

    /// Recomputes every segment file's CRC32 and compares it with the manifest. An index
    /// built in memory computes its checksums on first request (this, [`Self::manifest`]
    /// or [`Self::segments`]), from the arrays it holds: for it this check has nothing to
    /// catch.
    pub fn verify(&self) -> Result<()> {
        self.slots.iter().try_for_each(|s| s.segment.verify())
    }

    /// The manifest of the only segment: `Some` when the index has exactly one segment
    /// (every index [`crate::IndexBuilder`] builds or writes), `None` otherwise (see
    /// [`Self::segments`] and [`Self::segments_manifest`]).
    pub fn manifest(&self) -> Option<&Manifest> {
        match self.slots.as_slice() {
            [only] => Some(only.segment.manifest()),
            _ => None,
        }
    }

    /// The manifest of a segmented (version 7) directory; `None` for a single-segment
    /// (version 6) directory or an index built in memory.
    pub fn segments_manifest(&self) -> Option<&SegmentsManifest> {
        self.segments_manifest.as_ref()
    }

    /// The commit generation (0 for a single-segment directory or an in-memory index).
    pub fn generation(&self) -> u64 {
        self.segments_manifest.as_ref().map_or(0, |m| m.generation)
    }

    /// The segments, in document order.
    pub fn segments(&self) -> Vec<SegmentInfo<'_>> {
        self.slots
            .iter()
            .map(|s| SegmentInfo {
                id: s.id,
                dir: &s.dir,
                first_doc: s.base,
                num_docs: s.segment.len(),
                deleted: s.deleted.len(),
                manifest: s.segment.manifest(),
            })
            .collect()
    }

    /// Number of segments.
    pub fn num_segments(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The directory the index was opened from (`None` when built in memory).
    pub fn path(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Vector dimension: every term id is `< dim`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of live (not deleted) documents.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the index holds no live document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One more than the largest document number: [`Self::len`] plus the deleted
    /// documents still stored.
    pub fn max_doc(&self) -> usize {
        self.max_doc
    }

    /// Number of deleted documents still stored (removed by merges).
    pub fn num_deleted(&self) -> usize {
        self.max_doc - self.live
    }

    /// Total stored entries over all live documents.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Documents per block of the first segment (every segment an
    /// [`crate::IndexWriter`] writes uses the same unless told otherwise);
    /// [`crate::DEFAULT_BLOCK_SIZE`] when there is no segment.
    pub fn block_size(&self) -> usize {
        self.slots
            .first()
            .map_or(format::DEFAULT_BLOCK_SIZE, |s| s.segment.block_size())
    }

    /// Number of blocks over all segments.
    pub fn num_blocks(&self) -> usize {
        self.slots.iter().map(|s| s.segment.num_blocks()).sum()
    }

    /// The segment holding global document `doc` and the local number, whether or not
    /// the document is deleted.
    #[inline]
    fn locate(&self, doc: u32) -> Option<(&Slot, u32)> {
        let slot = match self.slots.as_slice() {
            [only] => only,
            slots => &slots[slots.partition_point(|s| s.base <= doc).checked_sub(1)?],
        };
        let local = doc - slot.base;
        ((local as usize) < slot.segment.len()).then_some((slot, local))
    }

    /// The segment and local number of live document `doc`.
    pub(crate) fn locate_live(&self, doc: u32) -> Option<(&Slot, u32)> {
        self.locate(doc).filter(|(s, l)| !s.deleted.contains(*l))
    }

    /// Whether `doc` is the number of a deleted document.
    pub fn is_deleted(&self, doc: u32) -> bool {
        self.locate(doc).is_some_and(|(s, l)| s.deleted.contains(l))
    }

    /// The external id of document `doc` (`None` when out of range or deleted).
    pub fn id(&self, doc: u32) -> Option<&str> {
        let (slot, local) = self.locate_live(doc)?;
        slot.segment.id(local)
    }

    /// The number of the live document with external id `id` (the first one, should a
    /// damaged index hold duplicates). The first call builds a hash map of all ids.
    pub fn doc_number(&self, id: &str) -> Option<u32> {
        self.id_lookup
            .get_or_init(|| {
                let mut map = HashMap::with_capacity(self.len());
                for slot in &self.slots {
                    for local in 0..slot.segment.len() as u32 {
                        if slot.deleted.contains(local) {
                            continue;
                        }
                        if let Some(i) = slot.segment.id(local) {
                            map.entry(i.to_string()).or_insert(slot.base + local);
                        }
                    }
                }
                map
            })
            .get(id)
            .copied()
    }

    /// The stored vector of document `doc` (`None` when out of range or deleted).
    pub fn document(&self, doc: u32) -> Option<SparseView<'_>> {
        let (terms, values) = self.document_slices(doc)?;
        SparseView::new(terms, values).ok()
    }

    /// Term ids and weights of live document `doc` (validated: ascending, `< dim`, finite,
    /// >= 0).
    pub(crate) fn document_slices(&self, doc: u32) -> Option<(&[u32], &[f32])> {
        let (slot, local) = self.locate_live(doc)?;
        slot.segment.document_slices(local)
    }
}

/// Reads, checks and decodes the deletion file of a segment (empty set when none).
fn read_deletes(dir: &Path, entry: &SegmentEntry) -> Result<DeleteSet> {
    let Some(d) = &entry.deletes else {
        return Ok(DeleteSet::default());
    };
    let path = dir.join(&d.file);
    // The size follows from the count (header, one u32 per document, checksum): checked
    // before reading, so a damaged manifest cannot make this read allocate more.
    let expected = 28u64.saturating_add(d.count.saturating_mul(4));
    if d.size != expected {
        return Err(IndexError::corrupt(
            dir.join(MANIFEST_FILE),
            format!(
                "deletion file '{}': size {} does not fit {} deleted documents ({expected} bytes)",
                d.file, d.size, d.count
            ),
        ));
    }
    let bytes = splade_sparse::files::read_regular_file(&path, d.size)
        .map_err(|e| IndexError::io(&path, e))?;
    if bytes.len() as u64 != d.size {
        return Err(IndexError::corrupt(
            &path,
            format!(
                "size {} bytes, manifest says {} (truncated or overwritten?)",
                bytes.len(),
                d.size
            ),
        ));
    }
    let actual = crc32(&bytes);
    if actual != d.crc32 {
        return Err(IndexError::corrupt(
            &path,
            format!(
                "checksum mismatch (crc32 {actual:08x}, manifest says {:08x})",
                d.crc32
            ),
        ));
    }
    let set = DeleteSet::decode(&bytes, entry.manifest.num_docs as usize, &path)?;
    if set.len() as u64 != d.count {
        return Err(IndexError::corrupt(
            &path,
            format!("{} deleted documents, manifest says {}", set.len(), d.count),
        ));
    }
    Ok(set)
}
