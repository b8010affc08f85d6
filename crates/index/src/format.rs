//! The on-disk format. An index directory holds `manifest.json` and binary files; the
//! manifest names the format and version and every file's size and CRC32. It is always
//! written last (to a temporary name, synced, then renamed), so a directory with a manifest
//! is a complete index, and the rename is the moment a change becomes visible.
//!
//! Two kinds of directory:
//!
//! - **Single segment** (version 6, what [`crate::IndexBuilder::write`] writes): the
//!   manifest ([`Manifest`]) and the binary arrays below, side by side.
//! - **Segments** (version 7, what [`crate::IndexWriter`] commits): the manifest
//!   ([`SegmentsManifest`]) lists the live segments in order, each one a version-6 array
//!   set in a subdirectory `seg-NNNNNN/` (its own version-6 `manifest.json` included, so a
//!   segment can be opened alone; the copy embedded in the top manifest is the one that
//!   counts), plus per segment an optional deletion file `del-NNNNNN-GGGGGG.bin` (segment
//!   `NNNNNN`, written by generation `GGGGGG`; see `deletes`). A version-6 directory turned
//!   into a segmented one by its first commit keeps its arrays where they are: the
//!   segment with directory `.` (number 0). Segment directories and deletion files are
//!   never modified once written; a commit writes new ones, then the new manifest, and only
//!   then removes what the new manifest no longer names. `write.lock` serialises writers.
//!
//! The arrays of one segment (format `splade-index` version 6; block size `B`, `n`
//! documents, `nb = ceil(n / B)` blocks, `dim` terms):
//!
//! | file | type | length | content |
//! |---|---|---|---|
//! | `forward.indptr` | u64 | n + 1 | CSR row offsets of the documents |
//! | `forward.terms` | u32 | nnz | term ids, strictly ascending per document |
//! | `forward.values` | f32 | nnz | term weights (finite, >= 0) |
//! | `ids.offsets` | u64 | n + 1 | byte offsets of the external ids |
//! | `ids.data` | u8 | - | the ids, UTF-8, concatenated |
//! | `blocks.offsets` | u64 | nb + 1 | per block, its range of entries |
//! | `blocks.entry_docs` | u8 | nnz | document position inside the block |
//! | `blocks.entry_values` | f32 | nnz | the document's weight for the term |
//! | `bounds.offsets` | u64 | T + 1 | per term, its range of `bounds.blocks` (`S` (term, block) pairs in all) |
//! | `bounds.blocks` | u32 | S | the blocks a term occurs in, strictly ascending |
//! | `bounds.codes` | u8 | S | block maximum, quantised upwards |
//! | `bounds.starts` | u32 | S | the first entry of (term, block), inside its block's range |
//! | `bounds.lengths` | u8 | S | the number of entries of (term, block) less one (a block holds at most 256 documents) |
//! | `bounds.scales` | f32 | T | per term, the scale of its codes |
//! | `docs.order` | u32 | n | per block position `p` (block `p / B`, slot `p % B`), the document number stored there |
//!
//! `T` is one more than the largest term that occurs (at most `dim`; indexes written before
//! this rule store `T = dim`): terms above it have no postings, so the per-term arrays grow
//! with the documents, not with the dimension.
//!
//! The forward index and the ids are in document-number (insertion) order. The block
//! layout is in *block-position* order: the builder may reorder documents so that each
//! block holds similar ones (see [`crate::Reorder`]), which makes the block maxima tight;
//! `docs.order` (a permutation of `0..n`) maps positions back to document numbers, which
//! every search reports and ranks ties by.
//!
//! A block's entries are grouped by term (ascending), each term's by position, as the
//! builder writes them; a search reaches the entries of (term, block) from the term's list
//! (`bounds.starts`, `bounds.lengths`), 5 bytes a pair.
//!
//! Older versions are rejected with an error asking to rebuild: version 1 (no
//! `docs.order`, blocks in insertion order), versions 2 and 3 (single segment and
//! segments; they also stored `blocks.terms`, the term of every (block, term) slot, and
//! 8-byte entry offsets and slots), versions 4 and 5 (single segment and segments; they
//! reached the entries of (term, block) through a slot number in the list, `bounds.slots`,
//! and the slot's range of entries, `blocks.entry_offsets`: 8 bytes a pair where 5 do).
//!
//! Entry starts are u32, so one segment holds at most [`MAX_SEGMENT_POSTINGS`] postings
//! (the builder refuses the document that would pass it; a larger corpus is several
//! segments or shards).
//!
//! A term's block maximum is bounded by `codes[i] as f32 * scales[term]` (never below the
//! true maximum; see `quantize`).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IndexError, Result};

