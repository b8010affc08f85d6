//! The on-disk format. An index directory holds `manifest.json` and binary files; the
//! manifest names the format and version and every file's size and CRC32. It is always
//! written last (to a temporary name, synced, then renamed), so a directory with a manifest
//! is a complete index, and the rename is the moment a change becomes visible.
//!
//! Two kinds of directory:
//!
//! - **Single segment** (version 2, what [`crate::IndexBuilder::write`] writes): the
//!   manifest ([`Manifest`]) and the binary arrays below, side by side.
//! - **Segments** (version 3, what [`crate::IndexWriter`] commits): the manifest
//!   ([`SegmentsManifest`]) lists the live segments in order, each one a version-2 array
//!   set in a subdirectory `seg-NNNNNN/` (its own version-2 `manifest.json` included, so a
//!   segment can be opened alone; the copy embedded in the top manifest is the one that
//!   counts), plus per segment an optional deletion file `del-NNNNNN-GGGGGG.bin` (segment
//!   `NNNNNN`, written by generation `GGGGGG`; see `deletes`). A version-2 directory turned
//!   into a segmented one by its first commit keeps its arrays where they are: the
//!   segment with directory `.` (number 0). Segment directories and deletion files are
//!   never modified once written; a commit writes new ones, then the new manifest, and only
//!   then removes what the new manifest no longer names. `write.lock` serialises writers.
//!
//! The arrays of one segment (format `splade-index` version 2; block size `B`, `n`
//! documents, `nb = ceil(n / B)` blocks, `dim` terms):
//!
//! | file | type | length | content |
//! |---|---|---|---|
//! | `forward.indptr` | u64 | n + 1 | CSR row offsets of the documents |
//! | `forward.terms` | u32 | nnz | term ids, strictly ascending per document |
//! | `forward.values` | f32 | nnz | term weights (finite, >= 0) |
//! | `ids.offsets` | u64 | n + 1 | byte offsets of the external ids |
//! | `ids.data` | u8 | - | the ids, UTF-8, concatenated |
//! | `blocks.term_offsets` | u64 | nb + 1 | per block, its range of `blocks.terms` |
//! | `blocks.terms` | u32 | - | the terms occurring in each block, strictly ascending |
//! | `blocks.entry_offsets` | u64 | len(blocks.terms) + 1 | per (block, term), its range of entries |
//! | `blocks.entry_docs` | u8 | nnz | document position inside the block, strictly ascending |
//! | `blocks.entry_values` | f32 | nnz | the document's weight for the term |
//! | `bounds.offsets` | u64 | dim + 1 | per term, its range of `bounds.blocks` |
//! | `bounds.blocks` | u32 | - | the blocks a term occurs in, strictly ascending |
//! | `bounds.codes` | u8 | len(bounds.blocks) | block maximum, quantised upwards |
//! | `bounds.slots` | u64 | len(bounds.blocks) | position of (term, block) in `blocks.terms` |
//! | `bounds.scales` | f32 | dim | per term, the scale of its codes |
//! | `docs.order` | u32 | n | per block position `p` (block `p / B`, slot `p % B`), the document number stored there |
//!
//! The forward index and the ids are in document-number (insertion) order. The block
//! layout is in *block-position* order: the builder may reorder documents so that each
//! block holds similar ones (see [`crate::Reorder`]), which makes the block maxima tight;
//! `docs.order` (a permutation of `0..n`) maps positions back to document numbers, which
//! every search reports and ranks ties by. Version 1 (no `docs.order`, blocks in insertion
//! order) is rejected with an error asking to rebuild.
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
pub const FORMAT_VERSION: u32 = 2;
/// The format version of segmented directories (a [`SegmentsManifest`]).
pub const SEGMENTS_VERSION: u32 = 3;
/// The manifest's file name inside an index directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The lock file an [`crate::IndexWriter`] holds (created once, never removed).
pub const LOCK_FILE: &str = "write.lock";

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
    /// `blocks.term_offsets`
    BlockTermOffsets,
    /// `blocks.terms`
    BlockTerms,
    /// `blocks.entry_offsets`
    BlockEntryOffsets,
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
    /// `bounds.scales`
    BoundScales,
    /// `bounds.slots`
    BoundSlots,
    /// `docs.order`
    DocOrder,
}

