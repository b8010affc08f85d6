//! The arrays and manifest of one segment, from the documents a builder collected (a
//! [`Catalog`] plus a [`DocSource`] of the postings): the block layout, the block arrays,
//! and, when a directory is given, the files written there (large arrays streamed to
//! their files as they are made, the others written atomically, the manifest last).

use std::collections::BTreeMap;
use std::path::Path;

use crate::builder::assemble::{assemble_blocks, AssembleOptions};
use crate::builder::catalog::Catalog;
use crate::builder::cluster::{document_order, Reorder};
use crate::builder::sink::Output;
use crate::builder::source::DocSource;
use crate::error::{IndexError, Result};
use crate::format::{self, FileEntry, FileId, Manifest, FORMAT_NAME, FORMAT_VERSION};
use crate::format::{DEFAULT_BLOCK_SIZE, MANIFEST_FILE, MAX_BLOCK_SIZE};
use crate::storage::OwnedArray;

/// The number of documents per block for short documents (fewer than
/// [`SHORT_DOCUMENT_TERMS`] terms on average): on the WordNet glosses (117k documents of 35
/// terms) exact search was 1.36x faster at 16 than at 32.
pub const SHORT_DOCUMENTS_BLOCK_SIZE: usize = 16;
/// Below this mean number of terms per document, [`auto_block_size`] picks
/// [`SHORT_DOCUMENTS_BLOCK_SIZE`] (for at most [`SHORT_DOCUMENTS_MAX_DOCS`] documents).
pub const SHORT_DOCUMENT_TERMS: usize = 64;
/// Above this many documents, [`auto_block_size`] picks [`DEFAULT_BLOCK_SIZE`] for short
/// documents too: the bound pass of every query grows with the number of blocks, and on
/// the Quora questions of BENCHMARKS.md (25 terms a document) block 32 searched faster than
/// 16 at 250k and 537k documents (exact 1.02-1.08x and 1.07-1.15x; at α 0.95, 1.08-1.21x and
/// 1.16-1.21x, with recall 0.995 instead of 0.987), while 16 stayed faster at 120k (exact
/// 1.03-1.13x) and about as fast on the 117k WordNet glosses.
pub const SHORT_DOCUMENTS_MAX_DOCS: usize = 131_072;

/// The block size an [`crate::IndexBuilder`] (and an [`crate::IndexWriter`] for a new
/// index) uses when none is set, from the documents' mean length and number:
/// [`SHORT_DOCUMENTS_BLOCK_SIZE`] below [`SHORT_DOCUMENT_TERMS`] terms per document for at
/// most [`SHORT_DOCUMENTS_MAX_DOCS`] documents, [`DEFAULT_BLOCK_SIZE`] otherwise.
///
/// Smaller blocks give tighter bounds (fewer documents scored) for more (term, block) pairs
/// in the per-query bound pass; short documents have few terms per block, so halving the
/// block costs the bound pass little and pays in the documents skipped, as long as the
/// collection is small enough for the bound pass to stay short.
pub fn auto_block_size(num_docs: usize, nnz: usize) -> usize {
    if num_docs <= SHORT_DOCUMENTS_MAX_DOCS && nnz < SHORT_DOCUMENT_TERMS.saturating_mul(num_docs) {
        SHORT_DOCUMENTS_BLOCK_SIZE
    } else {
        DEFAULT_BLOCK_SIZE
    }
}

/// How a segment is laid out and where it goes.
pub(crate) struct SegmentOptions<'a> {
    /// `None`: [`auto_block_size`].
    pub block_size: Option<usize>,
    pub reorder: Reorder,
    /// `Some(dir)`: the large arrays are written into `dir` as they are made.
    pub dir: Option<&'a Path>,
    /// See [`AssembleOptions::range_slots`].
    pub range_slots: usize,
}

/// The block size the options and the catalog give.
pub(crate) fn effective_block_size(catalog: &Catalog, block_size: Option<usize>) -> usize {
    block_size.unwrap_or_else(|| auto_block_size(catalog.len(), catalog.nnz()))
}