/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "splade-index";
/// The format version of single-segment directories and of every segment.
pub const FORMAT_VERSION: u32 = 6;
/// The format version of segmented directories (a [`SegmentsManifest`]).
pub const SEGMENTS_VERSION: u32 = 7;
/// The most postings (stored (term, weight) entries) one segment holds: its entry starts
/// are u32.
pub const MAX_SEGMENT_POSTINGS: usize = u32::MAX as usize;
/// The manifest's file name inside an index directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The lock file an [`crate::IndexWriter`] holds (created once, never removed).
pub const LOCK_FILE: &str = "write.lock";
/// The largest dimension (vocabulary size) an index is built with: 2^24 = 16,777,216, far
/// above every model vocabulary (BERT 30,522, XLM-R 250,002, Gemma 262,144) and CSR's few
/// thousand dimensions. Some arrays of a segment hold one entry per dimension.
pub const MAX_DIM: usize = 1 << 24;
/// When no dimension is given, it is inferred from the vectors (largest index + 1) only up
/// to this size (2^18 = 262,144, the largest known model vocabulary); a larger index in
/// the input is more likely an error than a vocabulary, so the dimension must be given.
pub const MAX_INFERRED_DIM: usize = 1 << 18;
/// The largest absolute weight of a document or query term: 1e15. With at most
/// [`MAX_DIM`] terms per vector, every dot product then stays below 1.7e37, well inside
/// f32's range, so no score can overflow to infinity (which would make pruned search and
/// brute force disagree). SPLADE weights are below 10.
pub const MAX_WEIGHT: f32 = 1e15;
/// The largest `manifest.json` read: 64 MiB (one segment takes about 2 KB of it).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// The largest block size (documents per block): positions inside a block are stored as
/// u8 (`blocks.entry_docs`).
pub const MAX_BLOCK_SIZE: usize = 256;
/// The number of documents per block for documents of [`crate::SHORT_DOCUMENT_TERMS`]
/// terms or more on average (32: on synthetic 100k and WordNet glosses it scored about
/// 3x / 1.4x faster than 64 at the median, for about 5% more index bytes; at 1M documents
/// of 105 terms 1.4x faster than 16), and the block size an index without segments reports.
pub const DEFAULT_BLOCK_SIZE: usize = 32;

/// One binary file of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileId {
    /// `forward.indptr`
    ForwardIndptr,
    /// `forward.terms`
    ForwardTerms,
    /// `forward.values`
    ForwardValues,
    /// `ids.offsets`
    IdOffsets,
    /// `ids.data`
    IdData,
    /// `blocks.offsets`
    BlockOffsets,
    /// `blocks.entry_docs`
    BlockEntryDocs,
    /// `blocks.entry_values`
    BlockEntryValues,
    /// `bounds.offsets`
    BoundOffsets,
    /// `bounds.blocks`
    BoundBlocks,
    /// `bounds.codes`
    BoundCodes,
    /// `bounds.starts`
    BoundStarts,
    /// `bounds.lengths`
    BoundLengths,
    /// `bounds.scales`
    BoundScales,
    /// `docs.order`
    DocOrder,
}

