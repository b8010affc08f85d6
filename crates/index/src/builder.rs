//! Building an index from sparse vectors held in memory.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use splade_sparse::SparseView;

use crate::error::{IndexError, Result};
use crate::format::{self, DirState, FileId, Manifest, FORMAT_NAME, FORMAT_VERSION};
use crate::format::{DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE};
use crate::index::Index;
use crate::quantize::{encode_up, scale_for};
use crate::segment::Segment;
use crate::storage::{Bytes, OwnedArray};

/// The number of documents per block for short documents (fewer than
/// [`SHORT_DOCUMENT_TERMS`] terms on average): on the WordNet glosses (117k documents of 35
/// terms) exact search was 1.36x faster at 16 than at 32.
pub const SHORT_DOCUMENTS_BLOCK_SIZE: usize = 16;
/// Below this mean number of terms per document, [`auto_block_size`] picks
/// [`SHORT_DOCUMENTS_BLOCK_SIZE`].
pub const SHORT_DOCUMENT_TERMS: usize = 64;

/// The block size an [`IndexBuilder`] (and an [`crate::IndexWriter`] for a new index) uses
/// when none is set, from the documents' mean length: [`SHORT_DOCUMENTS_BLOCK_SIZE`] below
/// [`SHORT_DOCUMENT_TERMS`] terms per document, [`DEFAULT_BLOCK_SIZE`] otherwise.
///
/// Smaller blocks give tighter bounds (fewer documents scored) for more (term, block) pairs
/// in the per-query bound pass; short documents have few terms per block, so halving the
/// block costs the bound pass little and pays in the documents skipped.
pub fn auto_block_size(num_docs: usize, nnz: usize) -> usize {
    if nnz < SHORT_DOCUMENT_TERMS.saturating_mul(num_docs) {
        SHORT_DOCUMENTS_BLOCK_SIZE
    } else {
        DEFAULT_BLOCK_SIZE
    }
}

/// How the builder lays documents out in blocks. Block-max pruning skips a block when the
/// sum of the query's weights times the block's per-term maxima cannot reach the current
/// k-th score; with documents in arbitrary order every block holds some heavy document for
/// most terms and nothing is skipped. Grouping similar documents makes the maxima tight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reorder {
    /// Insertion order.
    None,
    /// Sort documents by their heaviest term, then second heaviest, then third (weight
    /// descending, ties to the smaller term id; a missing term sorts last), then by
    /// insertion number. One sort: O(nnz + n log n).
    HeaviestTerms,
    /// Cluster documents (a few rounds of spherical k-means with sparse centroids, about
    /// `4 * block size` documents per cluster, seeds evenly spaced in insertion order, so
    /// deterministic), then order clusters by number and documents inside a cluster as
    /// [`Reorder::HeaviestTerms`] does. Each round costs about one pass over the entries
    /// (documents are scored against the centroids through an inverted list of centroid
    /// terms); rounds run in parallel.
    #[default]
    Clustered,
}

/// Terms kept per centroid.
const CENTROID_TERMS: usize = 48;
/// k-means rounds.
const CLUSTER_ROUNDS: usize = 4;
/// Terms in more than `1 / COMMON_TERM_DIVISOR` of the documents take no part in the
/// clustering (see [`cluster_documents`]).
const COMMON_TERM_DIVISOR: usize = 4;
/// Per k-means round, terms in more than `max(clusters / LONG_LIST_DIVISOR,
/// LONG_LIST_MIN)` centroids are not used to assign documents.
const LONG_LIST_DIVISOR: usize = 32;
const LONG_LIST_MIN: usize = 64;