/// Checks the block size and the dimension.
pub(crate) fn check_layout(catalog: &Catalog, block_size: Option<usize>) -> Result<()> {
    let block_size = effective_block_size(catalog, block_size);
    if !(1..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(IndexError::InvalidArgument(format!(
            "block size must be in 1..={MAX_BLOCK_SIZE}, got {block_size}"
        )));
    }
    if catalog.dim > format::MAX_DIM {
        return Err(IndexError::InvalidArgument(format!(
            "dimension {} is above the largest supported dimension {} (2^24)",
            catalog.dim,
            format::MAX_DIM
        )));
    }
    Ok(())
}

/// The arrays of a segment after the forward vectors and ids (which the builder holds),
/// and its manifest (without file entries).
pub(crate) struct SegmentArrays {
    manifest: Manifest,
    /// [`FileId::ALL`] order from [`FileId::BlockOffsets`] on.
    rest: Vec<Output>,
}

impl SegmentArrays {
    /// The manifest and every array in [`FileId::ALL`] order: the catalog's forward
    /// offsets and ids, the forward `terms` and `values`, then the rest.
    pub(crate) fn with_forward(
        self,
        catalog: Catalog,
        terms: Output,
        values: Output,
    ) -> (Manifest, Vec<Output>) {
        let mut outputs = vec![
            Output::Array(OwnedArray::U64(catalog.indptr)),
            terms,
            values,
            Output::Array(OwnedArray::U64(catalog.id_offsets)),
            Output::Array(OwnedArray::U8(catalog.id_data)),
        ];
        outputs.extend(self.rest);
        debug_assert_eq!(outputs.len(), FileId::ALL.len());
        (self.manifest, outputs)
    }
}

/// Lays out and assembles the segment of `catalog`'s documents, whose postings `src`
/// reads.
pub(crate) fn segment_arrays(
    catalog: &Catalog,
    src: &dyn DocSource,
    options: &SegmentOptions<'_>,
) -> Result<SegmentArrays> {
    check_layout(catalog, options.block_size)?;
    let n = catalog.len();
    let bs = effective_block_size(catalog, options.block_size);
    if let Some(dir) = options.dir {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        // A crash part way through must leave a directory that `open` rejects.
        let manifest_path = dir.join(MANIFEST_FILE);
        match std::fs::remove_file(&manifest_path) {
            Ok(()) => format::sync_dir(dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IndexError::io(&manifest_path, e)),
        }
    }
    let order = document_order(src, options.reorder, bs, &catalog.df)?;
    let blocks = assemble_blocks(
        src,
        &order,
        &catalog.term_max,
        &catalog.df,
        &AssembleOptions {
            block_size: bs,
            dir: options.dir,
            range_slots: options.range_slots,
        },
    )?;
    let manifest = Manifest {
        format: FORMAT_NAME.to_string(),
        version: FORMAT_VERSION,
        dim: catalog.dim as u64,
        num_docs: n as u64,
        nnz: catalog.nnz() as u64,
        block_size: bs as u32,
        files: BTreeMap::new(),
    };
    let rest = vec![
        Output::Array(OwnedArray::U64(blocks.block_offsets)),
        blocks.entry_docs,
        blocks.entry_values,
        Output::Array(OwnedArray::U64(blocks.bound_offsets)),
        blocks.bound_blocks,
        blocks.bound_codes,
        blocks.bound_starts,
        blocks.bound_lengths,
        Output::Array(OwnedArray::F32(blocks.bound_scales)),
        Output::Array(OwnedArray::U32(order)),
    ];
    Ok(SegmentArrays { manifest, rest })
}

/// Writes the arrays still in memory into `dir` (each atomically), records every file's
/// size and checksum in the manifest, and writes the manifest last.
pub(crate) fn write_outputs(
    dir: &Path,
    mut manifest: Manifest,
    outputs: Vec<Output>,
) -> Result<Manifest> {
    manifest.files.clear();
    for (id, output) in FileId::ALL.iter().zip(outputs) {
        let entry = match output {
            Output::File(synced) => synced.wait()?,
            Output::Array(array) => {
                let bytes = crate::storage::Bytes::Owned(array);
                format::write_atomic(dir, id.name(), bytes.bytes())?;
                FileEntry::of(bytes.bytes())
            }
        };
        manifest.files.insert(id.name().to_string(), entry);
    }
    format::sync_dir(dir)?;
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| IndexError::InvalidArgument(format!("cannot serialise manifest: {e}")))?;
    format::write_atomic(dir, MANIFEST_FILE, &json)?;
    format::sync_dir(dir)?;
    Ok(manifest)
}