impl FileId {
    /// Every file, in the order they are written.
    pub const ALL: [FileId; 15] = [
        FileId::ForwardIndptr,
        FileId::ForwardTerms,
        FileId::ForwardValues,
        FileId::IdOffsets,
        FileId::IdData,
        FileId::BlockOffsets,
        FileId::BlockEntryDocs,
        FileId::BlockEntryValues,
        FileId::BoundOffsets,
        FileId::BoundBlocks,
        FileId::BoundCodes,
        FileId::BoundStarts,
        FileId::BoundLengths,
        FileId::BoundScales,
        FileId::DocOrder,
    ];

    /// The file name inside the index directory.
    pub fn name(self) -> &'static str {
        match self {
            FileId::ForwardIndptr => "forward.indptr",
            FileId::ForwardTerms => "forward.terms",
            FileId::ForwardValues => "forward.values",
            FileId::IdOffsets => "ids.offsets",
            FileId::IdData => "ids.data",
            FileId::BlockOffsets => "blocks.offsets",
            FileId::BlockEntryDocs => "blocks.entry_docs",
            FileId::BlockEntryValues => "blocks.entry_values",
            FileId::BoundOffsets => "bounds.offsets",
            FileId::BoundBlocks => "bounds.blocks",
            FileId::BoundCodes => "bounds.codes",
            FileId::BoundStarts => "bounds.starts",
            FileId::BoundLengths => "bounds.lengths",
            FileId::BoundScales => "bounds.scales",
            FileId::DocOrder => "docs.order",
        }
    }

    /// Position in [`Self::ALL`].
    pub(crate) fn slot(self) -> usize {
        self as usize
    }
}

/// Size and checksum of one file, as recorded in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Length in bytes.
    pub size: u64,
    /// CRC32 (IEEE) of the whole file.
    pub crc32: u32,
}

impl FileEntry {
    /// The entry of a file holding `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            crc32: crc32(bytes),
        }
    }

    /// The size of a file holding `bytes`, with a checksum of 0 (not computed).
    pub(crate) fn sized(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            crc32: 0,
        }
    }
}

/// The manifest: what the index is and how to check its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The format version ([`FORMAT_VERSION`] for files this build writes).
    pub version: u32,
    /// Vocabulary size: every term id is `< dim`.
    pub dim: u64,
    /// Number of documents.
    pub num_docs: u64,
    /// Total stored (term, weight) entries over all documents.
    pub nnz: u64,
    /// Documents per block (1..=256).
    pub block_size: u32,
    /// Every binary file by name.
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// Number of blocks: `ceil(num_docs / block_size)`.
    pub fn num_blocks(&self) -> u64 {
        self.num_docs.div_ceil(u64::from(self.block_size.max(1)))
    }

    /// Reads and checks the manifest of the single-segment index (or segment directory) in
    /// `dir`: format name and version first, then that every file is listed. A segmented
    /// directory is an error here; [`IndexManifest::read`] reads both kinds.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        match IndexManifest::read(dir)? {
            IndexManifest::Single(m) => Ok(m),
            IndexManifest::Segments(_) => Err(IndexError::UnsupportedFormat {
                path,
                found: format!("{FORMAT_NAME} version {SEGMENTS_VERSION} (segments)"),
                expected: format!(
                    "{FORMAT_NAME} version {FORMAT_VERSION} here (open segmented indexes with \
                     Index::open or read IndexManifest)"
                ),
            }),
        }
    }

    /// Checks a version-6 manifest parsed from `path` (`what` prefixes messages).
    fn check(&self, path: &Path, what: &str) -> Result<()> {
        if self.format != FORMAT_NAME || self.version != FORMAT_VERSION {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "{what}format {} version {}, expected {FORMAT_NAME} version {FORMAT_VERSION}",
                    self.format, self.version
                ),
            ));
        }
        for id in FileId::ALL {
            if !self.files.contains_key(id.name()) {
                return Err(IndexError::corrupt(
                    path,
                    format!("{what}no entry for file '{}'", id.name()),
                ));
            }
        }
        Ok(())
    }

    /// The recorded size and checksum of `file`.
    pub fn entry(&self, file: FileId) -> Option<FileEntry> {
        self.files.get(file.name()).copied()
    }
}