/// Spherical k-means over sparse documents with sparse (top-`CENTROID_TERMS`) centroids:
/// the cluster of every document (`clusters` = no shared term with any centroid).
fn cluster_documents(
    dim: usize,
    indptr: &[u64],
    terms: &[u32],
    values: &[f32],
    clusters: usize,
) -> Vec<u32> {
    use rayon::prelude::*;
    let n = indptr.len() - 1;
    let doc = |d: usize| {
        let (s, e) = (indptr[d] as usize, indptr[d + 1] as usize);
        (&terms[s..e], &values[s..e])
    };
    // Top-`CENTROID_TERMS` of a dense accumulator, L2-normalised.
    let truncate = |pairs: &mut Vec<(u32, f32)>| {
        if pairs.len() > CENTROID_TERMS {
            pairs.select_nth_unstable_by(CENTROID_TERMS - 1, |a, b| {
                b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
            });
            pairs.truncate(CENTROID_TERMS);
        }
        let norm = pairs.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt();
        if norm > 0.0 {
            pairs.iter_mut().for_each(|p| p.1 /= norm);
        }
    };
    // Stopword-like terms (in more than `1 / COMMON_TERM_DIVISOR` of the documents) say
    // little about a document's cluster, but sit in nearly every centroid: scoring a
    // document through their inverted lists would cost `clusters` operations per such
    // term (on a collection with a few dozen of them in every document, most of the build
    // time). They are left out of centroids and assignments.
    let mut df = vec![0u32; dim];
    for &t in terms {
        df[t as usize] += 1;
    }
    let common: Vec<bool> = df
        .iter()
        .map(|&f| f as usize > n / COMMON_TERM_DIVISOR)
        .collect();
    let truncate = |pairs: &mut Vec<(u32, f32)>| {
        pairs.retain(|p| !common[p.0 as usize]);
        truncate(pairs)
    };
    let mut centroids: Vec<Vec<(u32, f32)>> = (0..clusters)
        .map(|c| {
            let (t, v) = doc(c * n / clusters);
            let mut pairs: Vec<(u32, f32)> = t.iter().copied().zip(v.iter().copied()).collect();
            truncate(&mut pairs);
            pairs
        })
        .collect();
    let mut assign = vec![clusters as u32; n];
    for _ in 0..CLUSTER_ROUNDS {
        // Inverted lists of the centroids: term -> (centroid, weight).
        let mut offsets = vec![0u32; dim + 1];
        for c in &centroids {
            for &(t, _) in c {
                offsets[t as usize + 1] += 1;
            }
        }
        // A term in more than `long` centroids is left out of this round's assignment: it
        // tells few clusters apart, and its list would cost that many operations per
        // document holding it.
        let long = (clusters / LONG_LIST_DIVISOR).max(LONG_LIST_MIN) as u32;
        let skip: Vec<bool> = offsets[1..].iter().map(|&c| c > long).collect();
        for t in 0..dim {
            offsets[t + 1] += offsets[t];
        }
        let mut fill = offsets.clone();
        let mut post = vec![(0u32, 0f32); offsets[dim] as usize];
        for (ci, c) in centroids.iter().enumerate() {
            for &(t, w) in c {
                post[fill[t as usize] as usize] = (ci as u32, w);
                fill[t as usize] += 1;
            }
        }
        assign = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0f32; clusters], Vec::<u32>::new()),
                |(acc, touched), d| {
                    let (t, v) = doc(d);
                    for (&t, &w) in t.iter().zip(v) {
                        if skip[t as usize] {
                            continue;
                        }
                        let (s, e) = (
                            offsets[t as usize] as usize,
                            offsets[t as usize + 1] as usize,
                        );
                        for &(c, cw) in &post[s..e] {
                            if acc[c as usize] == 0.0 {
                                touched.push(c);
                            }
                            acc[c as usize] += w * cw;
                        }
                    }
                    let mut best = (0.0f32, clusters as u32);
                    for &c in touched.iter() {
                        let s = acc[c as usize];
                        if s > best.0 || (s == best.0 && c < best.1) {
                            best = (s, c);
                        }
                        acc[c as usize] = 0.0;
                    }
                    touched.clear();
                    best.1
                },
            )
            .collect();
        // New centroids: the normalised sum of each cluster's documents, truncated.
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); clusters];
        for (d, &c) in assign.iter().enumerate() {
            if (c as usize) < clusters {
                members[c as usize].push(d as u32);
            }
        }
        let fresh: Vec<Option<Vec<(u32, f32)>>> = members
            .par_iter()
            .map_init(
                || (vec![0f32; dim], Vec::<u32>::new()),
                |(acc, touched), docs| {
                    if docs.is_empty() {
                        return None;
                    }
                    for &d in docs {
                        let (t, v) = doc(d as usize);
                        for (&t, &w) in t.iter().zip(v) {
                            if acc[t as usize] == 0.0 {
                                touched.push(t);
                            }
                            acc[t as usize] += w;
                        }
                    }
                    let mut pairs: Vec<(u32, f32)> =
                        touched.iter().map(|&t| (t, acc[t as usize])).collect();
                    touched.iter().for_each(|&t| acc[t as usize] = 0.0);
                    touched.clear();
                    truncate(&mut pairs);
                    Some(pairs)
                },
            )
            .collect();
        for (c, f) in fresh.into_iter().enumerate() {
            if let Some(f) = f {
                centroids[c] = f;
            }
        }
    }
    assign
}

