//! The on-disk format: an index directory holds `manifest.json` and one little-endian binary
//! array per [`FileId`]. The manifest names the format and version, the collection's shape
//! and every file's size and CRC32; it is written last, so a directory with a manifest is a
//! complete index.
//!
//! Format `splade-index` version 2 (block size `B`, `n` documents, `nb = ceil(n / B)`
//! blocks, `dim` terms):
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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IndexError, Result};

/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "splade-index";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// The manifest's file name inside an index directory.
pub const MANIFEST_FILE: &str = "manifest.json";

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

    /// Reads and checks the manifest of the index in `dir`: format name and version first,
    /// then that every file is listed.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
        let value: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| IndexError::corrupt(&path, format!("invalid JSON: {e}")))?;
        let format = value.get("format").and_then(|v| v.as_str());
        let version = value.get("version").and_then(|v| v.as_u64());
        if format != Some(FORMAT_NAME) || version != Some(u64::from(FORMAT_VERSION)) {
            return Err(IndexError::UnsupportedFormat {
                path,
                found: format!(
                    "{} version {}",
                    format.unwrap_or("<none>"),
                    version.map_or_else(|| "<none>".to_string(), |v| v.to_string())
                ),
                expected: format!(
                    "{FORMAT_NAME} version {FORMAT_VERSION}{}",
                    if version.is_some_and(|v| v < u64::from(FORMAT_VERSION)) {
                        " (an older index: rebuild it with `splade index build`)"
                    } else {
                        ""
                    }
                ),
            });
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| IndexError::corrupt(&path, format!("invalid manifest: {e}")))?;
        for id in FileId::ALL {
            if !manifest.files.contains_key(id.name()) {
                return Err(IndexError::corrupt(
                    &path,
                    format!("no entry for file '{}'", id.name()),
                ));
            }
        }
        Ok(manifest)
    }

    /// The recorded size and checksum of `file`.
    pub fn entry(&self, file: FileId) -> Option<FileEntry> {
        self.files.get(file.name()).copied()
    }
}

/// CRC32 of a byte slice.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in the same directory, synced,
/// then renamed over the target.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
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
fn sync_dir(dir: &Path) -> Result<()> {
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

/// Writes a complete index directory. An existing manifest is removed first, so a crash part
/// way through leaves a directory that `open` rejects rather than a mix of old and new files
/// that looks valid; the new manifest is renamed into place last.
pub(crate) fn write_index_dir(
    dir: &Path,
    mut manifest: Manifest,
    files: &[(FileId, &[u8])],
) -> Result<PathBuf> {
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
    Ok(manifest_path)
}