/// The deletion file of a segment, as recorded in a [`SegmentsManifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletesEntry {
    /// File name inside the index directory: `del-SEGMENT-GENERATION.bin`.
    pub file: String,
    /// Number of deleted documents.
    pub count: u64,
    /// Length in bytes.
    pub size: u64,
    /// CRC32 (IEEE) of the whole file.
    pub crc32: u32,
}

/// One live segment of a [`SegmentsManifest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Segment number, unique within the index (0: the arrays of a version-6 directory
    /// kept in place).
    pub id: u64,
    /// Directory of the segment's arrays, relative to the index: `seg-NNNNNN`, or `.` for
    /// segment 0.
    pub dir: String,
    /// Deleted documents, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<DeletesEntry>,
    /// The segment's own (version 6) manifest: shape, file sizes and checksums.
    pub manifest: Manifest,
}

impl SegmentEntry {
    /// Documents of the segment that are not deleted.
    pub fn live_docs(&self) -> u64 {
        self.manifest.num_docs - self.deletes.as_ref().map_or(0, |d| d.count)
    }
}

/// The manifest of a segmented index directory (version 7): its live segments in order
/// (which is the order of their documents: segment order, then document number within a
/// segment) and their deletion files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentsManifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`SEGMENTS_VERSION`].
    pub version: u32,
    /// Incremented by every commit.
    pub generation: u64,
    /// Vocabulary size, the same for every segment.
    pub dim: u64,
    /// The number the next new segment gets (larger than every segment number used).
    pub next_segment: u64,
    /// The live segments, in document order.
    pub segments: Vec<SegmentEntry>,
    /// CRC32 of this manifest's compact JSON serialisation with this field set to 0.
    pub crc32: u32,
}

impl SegmentsManifest {
    /// An empty index of dimension `dim` (generation 0).
    pub(crate) fn empty(dim: u64) -> Self {
        Self {
            format: FORMAT_NAME.to_string(),
            version: SEGMENTS_VERSION,
            generation: 0,
            dim,
            next_segment: 1,
            segments: Vec::new(),
            crc32: 0,
        }
    }

    /// Documents that are not deleted, over all segments.
    pub fn live_docs(&self) -> u64 {
        self.segments.iter().map(SegmentEntry::live_docs).sum()
    }

    /// Reads and checks the manifest of the segmented index in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        match IndexManifest::read(dir)? {
            IndexManifest::Segments(m) => Ok(m),
            IndexManifest::Single(_) => Err(IndexError::corrupt(
                dir.join(MANIFEST_FILE),
                "a single-segment index (version 6), not a segmented one",
            )),
        }
    }

    fn checksum(&self) -> Result<u32> {
        let mut copy = self.clone();
        copy.crc32 = 0;
        let bytes = serde_json::to_vec(&copy)
            .map_err(|e| IndexError::InvalidArgument(format!("cannot serialise manifest: {e}")))?;
        Ok(crc32(&bytes))
    }

    /// The manifest file's contents (pretty JSON), checksum filled in.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut copy = self.clone();
        copy.crc32 = self.checksum()?;
        serde_json::to_vec_pretty(&copy)
            .map_err(|e| IndexError::InvalidArgument(format!("cannot serialise manifest: {e}")))
    }

    /// Checks everything that can be checked without the other files.
    fn check(&self, path: &Path) -> Result<()> {
        let err = |reason: String| IndexError::corrupt(path, reason);
        let actual = self.checksum()?;
        if actual != self.crc32 {
            return Err(err(format!(
                "checksum mismatch (crc32 {actual:08x}, manifest says {:08x}; damaged or edited)",
                self.crc32
            )));
        }
        if self.dim > u64::from(u32::MAX) + 1 {
            return Err(err(format!("dimension {} too large", self.dim)));
        }
        let mut ids = HashSet::new();
        let mut total = 0u64;
        for s in &self.segments {
            if !ids.insert(s.id) || s.id >= self.next_segment {
                return Err(err(format!(
                    "segment number {} is repeated or not below next_segment {}",
                    s.id, self.next_segment
                )));
            }
            if s.dir != segment_dir_name(s.id) {
                return Err(err(format!(
                    "segment {} has directory '{}', expected '{}'",
                    s.id,
                    s.dir,
                    segment_dir_name(s.id)
                )));
            }
            s.manifest.check(path, &format!("segment '{}': ", s.dir))?;
            if s.manifest.dim != self.dim {
                return Err(err(format!(
                    "dimension mismatch: segment '{}' has dimension {}, the index {}",
                    s.dir, s.manifest.dim, self.dim
                )));
            }
            if let Some(d) = &s.deletes {
                let from_this_segment = d
                    .file
                    .strip_prefix(&format!("del-{:06}-", s.id))
                    .and_then(|rest| rest.strip_suffix(".bin"))
                    .and_then(|g| g.parse::<u64>().ok())
                    .is_some_and(|g| g <= self.generation && d.file == deletes_file_name(s.id, g));
                if !from_this_segment {
                    return Err(err(format!(
                        "segment '{}' names deletion file '{}'",
                        s.dir, d.file
                    )));
                }
                if d.count > s.manifest.num_docs {
                    return Err(err(format!(
                        "segment '{}': {} deleted of {} documents",
                        s.dir, d.count, s.manifest.num_docs
                    )));
                }
            }
            total = total.saturating_add(s.manifest.num_docs);
        }
        if total >= u64::from(u32::MAX) {
            return Err(err(format!(
                "{total} documents: too many (at most 2^32 - 2)"
            )));
        }
        Ok(())
    }
}