/// Whether a segment holding `held` postings can take `more`: its entry offsets and slots
/// are u32 (at most [`format::MAX_SEGMENT_POSTINGS`] postings).
fn postings_fit(held: usize, more: usize) -> bool {
    held.checked_add(more)
        .is_some_and(|total| total <= format::MAX_SEGMENT_POSTINGS)
}

/// Checks a document before it is added: a non-empty id without control characters
/// (newlines, tabs: every line format of ids breaks on them), indices `< dim`, weights in
/// `0..=MAX_WEIGHT`. Errors name the id.
pub fn check_document(id: &str, vector: SparseView<'_>, dim: usize) -> Result<()> {
    let invalid = |message: String| IndexError::InvalidDocument {
        id: id.to_string(),
        message,
    };
    crate::readers::check_id(id).map_err(invalid)?;
    if let Some(&last) = vector.indices().last() {
        if last as usize >= dim {
            return Err(invalid(format!(
                "index {last} is out of range for dimension {dim}"
            )));
        }
    }
    if let Some((i, v)) = vector.iter().find(|&(_, v)| v < 0.0) {
        return Err(invalid(format!(
            "negative weight {v} at index {i} (weights must be >= 0)"
        )));
    }
    if let Some((i, v)) = vector.iter().find(|&(_, v)| v > format::MAX_WEIGHT) {
        return Err(invalid(format!(
            "weight {v:e} at index {i} is above the largest weight {:e} (scores could overflow)",
            format::MAX_WEIGHT
        )));
    }
    Ok(())
}

const HEAVY_KEY: usize = 3;

/// The `HEAVY_KEY` heaviest term ids of a document, heaviest first (`u32::MAX` pads).
fn heavy_key(terms: &[u32], values: &[f32]) -> [u32; HEAVY_KEY] {
    let mut best: [(f32, u32); HEAVY_KEY] = [(f32::NEG_INFINITY, u32::MAX); HEAVY_KEY];
    for (&t, &v) in terms.iter().zip(values) {
        // Heavier first; among equal weights the smaller term (terms ascend, so keep the first).
        if v > best[HEAVY_KEY - 1].0 {
            let mut i = HEAVY_KEY - 1;
            while i > 0 && v > best[i - 1].0 {
                best[i] = best[i - 1];
                i -= 1;
            }
            best[i] = (v, t);
        }
    }
    best.map(|(_, t)| t)
}

/// Collects documents (external id + sparse vector) and turns them into an [`Index`], in
/// memory ([`Self::build`]) or on disk ([`Self::write`]).
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
    dim: usize,
    /// `None`: [`auto_block_size`] at build time.
    block_size: Option<usize>,
    reorder: Reorder,
    indptr: Vec<u64>,
    terms: Vec<u32>,
    values: Vec<f32>,
    id_offsets: Vec<u64>,
    id_data: Vec<u8>,
    seen: HashSet<String>,
}