impl FileId {
    /// Every file, in the order they are written.
    pub const ALL: [FileId; 16] = [
        FileId::ForwardIndptr,
        FileId::ForwardTerms,
        FileId::ForwardValues,
        FileId::IdOffsets,
        FileId::IdData,
        FileId::BlockTermOffsets,
        FileId::BlockTerms,
        FileId::BlockEntryOffsets,
        FileId::BlockEntryDocs,
        FileId::BlockEntryValues,
        FileId::BoundOffsets,
        FileId::BoundBlocks,
        FileId::BoundCodes,
        FileId::BoundScales,
        FileId::BoundSlots,
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
            FileId::BlockTermOffsets => "blocks.term_offsets",
            FileId::BlockTerms => "blocks.terms",
            FileId::BlockEntryOffsets => "blocks.entry_offsets",
            FileId::BlockEntryDocs => "blocks.entry_docs",
            FileId::BlockEntryValues => "blocks.entry_values",
            FileId::BoundOffsets => "bounds.offsets",
            FileId::BoundBlocks => "bounds.blocks",
            FileId::BoundCodes => "bounds.codes",
            FileId::BoundScales => "bounds.scales",
            FileId::BoundSlots => "bounds.slots",
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

    /// Checks a version-2 manifest parsed from `path` (`what` prefixes messages).
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
    /// Segment number, unique within the index (0: the arrays of a version-2 directory
    /// kept in place).
    pub id: u64,
    /// Directory of the segment's arrays, relative to the index: `seg-NNNNNN`, or `.` for
    /// segment 0.
    pub dir: String,
    /// Deleted documents, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<DeletesEntry>,
    /// The segment's own (version 2) manifest: shape, file sizes and checksums.
    pub manifest: Manifest,
}

impl SegmentEntry {
    /// Documents of the segment that are not deleted.
    pub fn live_docs(&self) -> u64 {
        self.manifest.num_docs - self.deletes.as_ref().map_or(0, |d| d.count)
    }
}

/// The manifest of a segmented index directory (version 3): its live segments in order
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
                "a single-segment index (version 2), not a segmented one",
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
    /// A single-segment directory (version 2).
    Single(Manifest),
    /// A segmented directory (version 3).
    Segments(SegmentsManifest),
}

impl IndexManifest {
    /// Reads and checks `dir/manifest.json`: format name and version first, then the
    /// fields (and, for version 3, the manifest's own checksum).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
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
                        " (an older index: rebuild it with `splade index build`)"
                    } else {
                        ""
                    }
                ),
            }),
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

/// CRC32 of a byte slice.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
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

/// Writes a complete single-segment directory and returns its manifest (file entries
/// filled in). An existing manifest is removed first, so a crash part way through leaves a
/// directory that `open` rejects rather than a mix of old and new files that looks valid;
/// the new manifest is renamed into place last.
pub(crate) fn write_index_dir(
    dir: &Path,
    mut manifest: Manifest,
    files: &[(FileId, &[u8])],
) -> Result<Manifest> {
    fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    match fs::remove_file(&manifest_path) {
        Ok(()) => sync_dir(dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(IndexError::io(&manifest_path, e)),
    }
    manifest.files.clear();
    for &(id, bytes) in files {
        write_atomic(dir, id.name(), bytes)?;
        manifest.files.insert(
            id.name().to_string(),
            FileEntry {
                size: bytes.len() as u64,
                crc32: crc32(bytes),
            },
        );
    }
    sync_dir(dir)?;
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| IndexError::InvalidArgument(format!("cannot serialise manifest: {e}")))?;
    write_atomic(dir, MANIFEST_FILE, &json)?;
    sync_dir(dir)?;
    Ok(manifest)
}

/// What an index directory's manifest references, for [`remove_unreferenced`].
#[derive(Debug, Default)]
pub(crate) struct Referenced {
    /// Segment directories (`seg-NNNNNN`).
    pub dirs: HashSet<String>,
    /// Deletion files.
    pub files: HashSet<String>,
    /// Whether the arrays at the top of the directory (a version-2 index or segment 0)
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

/// Removes from the index directory `dir` every file this crate writes that `keep` does
/// not reference: segment directories, deletion files, the top-level arrays (when unused)
/// and temporary files left by an interrupted write. Other files are left alone. Returns
/// the number of entries removed.
pub(crate) fn remove_unreferenced(dir: &Path, keep: &Referenced) -> Result<usize> {
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(|e| IndexError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IndexError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(|e| IndexError::io(&path, e))?
            .is_dir();
        let segment_dir = name
            .strip_prefix("seg-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let orphan = if is_dir {
            segment_dir && !keep.dirs.contains(&name)
        } else {
            let deletes = name.starts_with("del-") && name.ends_with(".bin");
            let temp = name.starts_with('.') && name.contains(".tmp-");
            let array = FileId::ALL.iter().any(|id| id.name() == name);
            (deletes && !keep.files.contains(&name)) || temp || (array && !keep.top_arrays)
        };
        if orphan {
            let result = if is_dir {
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