/// The manifest of either kind of index directory.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexManifest {
    /// A single-segment directory (version 6).
    Single(Manifest),
    /// A segmented directory (version 7).
    Segments(SegmentsManifest),
}

impl IndexManifest {
    /// Reads and checks `dir/manifest.json`: format name and version first, then the
    /// fields (and, for version 7, the manifest's own checksum).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = read_manifest_bytes(&path)?;
        Self::parse(&text, &path)
    }

    /// Parses manifest bytes read from `path`.
    pub(crate) fn parse(text: &[u8], path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_slice(text)
            .map_err(|e| IndexError::corrupt(path, format!("invalid JSON: {e}")))?;
        let format = value.get("format").and_then(|v| v.as_str());
        let version = value.get("version").and_then(|v| v.as_u64());
        let invalid =
            |e: serde_json::Error| IndexError::corrupt(path, format!("invalid manifest: {e}"));
        match (format, version) {
            (Some(FORMAT_NAME), Some(v)) if v == u64::from(FORMAT_VERSION) => {
                let m: Manifest = serde_json::from_value(value).map_err(invalid)?;
                m.check(path, "")?;
                Ok(IndexManifest::Single(m))
            }
            (Some(FORMAT_NAME), Some(v)) if v == u64::from(SEGMENTS_VERSION) => {
                let m: SegmentsManifest = serde_json::from_value(value).map_err(invalid)?;
                m.check(path)?;
                Ok(IndexManifest::Segments(m))
            }
            _ => Err(IndexError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: format!(
                    "{} version {}",
                    format.unwrap_or("<none>"),
                    version.map_or_else(|| "<none>".to_string(), |v| v.to_string())
                ),
                expected: format!(
                    "{FORMAT_NAME} version {FORMAT_VERSION} or {SEGMENTS_VERSION}{}",
                    if version.is_some_and(|v| v < u64::from(FORMAT_VERSION)) {
                        " (an older index: rebuild it with `splade index build --overwrite`)"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }
}

/// An index of an older version of this format that a rebuild may replace whole: its
/// generation and next segment number where its manifest has them (segmented versions),
/// `None` when `text` is not a manifest of this format older than [`FORMAT_VERSION`].
pub(crate) fn older_index(text: &[u8]) -> Option<(u64, u64)> {
    let value: serde_json::Value = serde_json::from_slice(text).ok()?;
    let version = value.get("version")?.as_u64()?;
    if value.get("format")?.as_str()? != FORMAT_NAME || version >= u64::from(FORMAT_VERSION) {
        return None;
    }
    let field = |name: &str| value.get(name).and_then(|v| v.as_u64());
    Some((
        field("generation").unwrap_or(0),
        field("next_segment").unwrap_or(1).max(1),
    ))
}

/// Reads a manifest file: a regular file of at most [`MAX_MANIFEST_BYTES`] (a FIFO or a
/// device in its place is an error, never a hang).
pub(crate) fn read_manifest_bytes(path: &Path) -> Result<Vec<u8>> {
    splade_sparse::files::read_regular_file(path, MAX_MANIFEST_BYTES)
        .map_err(|e| IndexError::io(path, e))
}

/// What a directory given as an index location holds.
#[derive(Debug)]
pub(crate) enum DirState {
    /// Nothing there.
    Missing,
    /// A file (or anything that is not a directory).
    NotADirectory,
    /// An empty directory.
    Empty,
    /// A directory with a `manifest.json` of this format (either version).
    Index,
    /// A non-empty directory that holds no index (`example`: one of its entries).
    Other { example: String },
}

/// Looks at `dir` without changing anything. A `manifest.json` that is not a readable
/// manifest of this format counts as [`DirState::Other`] (it may be someone else's).
pub(crate) fn dir_state(dir: &Path) -> Result<DirState> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::Missing),
        Err(e) => return Err(IndexError::io(dir, e)),
    };
    let is_dir = meta.is_dir() || (meta.file_type().is_symlink() && dir.is_dir());
    if !is_dir {
        return Ok(DirState::NotADirectory);
    }
    let manifest = dir.join(MANIFEST_FILE);
    if manifest.exists() {
        let ours = read_manifest_bytes(&manifest)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(FORMAT_NAME));
        if ours {
            return Ok(DirState::Index);
        }
        return Ok(DirState::Other {
            example: MANIFEST_FILE.to_string(),
        });
    }
    let mut entries = fs::read_dir(dir).map_err(|e| IndexError::io(dir, e))?;
    match entries.next() {
        None => Ok(DirState::Empty),
        Some(entry) => {
            let entry = entry.map_err(|e| IndexError::io(dir, e))?;
            Ok(DirState::Other {
                example: entry.file_name().to_string_lossy().into_owned(),
            })
        }
    }
}