impl IndexBuilder {
    /// An empty builder for vectors of dimension `dim` (every index must be `< dim`); the
    /// block size is chosen from the documents at build time ([`auto_block_size`]) unless
    /// [`Self::block_size`] sets one.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            block_size: None,
            reorder: Reorder::default(),
            indptr: vec![0],
            terms: Vec::new(),
            values: Vec::new(),
            id_offsets: vec![0],
            id_data: Vec::new(),
            seen: HashSet::new(),
        }
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
        self.block_size
            .unwrap_or_else(|| auto_block_size(self.len(), self.terms.len()))
    }

    /// Sets how documents are laid out in blocks (default [`Reorder::Clustered`]).
    /// Search results do not depend on it (document numbers stay insertion order); only
    /// speed does.
    pub fn reorder(mut self, reorder: Reorder) -> Self {
        self.reorder = reorder;
        self
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Documents added so far.
    pub fn len(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a document and returns its number. Errors (naming the id): an empty or
    /// duplicate id, an index `>= dim`, a negative weight (SPLADE weights are
    /// non-negative; block-max bounds rely on it), or more than `u32::MAX` documents.
    pub fn add(&mut self, id: &str, vector: SparseView<'_>) -> Result<u32> {
        let invalid = |message: String| IndexError::InvalidDocument {
            id: id.to_string(),
            message,
        };
        check_document(id, vector, self.dim)?;
        if self.seen.contains(id) {
            return Err(invalid("duplicate id".into()));
        }
        let doc = u32::try_from(self.len())
            .ok()
            .filter(|&d| d < u32::MAX)
            .ok_or_else(|| invalid("too many documents (at most 2^32 - 1)".into()))?;
        if !postings_fit(self.terms.len(), vector.nnz()) {
            return Err(invalid(format!(
                "too many postings for one index segment (at most {}; build the corpus as \
                 several segments or shards and merge or search them together)",
                format::MAX_SEGMENT_POSTINGS
            )));
        }
        self.terms.extend_from_slice(vector.indices());
        self.values.extend_from_slice(vector.values());
        self.indptr.push(self.terms.len() as u64);
        self.id_data.extend_from_slice(id.as_bytes());
        self.id_offsets.push(self.id_data.len() as u64);
        self.seen.insert(id.to_string());
        Ok(doc)
    }

    fn check(&self) -> Result<()> {
        let block_size = self.effective_block_size();
        if !(1..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(IndexError::InvalidArgument(format!(
                "block size must be in 1..={MAX_BLOCK_SIZE}, got {block_size}"
            )));
        }
        if self.dim > format::MAX_DIM {
            return Err(IndexError::InvalidArgument(format!(
                "dimension {} is above the largest supported dimension {} (2^24)",
                self.dim,
                format::MAX_DIM
            )));
        }
        Ok(())
    }

    /// The binary arrays of the index, in [`FileId::ALL`] order, and its manifest (without
    /// file entries).
    fn assemble(self) -> Result<(Manifest, Vec<Bytes>)> {
        self.check()?;
        let n = self.len();
        let bs = self.effective_block_size();
        let num_blocks = n.div_ceil(bs);
        let mut block_term_offsets = Vec::with_capacity(num_blocks + 1);
        block_term_offsets.push(0u64);
        let mut block_terms: Vec<u32> = Vec::new();
        // u32: `add` keeps the postings within `MAX_SEGMENT_POSTINGS`.
        let mut entry_offsets = vec![0u32];
        let mut entry_docs: Vec<u8> = Vec::with_capacity(self.terms.len());
        let mut entry_values: Vec<f32> = Vec::with_capacity(self.terms.len());
        // Per slot (a (block, term) pair, in block order): the term's maximum in the block.
        let mut slot_max: Vec<f32> = Vec::new();
        let mut scratch: Vec<(u32, u8, f32)> = Vec::new();
        let order = self.document_order();
        for b in 0..num_blocks {
            scratch.clear();
            let first = b * bs;
            let last = (first + bs).min(n);
            for (slot, &doc) in order[first..last].iter().enumerate() {
                let doc = doc as usize;
                let (s, e) = (self.indptr[doc] as usize, self.indptr[doc + 1] as usize);
                for p in s..e {
                    scratch.push((self.terms[p], slot as u8, self.values[p]));
                }
            }
            // Stable: positions stay ascending within each term.
            scratch.sort_by_key(|e| e.0);
            let mut i = 0;
            while i < scratch.len() {
                let term = scratch[i].0;
                let mut max = 0.0f32;
                while i < scratch.len() && scratch[i].0 == term {
                    entry_docs.push(scratch[i].1);
                    entry_values.push(scratch[i].2);
                    max = max.max(scratch[i].2);
                    i += 1;
                }
                block_terms.push(term);
                slot_max.push(max);
                entry_offsets.push(entry_docs.len() as u32);
            }
            block_term_offsets.push(block_terms.len() as u64);
        }
        // Per-term arrays end at the last term that occurs: their size follows the
        // documents, not the dimension (an index of dimension 2^24 holding a few terms
        // stays small). Readers treat missing trailing terms as terms without postings.
        let stored_terms = block_terms.iter().max().map_or(0, |&t| t as usize + 1);
        // The term-major block lists by a counting sort of the slots (which are in block
        // order, so every term's blocks stay ascending): per term, its blocks, their
        // maxima quantised upwards with the term's scale, and their slots.
        let mut bound_offsets = vec![0u64; stored_terms + 1];
        let mut term_max = vec![0.0f32; stored_terms];
        for (&t, &m) in block_terms.iter().zip(&slot_max) {
            bound_offsets[t as usize + 1] += 1;
            term_max[t as usize] = term_max[t as usize].max(m);
        }
        for t in 0..stored_terms {
            bound_offsets[t + 1] += bound_offsets[t];
        }
        let bound_scales: Vec<f32> = term_max.iter().map(|&m| scale_for(m)).collect();
        let pairs = block_terms.len();
        let mut bound_blocks = vec![0u32; pairs];
        let mut bound_codes = vec![0u8; pairs];
        let mut bound_slots = vec![0u32; pairs];
        let mut fill: Vec<u64> = bound_offsets[..stored_terms].to_vec();
        for b in 0..num_blocks {
            let (s, e) = (
                block_term_offsets[b] as usize,
                block_term_offsets[b + 1] as usize,
            );
            for slot in s..e {
                let t = block_terms[slot] as usize;
                let at = fill[t] as usize;
                fill[t] += 1;
                bound_blocks[at] = b as u32;
                bound_codes[at] = encode_up(slot_max[slot], bound_scales[t]);
                bound_slots[at] = slot as u32;
            }
        }
        drop(slot_max);
        drop(block_terms);
        let manifest = Manifest {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            dim: self.dim as u64,
            num_docs: n as u64,
            nnz: self.terms.len() as u64,
            block_size: bs as u32,
            files: BTreeMap::new(),
        };
        let files = vec![
            OwnedArray::U64(self.indptr),
            OwnedArray::U32(self.terms),
            OwnedArray::F32(self.values),
            OwnedArray::U64(self.id_offsets),
            OwnedArray::U8(self.id_data),
            OwnedArray::U64(block_term_offsets),
            OwnedArray::U32(entry_offsets),
            OwnedArray::U8(entry_docs),
            OwnedArray::F32(entry_values),
            OwnedArray::U64(bound_offsets),
            OwnedArray::U32(bound_blocks),
            OwnedArray::U8(bound_codes),
            OwnedArray::F32(bound_scales),
            OwnedArray::U32(bound_slots),
            OwnedArray::U32(order),
        ];
        Ok((manifest, files.into_iter().map(Bytes::Owned).collect()))
    }

    /// The block layout: `order[position] = document number`.
    fn document_order(&self) -> Vec<u32> {
        let n = self.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        match self.reorder {
            Reorder::None => {}
            Reorder::HeaviestTerms => {
                let keys: Vec<[u32; HEAVY_KEY]> = (0..n)
                    .map(|d| {
                        let (s, e) = (self.indptr[d] as usize, self.indptr[d + 1] as usize);
                        heavy_key(&self.terms[s..e], &self.values[s..e])
                    })
                    .collect();
                order.sort_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]).then(a.cmp(&b)));
            }
            Reorder::Clustered => {
                let keys: Vec<[u32; HEAVY_KEY]> = (0..n)
                    .map(|d| {
                        let (s, e) = (self.indptr[d] as usize, self.indptr[d + 1] as usize);
                        heavy_key(&self.terms[s..e], &self.values[s..e])
                    })
                    .collect();
                let clusters = n.div_ceil(4 * self.effective_block_size()).max(1);
                let assign = if clusters > 1 {
                    // Term ids below the largest one used: the inverted lists of the
                    // centroids need no more.
                    let used = self.terms.iter().max().map_or(0, |&t| t as usize + 1);
                    cluster_documents(used, &self.indptr, &self.terms, &self.values, clusters)
                } else {
                    vec![0; n]
                };
                order.sort_by(|&a, &b| {
                    let (a, b) = (a as usize, b as usize);
                    (assign[a], keys[a], a).cmp(&(assign[b], keys[b], b))
                });
            }
        }
        order
    }

    /// Builds the index in memory (nothing is written).
    pub fn build(self) -> Result<Index> {
        let (mut manifest, files) = self.assemble()?;
        for (id, bytes) in FileId::ALL.iter().zip(&files) {
            manifest.files.insert(
                id.name().to_string(),
                format::FileEntry {
                    size: bytes.bytes().len() as u64,
                    crc32: format::crc32(bytes.bytes()),
                },
            );
        }
        Index::from_segment(Segment::from_parts(manifest, files, None)?)
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
        match format::dir_state(dir)? {
            DirState::Missing | DirState::Empty => Ok(()),
            DirState::Index if overwrite => Ok(()),
            DirState::Index => Err(IndexError::IndexExists {
                path: dir.to_path_buf(),
            }),
            state => Err(refusal(dir, state)),
        }
    }

    /// Writes a new single-segment index directory at `dir` (missing or empty) through a
    /// temporary sibling directory and one rename.
    pub(crate) fn write_new(self, dir: &Path) -> Result<Index> {
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
            _ => std::path::PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| IndexError::io(&parent, e))?;
        format::remove_stale_builds(&parent, name);
        let tmp = parent.join(format::build_dir_name(name, std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        }
        let written = self.write_arrays(&tmp).and_then(|_| {
            format::sync_dir(&parent)?;
            std::fs::rename(&tmp, dir).map_err(|e| match e.kind() {
                // Something was put into `dir` meanwhile.
                std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists => {
                    IndexError::NotAnIndex {
                        path: dir.to_path_buf(),
                        example: "(files added while the index was being built)".into(),
                    }
                }
                _ => IndexError::io(dir, e),
            })?;
            format::sync_dir(&parent)
        });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Index::open(dir)
    }

    /// Writes the single-segment directory `dir` and returns its manifest (nothing else in
    /// `dir` is touched; the caller opens it).
    pub(crate) fn write_arrays(self, dir: &Path) -> Result<Manifest> {
        let (manifest, files) = self.assemble()?;
        let named: Vec<(FileId, &[u8])> = FileId::ALL
            .iter()
            .zip(&files)
            .map(|(id, b)| (*id, b.bytes()))
            .collect();
        format::write_index_dir(dir, manifest, &named)
    }
}

