//! Building an index: [`IndexBuilder`] from vectors held in memory, [`DiskIndexBuilder`]
//! streaming them to disk (memory bounded by the ids and the layout, not the postings).
//!
//! Both keep the same per-document bookkeeping ([`catalog`]), lay documents out in blocks
//! ([`cluster`]: [`Reorder`]) and assemble the same arrays ([`assemble`], [`arrays`]) from
//! a [`source`] of postings (slices in memory, or the forward files on disk), into vectors
//! or straight into the index files ([`sink`]). An index built either way is byte for byte
//! the same.

mod arrays;
mod assemble;
mod catalog;
mod cluster;
mod disk;
mod scatter;
mod sink;
mod source;

use std::path::Path;

use splade_sparse::SparseView;

use crate::error::{IndexError, Result};
use crate::format::{self, DirState, FileEntry, FileId, Manifest};
use crate::index::Index;
use crate::segment::Segment;
use crate::storage::{Bytes, OwnedArray};
use arrays::{effective_block_size, segment_arrays, write_outputs, SegmentOptions};
use assemble::RANGE_SLOTS;
use catalog::Catalog;
use sink::Output;
use source::InMemory;

pub use arrays::{
    auto_block_size, SHORT_DOCUMENTS_BLOCK_SIZE, SHORT_DOCUMENTS_MAX_DOCS, SHORT_DOCUMENT_TERMS,
};
pub use catalog::check_document;
pub(crate) use catalog::refusal;
pub use cluster::{Reorder, AUTO_MIN_SLOT_CUT, AUTO_SAMPLED_ABOVE, AUTO_SAMPLE_DOCS};
pub use disk::DiskIndexBuilder;

/// Collects documents (external id + sparse vector) and turns them into an [`Index`], in
/// memory ([`Self::build`]) or on disk ([`Self::write`]). For collections larger than
/// memory comfortably holds twice, [`DiskIndexBuilder`] writes the same index while holding
/// only the ids and the layout.
///
/// Documents are numbered from 0 in the order they are added; that number breaks score ties.
///
/// ```
/// use splade_index::IndexBuilder;
/// use splade_sparse::SparseVector;
/// let mut b = IndexBuilder::new(10);
/// b.add("a", SparseVector::new(vec![1, 4], vec![0.5, 2.0])?.view())?;
/// b.add("b", SparseVector::new(vec![4], vec![1.0])?.view())?;
/// let index = b.build()?;
/// let q = SparseVector::new(vec![4], vec![1.0])?;
/// let hits = index.top_k(q.view(), 10);
/// assert_eq!(index.id(hits[0].doc), Some("a"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct IndexBuilder {
    catalog: Catalog,
    /// `None`: [`auto_block_size`] at build time.
    block_size: Option<usize>,
    reorder: Reorder,
    terms: Vec<u32>,
    values: Vec<f32>,
}

impl IndexBuilder {
    /// An empty builder for vectors of dimension `dim` (every index must be `< dim`); the
    /// block size is chosen from the documents at build time ([`auto_block_size`]) unless
    /// [`Self::block_size`] sets one.
    pub fn new(dim: usize) -> Self {
        Self {
            catalog: Catalog::new(dim),
            block_size: None,
            reorder: Reorder::default(),
            terms: Vec::new(),
            values: Vec::new(),
        }
    }

    /// A builder holding the documents of a CSR matrix (compressed sparse rows, as scipy
    /// keeps them): document `d`, numbered in `ids` order, has the terms
    /// `indices[indptr[d]..indptr[d + 1]]` with the weights `values` at the same places.
    /// The arrays are taken as they are and become the index's forward arrays: nothing is
    /// copied. Every document is checked as [`Self::add`] checks it (in parallel; the
    /// indices of a document must strictly ascend), and the first bad one, in document
    /// order, is reported by its id; an `indptr` that does not fit the arrays is an
    /// [`IndexError::InvalidArgument`]. More documents may be added afterwards.
    ///
    /// ```
    /// use splade_index::IndexBuilder;
    /// use splade_sparse::SparseVector;
    /// // Two documents: "a" = {1: 0.5, 4: 2.0}, "b" = {4: 1.0}.
    /// let b = IndexBuilder::from_csr(10, &["a", "b"], vec![0, 2, 3], vec![1, 4, 4], vec![0.5, 2.0, 1.0])?;
    /// let index = b.build()?;
    /// let q = SparseVector::new(vec![4], vec![1.0])?;
    /// assert_eq!(index.id(index.top_k(q.view(), 1)[0].doc), Some("a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_csr<S: AsRef<str> + Sync>(
        dim: usize,
        ids: &[S],
        indptr: Vec<u64>,
        indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self> {
        let catalog = Catalog::from_csr(dim, ids, indptr, &indices, &values)?;
        Ok(Self {
            catalog,
            block_size: None,
            reorder: Reorder::default(),
            terms: indices,
            values,
        })
    }