/// The temporary directory a new index named `name` is built in, beside its final place:
/// `.NAME.splade-build-PID`.
/// The prefix of the slot lists a build to disk spills into the directory it writes
/// (removed before the directory is published).
const BUILD_SPILL_PREFIX: &str = "build.slots.";

/// The name of spilled slot list `r` ([`BUILD_SPILL_PREFIX`] and the number).
pub(crate) fn spill_name(r: usize) -> String {
    format!("{BUILD_SPILL_PREFIX}{r}")
}

/// Whether `name` is a spilled slot list's.
fn is_spill_name(name: &str) -> bool {
    name.strip_prefix(BUILD_SPILL_PREFIX)
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn build_dir_name(name: &str, pid: u32) -> String {
    format!(".{name}.splade-build-{pid}")
}

/// Removes temporary build directories of `name` in `parent` left by builds that crashed
/// (their process is gone; checked through `/proc`, so only on Linux) and that hold only
/// segment files. Best effort: failures are ignored.
pub(crate) fn remove_stale_builds(parent: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.splade-build-");
    for entry in entries.flatten() {
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && path.is_dir() && holds_only_segment_files(&path).unwrap_or(false) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// The directory of segment `id`, relative to the index directory.
pub(crate) fn segment_dir_name(id: u64) -> String {
    if id == 0 {
        ".".to_string()
    } else {
        format!("seg-{id:06}")
    }
}

/// The deletion file of segment `id` written by generation `generation`.
pub(crate) fn deletes_file_name(id: u64, generation: u64) -> String {
    format!("del-{id:06}-{generation:06}.bin")
}

/// CRC32 of a byte slice; pieces of a large one are summed in parallel and combined (an
/// index's largest files are hundreds of megabytes: 0.2 s on one core at 1M documents).
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    use rayon::prelude::*;
    const PIECE: usize = 16 << 20;
    if bytes.len() <= PIECE {
        let mut h = crc32fast::Hasher::new();
        h.update(bytes);
        return h.finalize();
    }
    let pieces: Vec<crc32fast::Hasher> = bytes
        .par_chunks(PIECE)
        .map(|piece| {
            let mut h = crc32fast::Hasher::new();
            h.update(piece);
            h
        })
        .collect();
    let mut all = crc32fast::Hasher::new();
    for piece in &pieces {
        all.combine(piece);
    }
    all.finalize()
}

/// The temporary name [`write_atomic`] uses for `name`.
fn temp_name(name: &str) -> String {
    format!(".{name}.tmp-{}", std::process::id())
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in the same directory, synced,
/// then renamed over the target.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(temp_name(name));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(IndexError::io(&tmp, e));
    }
    fs::rename(&tmp, &target).map_err(|e| IndexError::io(&target, e))
}

/// Syncs a directory so that renames inside it are durable (best effort where directories
/// cannot be opened, e.g. on Windows).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir) {
        Ok(d) => match d.sync_all() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
            Err(e) => Err(IndexError::io(dir, e)),
        },
        Err(_) => Ok(()),
    }
}