/// The error for writing an index into `dir` in `state` (not missing, empty or an index).
pub(crate) fn refusal(dir: &Path, state: DirState) -> IndexError {
    match state {
        DirState::Other { example } => IndexError::NotAnIndex {
            path: dir.to_path_buf(),
            example,
        },
        _ => IndexError::NotADirectory {
            path: dir.to_path_buf(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift;
    use splade_sparse::SparseVector;

    /// A segment takes postings up to `MAX_SEGMENT_POSTINGS` (u32 offsets) and no more.
    #[test]
    fn postings_fit_the_u32_offsets() {
        let max = format::MAX_SEGMENT_POSTINGS;
        assert_eq!(max, u32::MAX as usize);
        assert!(postings_fit(0, 0));
        assert!(postings_fit(max - 10, 10));
        assert!(!postings_fit(max - 10, 11));
        assert!(!postings_fit(max, 1));
        assert!(!postings_fit(usize::MAX, 1), "no overflow");
    }

    /// The term-major block lists (made by a counting sort of the slots) hold every
    /// (block, term) slot exactly once, blocks ascending per term, each with the code of
    /// its block maximum under the term's scale, and the slot's entries are the term's
    /// weights in the documents of that block.
    #[test]
    fn block_lists_index_every_slot_once_with_its_maximum() {
        let mut next = xorshift(0x0dd_b1a5_e5ca_1ab1);
        let dim = 120;
        let mut b = IndexBuilder::new(dim).block_size(8);
        let mut docs = Vec::new();
        for d in 0..700 {
            let mut pairs: Vec<(u32, f32)> = (0..1 + next() % 20)
                .map(|_| ((next() % 100) as u32, (next() % 1000) as f32 / 64.0))
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            let v = SparseVector::from_pairs(pairs).unwrap();
            b.add(&format!("d{d}"), v.view()).unwrap();
            docs.push(v);
        }
        let index = b.build().unwrap();
        let [only] = index.slots() else { panic!() };
        let a = only.segment.blocks();
        let slots = a.entry_offsets.len() - 1;
        let mut seen = vec![false; slots];
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
                let slot = a.bound_slots[i] as usize;
                assert!(
                    !std::mem::replace(&mut seen[slot], true),
                    "slot {slot} twice"
                );
                let (es, ee) = (
                    a.entry_offsets[slot] as usize,
                    a.entry_offsets[slot + 1] as usize,
                );
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
        assert!(seen.iter().all(|&s| s), "every slot listed");
    }
}