    /// Sets the number of consecutive documents per block (1..=256; checked on build)
    /// instead of choosing it from the documents ([`auto_block_size`]).
    pub fn block_size(mut self, block_size: usize) -> Self {
        self.block_size = Some(block_size);
        self
    }

    /// The block size the build will use: the one set, or [`auto_block_size`] of the
    /// documents added so far.
    pub fn effective_block_size(&self) -> usize {
        effective_block_size(&self.catalog, self.block_size)
    }

    /// Sets how documents are laid out in blocks (default [`Reorder::Auto`]).
    /// Search results do not depend on it (document numbers stay insertion order); only
    /// speed does.
    pub fn reorder(mut self, reorder: Reorder) -> Self {
        self.reorder = reorder;
        self
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.catalog.dim
    }

    /// Documents added so far.
    pub fn len(&self) -> usize {
        self.catalog.len()
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a document and returns its number. Errors (naming the id): an empty or
    /// duplicate id, an index `>= dim`, a negative weight (SPLADE weights are
    /// non-negative; block-max bounds rely on it), or more than `u32::MAX` documents.
    pub fn add(&mut self, id: &str, vector: SparseView<'_>) -> Result<u32> {
        let doc = self.catalog.add(id, vector)?;
        self.terms.extend_from_slice(vector.indices());
        self.values.extend_from_slice(vector.values());
        Ok(doc)
    }

    /// The manifest (without file entries) and every array in [`FileId::ALL`] order; the
    /// large block arrays go straight into their files in `dir` when it is given.
    fn assemble(self, dir: Option<&Path>) -> Result<(Manifest, Vec<Output>)> {
        let IndexBuilder {
            catalog,
            block_size,
            reorder,
            terms,
            values,
        } = self;
        let arrays = {
            let src = InMemory {
                indptr: &catalog.indptr,
                terms: &terms,
                values: &values,
            };
            let options = SegmentOptions {
                block_size,
                reorder,
                dir,
                range_slots: RANGE_SLOTS,
            };
            segment_arrays(&catalog, &src, &options)?
        };
        Ok(arrays.with_forward(
            catalog,
            Output::Array(OwnedArray::U32(terms)),
            Output::Array(OwnedArray::F32(values)),
        ))
    }

    /// Builds the index in memory (nothing is written).
    pub fn build(self) -> Result<Index> {
        let (mut manifest, outputs) = self.assemble(None)?;
        let mut files = Vec::with_capacity(outputs.len());
        for (id, output) in FileId::ALL.iter().zip(outputs) {
            let Output::Array(array) = output else {
                unreachable!("an in-memory build writes no file")
            };
            let bytes = Bytes::Owned(array);
            // Sizes only: the segment computes the checksums if they are ever asked for.
            manifest
                .files
                .insert(id.name().to_string(), FileEntry::sized(bytes.bytes()));
            files.push(bytes);
        }
        Index::from_segment(Segment::from_built_parts(manifest, files)?)
    }

    /// Writes the index to the directory `dir`, which must not exist yet or be empty, and
    /// opens it. The index is written into a temporary directory beside `dir` (every file
    /// synced, the manifest last) and renamed to `dir` in one step, so a crash leaves
    /// either no index or the complete one. Errors without touching anything: `dir` holds
    /// an index ([`IndexError::IndexExists`]: use [`Self::write_over`]), holds anything
    /// else ([`IndexError::NotAnIndex`]) or is a file ([`IndexError::NotADirectory`]).
    pub fn write(self, dir: &Path) -> Result<Index> {
        match format::dir_state(dir)? {
            DirState::Missing | DirState::Empty => self.write_new(dir),
            DirState::Index => Err(IndexError::IndexExists {
                path: dir.to_path_buf(),
            }),
            state => Err(refusal(dir, state)),
        }
    }

    /// Checks, without writing anything, that [`Self::write`] (or, with `overwrite`,
    /// [`Self::write_over`]) could write into `dir`: the same errors, before the documents
    /// are gathered (a long encoding should not end in a refusal).
    pub fn check_target(dir: &Path, overwrite: bool) -> Result<()> {
        catalog::check_target(dir, overwrite)
    }

    /// Writes a new single-segment index directory at `dir` (missing or empty) through a
    /// temporary sibling directory and one rename.
    pub(crate) fn write_new(self, dir: &Path) -> Result<Index> {
        disk::publish_new(dir, |tmp| self.write_arrays(tmp).map(|_| ()))
    }

    /// Writes the single-segment directory `dir` and returns its manifest (nothing else in
    /// `dir` is touched; the caller opens it).
    pub(crate) fn write_arrays(self, dir: &Path) -> Result<Manifest> {
        let (manifest, outputs) = self.assemble(Some(dir))?;
        write_outputs(dir, manifest, outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::{encode_up, scale_for};
    use crate::xorshift;
    use splade_sparse::SparseVector;

    /// `n` seeded random documents with `lengths` draws of terms below `terms` (duplicates
    /// merged) and weights in multiples of 1/64.
    fn random_docs(
        seed: u64,
        n: usize,
        lengths: std::ops::Range<u64>,
        terms: u64,
    ) -> Vec<SparseVector> {
        let mut next = xorshift(seed);
        (0..n)
            .map(|_| {
                let len = lengths.start + next() % (lengths.end - lengths.start);
                let mut pairs: Vec<(u32, f32)> = (0..len)
                    .map(|_| ((next() % terms) as u32, (next() % 1000) as f32 / 64.0))
                    .collect();
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                SparseVector::from_pairs(pairs).unwrap()
            })
            .collect()
    }

    /// The term-major block lists (made by a counting sort of the slots) cover every entry
    /// exactly once, blocks ascending per term, each (term, block) pair with the code of
    /// its block maximum under the term's scale, and the pair's entries (`bounds.starts`,
    /// `bounds.lengths`) are the term's weights in the documents of that block.
    #[test]
    fn block_lists_index_every_entry_once_with_its_maximum() {
        let dim = 120;
        let mut b = IndexBuilder::new(dim).block_size(8);
        let docs = random_docs(0x0dd_b1a5_e5ca_1ab1, 700, 1..21, 100);
        for (d, v) in docs.iter().enumerate() {
            b.add(&format!("d{d}"), v.view()).unwrap();
        }
        let index = b.build().unwrap();
        let [only] = index.slots() else { panic!() };
        let a = only.segment.blocks();
        let mut seen = vec![false; a.entry_docs.len()];
        let terms = a.bound_offsets.len() - 1;
        assert_eq!(terms, 100, "lists end at the last term used");
        for t in 0..terms {
            let (s, e) = (a.bound_offsets[t] as usize, a.bound_offsets[t + 1] as usize);
            let blocks = &a.bound_blocks[s..e];
            assert!(
                blocks.windows(2).all(|w| w[0] < w[1]),
                "term {t}: ascending"
            );
            let mut maxima = Vec::new();
            for i in s..e {
                let (es, ee) = a.entries(i);
                for (e, seen) in (es..).zip(&mut seen[es..ee]) {
                    assert!(!std::mem::replace(seen, true), "entry {e} twice");
                }
                let base = a.bound_blocks[i] as usize * a.block_size;
                for (&d, &w) in a.entry_docs[es..ee].iter().zip(&a.entry_values[es..ee]) {
                    let doc = &docs[a.doc_order[base + d as usize] as usize];
                    let j = doc.indices().binary_search(&(t as u32)).unwrap();
                    assert_eq!(doc.values()[j].to_bits(), w.to_bits());
                }
                maxima.push(a.entry_values[es..ee].iter().fold(0.0f32, |m, &w| m.max(w)));
            }
            let scale = scale_for(maxima.iter().fold(0.0f32, |m, &w| m.max(w)));
            assert_eq!(a.bound_scales[t].to_bits(), scale.to_bits());
            for (i, &m) in (s..e).zip(&maxima) {
                assert_eq!(a.bound_codes[i], encode_up(m, scale));
            }
        }
        assert!(seen.iter().all(|&s| s), "every entry listed");
    }

    /// The bytes of every array of the segment of `docs` (ids `d0`, `d1`, ...), assembled
    /// in memory (`dir` `None`) or streamed to files in `dir`, in ranges of at most
    /// `range_slots` slots. Checks that a streamed build leaves no spill file and that
    /// every file's size and checksum are those its entry records.
    fn assembled(
        docs: &[SparseVector],
        dim: usize,
        block_size: usize,
        dir: Option<&Path>,
        range_slots: usize,
    ) -> Vec<Vec<u8>> {
        let mut catalog = Catalog::new(dim);
        let (mut terms, mut values) = (Vec::new(), Vec::new());
        for (d, v) in docs.iter().enumerate() {
            catalog.add(&format!("d{d}"), v.view()).unwrap();
            terms.extend_from_slice(v.indices());
            values.extend_from_slice(v.values());
        }
        let src = InMemory {
            indptr: &catalog.indptr,
            terms: &terms,
            values: &values,
        };
        let options = SegmentOptions {
            block_size: Some(block_size),
            reorder: Reorder::Clustered,
            dir,
            range_slots,
        };
        let arrays = segment_arrays(&catalog, &src, &options).unwrap();
        let (_, outputs) = arrays.with_forward(
            catalog.clone(),
            Output::Array(OwnedArray::U32(terms.clone())),
            Output::Array(OwnedArray::F32(values.clone())),
        );
        if let Some(dir) = dir {
            let left: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with("build."))
                .collect();
            assert!(left.is_empty(), "spill files left: {left:?}");
        }
        FileId::ALL
            .iter()
            .zip(outputs)
            .map(|(id, o)| match o {
                Output::Array(a) => Bytes::Owned(a).bytes().to_vec(),
                Output::File(synced) => {
                    let entry = synced.wait().unwrap();
                    let bytes = std::fs::read(dir.unwrap().join(id.name())).unwrap();
                    assert_eq!(entry.size, bytes.len() as u64);
                    assert_eq!(entry.crc32, format::crc32(&bytes));
                    bytes
                }
            })
            .collect()
    }

    /// Every way of assembling gives the same arrays: in memory (made in place) in one
    /// range of terms, in many small ranges and in ranges of one term, and streamed to
    /// files with spilled slot lists in many ranges or a few (each spill file removed once
    /// read). 1,050 blocks: more than one batch of blocks.
    #[test]
    fn every_assembly_path_gives_the_same_bytes() {
        let docs = random_docs(0xa55e_b1e5, 2100, 1..30, 90);
        let tmp = tempfile::tempdir().unwrap();
        let one_range = assembled(&docs, 90, 2, None, usize::MAX);
        assert_eq!(assembled(&docs, 90, 2, None, 7), one_range);
        assert_eq!(assembled(&docs, 90, 2, None, 1), one_range);
        assert_eq!(assembled(&docs, 90, 2, Some(tmp.path()), 7), one_range);
        assert_eq!(
            assembled(&docs, 90, 2, Some(tmp.path()), RANGE_SLOTS),
            one_range
        );
        // Terms at the edges of ranges of 2^16 terms (a term less its range's first is
        // kept in a u16 in memory, whole in the streamed build): the first and last term
        // of a range, in blocks that hold either, both or neither.
        let edges = [
            0u32, 1, 65_535, 65_536, 65_537, 131_071, 131_072, 196_607, 196_608,
        ];
        let mut next = crate::xorshift(0xed9e_5000);
        let at_edges: Vec<SparseVector> = (0..300)
            .map(|_| {
                let mut pairs = Vec::new();
                for &t in &edges {
                    if next().is_multiple_of(3) {
                        pairs.push((t, (1 + next() % 500) as f32 / 64.0));
                    }
                }
                pairs.push((200_000 + (next() % 50) as u32, 1.0));
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                SparseVector::from_pairs(pairs).unwrap()
            })
            .collect();
        let streamed = assembled(&at_edges, 200_050, 4, Some(tmp.path()), usize::MAX);
        assert_eq!(assembled(&at_edges, 200_050, 4, None, usize::MAX), streamed);
        assert_eq!(assembled(&at_edges, 200_050, 4, None, 10), streamed);
        // Terms spread over more than 2^16 ids: even one range of slots is cut into
        // ranges of at most 2^16 terms in memory.
        let wide = random_docs(0x5eed_0fa1, 400, 1..40, 300_000);
        let one_range = assembled(&wide, 300_000, 8, None, usize::MAX);
        assert_eq!(assembled(&wide, 300_000, 8, None, 50), one_range);
        assert_eq!(
            assembled(&wide, 300_000, 8, Some(tmp.path()), usize::MAX),
            one_range
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Any collection: the arrays made in place in memory are those streamed to files.
        #[test]
        fn any_collection_assembles_the_same_in_memory_and_streamed(
            seed in proptest::prelude::any::<u64>(),
            n in 0usize..600,
            terms in 1u64..300,
            block in 1usize..40,
            range_slots in 1usize..200,
        ) {
            let docs = random_docs(seed | 1, n, 0..25, terms);
            let tmp = tempfile::tempdir().unwrap();
            let dim = terms as usize;
            let memory = assembled(&docs, dim, block, None, range_slots);
            let streamed = assembled(&docs, dim, block, Some(tmp.path()), range_slots);
            proptest::prop_assert!(memory == streamed);
        }
    }
}