/// What an index directory's manifest references, for [`remove_unreferenced`].
#[derive(Debug, Default)]
pub(crate) struct Referenced {
    /// Segment directories (`seg-NNNNNN`).
    pub dirs: HashSet<String>,
    /// Deletion files.
    pub files: HashSet<String>,
    /// Whether the arrays at the top of the directory (a version-6 index or segment 0)
    /// are in use.
    pub top_arrays: bool,
}

impl Referenced {
    pub(crate) fn of(manifest: &SegmentsManifest) -> Self {
        let mut r = Referenced::default();
        for s in &manifest.segments {
            if s.id == 0 {
                r.top_arrays = true;
            } else {
                r.dirs.insert(s.dir.clone());
            }
            if let Some(d) = &s.deletes {
                r.files.insert(d.file.clone());
            }
        }
        r
    }
}

/// Whether `name` is exactly a segment directory name this crate writes (`seg-NNNNNN`).
fn is_segment_dir_name(name: &str) -> bool {
    name.strip_prefix("seg-")
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|id| id > 0 && segment_dir_name(id) == name)
}

/// Whether `name` is exactly a deletion file name this crate writes.
fn is_deletes_file_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("del-")
        .and_then(|r| r.strip_suffix(".bin"))
    else {
        return false;
    };
    let Some((seg, generation)) = rest.split_once('-') else {
        return false;
    };
    match (seg.parse::<u64>(), generation.parse::<u64>()) {
        (Ok(s), Ok(g)) => deletes_file_name(s, g) == name,
        _ => false,
    }
}

/// Whether `name` is exactly a temporary name [`write_atomic`] gives one of this crate's
/// files (`.NAME.tmp-PID`).
fn is_temp_name(name: &str) -> bool {
    let Some((target, pid)) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")) else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && (is_array_name(target) || target == MANIFEST_FILE || is_deletes_file_name(target))
}

/// Array files of older versions that this version no longer writes (so that replacing an
/// older index removes them): `blocks.terms` (versions 2 and 3), `blocks.term_offsets`,
/// `blocks.entry_offsets` and `bounds.slots` (versions 1 to 5).
const OLDER_ARRAY_NAMES: [&str; 4] = [
    "blocks.terms",
    "blocks.term_offsets",
    "blocks.entry_offsets",
    "bounds.slots",
];

/// Whether `name` is an array file this crate writes or wrote in an older version.
fn is_array_name(name: &str) -> bool {
    FileId::ALL.iter().any(|id| id.name() == name) || OLDER_ARRAY_NAMES.contains(&name)
}

/// Whether the segment directory `path` holds only files this crate writes into one (its
/// arrays, its manifest, their temporary names): a directory with anything else in it is
/// not ours to remove.
fn holds_only_segment_files(path: &Path) -> Result<bool> {
    for entry in fs::read_dir(path).map_err(|e| IndexError::io(path, e))? {
        let entry = entry.map_err(|e| IndexError::io(path, e))?;
        let is_file = entry
            .file_type()
            .map_err(|e| IndexError::io(entry.path(), e))?
            .is_file();
        let ours = entry.file_name().to_str().is_some_and(|n| {
            is_file
                && (is_array_name(n) || n == MANIFEST_FILE || is_spill_name(n) || is_temp_name(n))
        });
        if !ours {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes from the index directory `dir` every file this crate writes that `keep` does
/// not reference: segment directories, deletion files, the top-level arrays (when unused)
/// and temporary files left by an interrupted write. Only exact names of this crate's
/// files count (`seg-NNNNNN` directories holding nothing but segment files,
/// `del-NNNNNN-GGGGGG.bin`, `.NAME.tmp-PID` of those names); anything else is left alone.
/// Returns the number of entries removed.
pub(crate) fn remove_unreferenced(dir: &Path, keep: &Referenced) -> Result<usize> {
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(|e| IndexError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IndexError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| IndexError::io(&path, e))?;
        let orphan = if file_type.is_dir() {
            is_segment_dir_name(&name)
                && !keep.dirs.contains(&name)
                && holds_only_segment_files(&path)?
        } else if file_type.is_file() {
            (is_deletes_file_name(&name) && !keep.files.contains(&name))
                || is_temp_name(&name)
                || (is_array_name(&name) && !keep.top_arrays)
        } else {
            false
        };
        if orphan {
            let result = if file_type.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(IndexError::io(&path, e)),
            }
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces summed in parallel give the checksum of the whole, at and around the piece
    /// size.
    #[test]
    fn crc32_in_pieces_is_the_crc32_of_the_whole() {
        let piece = 16usize << 20;
        let bytes: Vec<u8> = (0..3 * piece + 12_345)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
            .collect();
        for len in [
            0,
            1,
            piece - 1,
            piece,
            piece + 1,
            2 * piece + 7,
            bytes.len(),
        ] {
            assert_eq!(
                crc32(&bytes[..len]),
                crc32fast::hash(&bytes[..len]),
                "{len}"
            );
        }
    }

    #[test]
    fn only_exact_names_of_this_crate_count_as_its_files() {
        assert!(is_segment_dir_name("seg-000001"));
        assert!(is_segment_dir_name("seg-1234567"));
        assert!(!is_segment_dir_name("seg-2024"));
        assert!(!is_segment_dir_name("seg-000000"));
        assert!(!is_segment_dir_name("seg-00001x"));
        assert!(is_deletes_file_name("del-000003-000012.bin"));
        assert!(!is_deletes_file_name("del-3-12.bin"));
        assert!(!is_deletes_file_name("del-notes.bin"));
        assert!(is_temp_name(".manifest.json.tmp-123"));
        assert!(is_temp_name(".forward.terms.tmp-9"));
        assert!(!is_temp_name(".my-notes.tmp-1"));
        assert!(!is_temp_name(".manifest.json.tmp-"));
    }

    #[test]
    fn unknown_files_survive_a_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["seg-2024", "seg-000007", "seg-000008"] {
            fs::create_dir(d.join(f)).unwrap();
        }
        fs::write(d.join("seg-000007").join("forward.terms"), b"").unwrap();
        fs::write(d.join("seg-000008").join("notes.txt"), b"mine").unwrap();
        for f in [
            "del-notes.bin",
            "del-000001-000002.bin",
            ".x.tmp-1",
            "notes.txt",
        ] {
            fs::write(d.join(f), b"x").unwrap();
        }
        let removed = remove_unreferenced(d, &Referenced::default()).unwrap();
        assert_eq!(removed, 2);
        assert!(!d.join("seg-000007").exists());
        assert!(!d.join("del-000001-000002.bin").exists());
        for kept in [
            "seg-2024",
            "seg-000008",
            "del-notes.bin",
            ".x.tmp-1",
            "notes.txt",
        ] {
            assert!(d.join(kept).exists(), "{kept}");
        }
    }
}
