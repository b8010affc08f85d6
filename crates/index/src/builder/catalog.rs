//! What every builder keeps for each document while documents are added, wherever the
//! postings themselves go: the checks of a document, its id (unique), the forward offsets,
//! and per-term statistics (document frequency, largest weight) that the block layout and
//! the bound codes need later.

use std::hash::BuildHasher;
use std::path::Path;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

use splade_sparse::{SparseError, SparseView};

use crate::error::{IndexError, Result};
use crate::format::{self, DirState};

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

/// Whether a document passes every check of [`SparseView::new`] and [`check_document`]
/// (strictly ascending indices below `dim`, weights in `0..=MAX_WEIGHT`, hence finite, an
/// id of printable ASCII, or one without control characters), in passes without a branch
/// an element that the compiler turns into SIMD lanes. A document it refuses is checked
/// again by those two, which name what is wrong; the three checks one after another took
/// about a tenth of an in-memory build at 1M documents.
fn plainly_valid(id: &str, terms: &[u32], weights: &[f32], dim: usize) -> bool {
    let ascending = match terms {
        [] => true,
        [.., last] => {
            let falls = terms
                .iter()
                .zip(&terms[1..])
                .fold(false, |falls, (a, b)| falls | (a >= b));
            !falls && (*last as usize) < dim
        }
    };
    // NaN fails both comparisons; an infinity the second.
    let weights_ok = terms.len() == weights.len()
        && weights
            .iter()
            .fold(true, |ok, &w| ok & (0.0..=format::MAX_WEIGHT).contains(&w));
    let id_ok = if id.is_ascii() {
        !id.is_empty() && !id.bytes().any(|b| b.is_ascii_control())
    } else {
        crate::readers::check_id(id).is_ok()
    };
    ascending && weights_ok && id_ok
}

/// Whether a segment holding `held` postings can take `more`: its entry starts are u32 (at
/// most [`format::MAX_SEGMENT_POSTINGS`] postings).
pub(crate) fn postings_fit(held: usize, more: usize) -> bool {
    held.checked_add(more)
        .is_some_and(|total| total <= format::MAX_SEGMENT_POSTINGS)
}

/// Checks, without writing anything, that a new index can be written at `dir` (missing or
/// empty), or with `overwrite` over the index there: the refusals of every builder.
pub(crate) fn check_target(dir: &Path, overwrite: bool) -> Result<()> {
    match format::dir_state(dir)? {
        DirState::Missing | DirState::Empty => Ok(()),
        DirState::Index if overwrite => Ok(()),
        DirState::Index => Err(IndexError::IndexExists {
            path: dir.to_path_buf(),
        }),
        state => Err(refusal(dir, state)),
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

/// The per-document bookkeeping of a build: ids, forward offsets and term statistics.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    /// The vector dimension (every index `< dim`).
    pub dim: usize,
    /// Forward offsets: document `d`'s postings are `indptr[d]..indptr[d + 1]`.
    pub indptr: Vec<u64>,
    /// Id offsets into `id_data`.
    pub id_offsets: Vec<u64>,
    /// The ids, UTF-8, back to back.
    pub id_data: Vec<u8>,
    /// Every document number, found by the hash of its id (the ids stay in `id_data`).
    seen: HashTable<u32>,
    /// foldhash (hashbrown's default hasher), seeded at random per catalog: recording 1M
    /// ids took 0.11 s with the standard library's SipHash and two hashes an id, 0.055 s
    /// with this and one.
    hasher: DefaultHashBuilder,
    /// Per term (up to the largest one used): the number of documents holding it.
    pub df: Vec<u32>,
    /// Per term (up to the largest one used): its largest weight.
    pub term_max: Vec<f32>,
}

impl Catalog {
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            dim,
            indptr: vec![0],
            id_offsets: vec![0],
            id_data: Vec::new(),
            seen: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            df: Vec::new(),
            term_max: Vec::new(),
        }
    }

    /// Documents added so far.
    pub(crate) fn len(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Postings added so far.
    pub(crate) fn nnz(&self) -> usize {
        *self.indptr.last().unwrap_or(&0) as usize
    }

    /// One more than the largest term id used (0 when no posting was added).
    pub(crate) fn terms_used(&self) -> usize {
        self.df.len()
    }

    /// Checks and records a document (the caller stores its postings) and returns its
    /// number. Errors (naming the id): see [`check_document`], a duplicate id, more than
    /// `u32::MAX - 1` documents, or more postings than one segment holds.
    pub(crate) fn add(&mut self, id: &str, vector: SparseView<'_>) -> Result<u32> {
        let invalid = |message: String| IndexError::InvalidDocument {
            id: id.to_string(),
            message,
        };
        check_document(id, vector, self.dim)?;
        let doc = u32::try_from(self.len())
            .ok()
            .filter(|&d| d < u32::MAX)
            .ok_or_else(|| invalid("too many documents (at most 2^32 - 1)".into()))?;
        if !postings_fit(self.nnz(), vector.nnz()) {
            return Err(invalid(format!(
                "too many postings for one index segment (at most {}; build the corpus as \
                 several segments or shards and merge or search them together)",
                format::MAX_SEGMENT_POSTINGS
            )));
        }
        // Nothing is recorded before this last check, nothing can fail after it.
        if !self.push_new_id(id) {
            return Err(invalid("duplicate id".into()));
        }
        if let Some(&last) = vector.indices().last() {
            if last as usize >= self.df.len() {
                self.df.resize(last as usize + 1, 0);
                self.term_max.resize(last as usize + 1, 0.0);
            }
        }
        count_postings(
            &mut self.df,
            &mut self.term_max,
            vector.indices(),
            vector.values(),
        );
        self.indptr.push((self.nnz() + vector.nnz()) as u64);
        Ok(doc)
    }

    /// The id of document `d` (which must be recorded).
    fn id<'a>(id_offsets: &[u64], id_data: &'a [u8], d: u32) -> &'a [u8] {
        let d = d as usize;
        &id_data[id_offsets[d] as usize..id_offsets[d + 1] as usize]
    }

    /// Records the id of the next document unless a document already holds it (then
    /// `false`, nothing recorded), in one probe of the table.
    fn push_new_id(&mut self, id: &str) -> bool {
        let Catalog {
            seen,
            hasher,
            id_offsets,
            id_data,
            ..
        } = self;
        let id = id.as_bytes();
        let entry = seen.entry(
            hasher.hash_one(id),
            |&d| Self::id(id_offsets, id_data, d) == id,
            |&d| hasher.hash_one(Self::id(id_offsets, id_data, d)),
        );
        match entry {
            Entry::Occupied(_) => false,
            Entry::Vacant(place) => {
                place.insert((id_offsets.len() - 1) as u32);
                id_data.extend_from_slice(id);
                id_offsets.push(id_data.len() as u64);
                true
            }
        }
    }

    /// The catalog of the documents of a CSR matrix (document `d`: `indices` and `values`
    /// at `indptr[d]..indptr[d + 1]`, id `ids[d]`), each checked as [`Self::add`] checks
    /// it, in parallel: the first bad document (in document order) is reported by its id;
    /// an `indptr` that does not describe the arrays is an invalid argument.
    pub(crate) fn from_csr<S: AsRef<str> + Sync>(
        dim: usize,
        ids: &[S],
        indptr: Vec<u64>,
        indices: &[u32],
        values: &[f32],
    ) -> Result<Self> {
        use rayon::prelude::*;
        let n = ids.len();
        let nnz = indices.len();
        let bad_csr = |message: String| Err(IndexError::InvalidArgument(message));
        if indptr.len() != n + 1 {
            return bad_csr(format!(
                "indptr has {} entries for {n} ids (expected {})",
                indptr.len(),
                n + 1
            ));
        }
        if values.len() != nnz {
            return bad_csr(format!("{} values for {nnz} indices", values.len()));
        }
        if indptr[0] != 0 || indptr[n] != nnz as u64 {
            return bad_csr(format!(
                "indptr must run from 0 to the number of indices ({nnz}), not from {} to {}",
                indptr[0], indptr[n]
            ));
        }
        if let Some(d) = indptr.windows(2).position(|w| w[0] > w[1]) {
            return bad_csr(format!("indptr decreases after entry {d}"));
        }
        let invalid = |d: usize, message: String| IndexError::InvalidDocument {
            id: ids[d].as_ref().to_string(),
            message,
        };
        if n >= u32::MAX as usize {
            return Err(invalid(
                u32::MAX as usize - 1,
                "too many documents (at most 2^32 - 1)".into(),
            ));
        }
        if !postings_fit(0, nnz) {
            return Err(IndexError::InvalidArgument(format!(
                "{nnz} postings, more than one index segment holds ({}; build the corpus as \
                 several segments or shards and merge or search them together)",
                format::MAX_SEGMENT_POSTINGS
            )));
        }
        // One parallel pass checks every document and gathers the per-term statistics,
        // while one thread records the ids (stopping at the first duplicate).
        let width = if dim <= STATS_DIRECT_DIM {
            dim
        } else {
            indices.par_iter().max().map_or(0, |&t| t as usize + 1)
        };
        let check_and_count = || {
            (0..n)
                .into_par_iter()
                .with_min_len(1024)
                .fold(
                    || CsrStats::new(width),
                    |mut acc, d| {
                        if acc.bad.is_some() {
                            return acc;
                        }
                        let (s, e) = (indptr[d] as usize, indptr[d + 1] as usize);
                        let (terms, weights) = (&indices[s..e], &values[s..e]);
                        if plainly_valid(ids[d].as_ref(), terms, weights, dim) {
                            acc.count(terms, weights);
                            return acc;
                        }
                        let checked = SparseView::new(terms, weights)
                            .map_err(|e: SparseError| invalid(d, e.to_string()))
                            .and_then(|view| check_document(ids[d].as_ref(), view, dim));
                        match checked {
                            Err(e) => acc.bad = Some((d, e)),
                            Ok(()) => acc.count(terms, weights),
                        }
                        acc
                    },
                )
                .reduce(|| CsrStats::new(width), CsrStats::merge)
        };
        let record_ids = || {
            let mut catalog = Catalog::new(dim);
            catalog
                .id_data
                .reserve(ids.iter().map(|i| i.as_ref().len()).sum());
            catalog.id_offsets.reserve(n);
            // The table is empty: nothing to rehash.
            catalog.seen.reserve(n, |_| 0);
            for (d, id) in ids.iter().enumerate() {
                let id = id.as_ref();
                if !catalog.push_new_id(id) {
                    return (catalog, Some(d));
                }
            }
            (catalog, None)
        };
        let ((mut catalog, duplicate), mut stats) = rayon::join(record_ids, check_and_count);
        // The first bad document in document order: a duplicate id or a bad vector.
        match (duplicate, stats.bad.take()) {
            (Some(d), bad) if bad.as_ref().is_none_or(|(b, _)| d < *b) => {
                return Err(invalid(d, "duplicate id".into()));
            }
            (_, Some((_, e))) => return Err(e),
            _ => {}
        }
        (catalog.df, catalog.term_max) = stats.into_df_and_max();
        catalog.indptr = indptr;
        Ok(catalog)
    }

    /// Sets the dimension to `dim` (for vectors whose dimension is known only once all are
    /// read); errors when an index already added is `>= dim`.
    pub(crate) fn set_dim(&mut self, dim: usize) -> Result<()> {
        if self.terms_used() > dim {
            return Err(IndexError::InvalidArgument(format!(
                "dimension {dim} is too small: a document holds index {}",
                self.terms_used() - 1
            )));
        }
        self.dim = dim;
        Ok(())
    }
}

/// Adds a document's postings to the per-term document frequencies and largest weights
/// (its indices are below their length).
fn count_postings(df: &mut [u32], term_max: &mut [f32], terms: &[u32], weights: &[f32]) {
    for (&t, &w) in terms.iter().zip(weights) {
        df[t as usize] += 1;
        let m = &mut term_max[t as usize];
        *m = m.max(w);
    }
}

/// Vocabularies up to this size have their statistics gathered in arrays of the
/// dimension; larger ones are first scanned for the largest index used.
const STATS_DIRECT_DIM: usize = 1 << 20;

/// Per-term statistics of a run of checked documents, and the first bad one of the run.
struct CsrStats {
    /// Per term, its document frequency and largest weight side by side: a posting
    /// updates one cache line, not two (on the flat 1M collection of BENCHMARKS.md the
    /// whole check took 0.20 s with two arrays, 0.17-0.19 s so).
    terms: Vec<(u32, f32)>,
    bad: Option<(usize, IndexError)>,
}

impl CsrStats {
    fn new(width: usize) -> Self {
        Self {
            terms: vec![(0, 0.0); width],
            bad: None,
        }
    }

    /// Counts a checked document (its indices are below the width).
    fn count(&mut self, terms: &[u32], weights: &[f32]) {
        for (&t, &w) in terms.iter().zip(weights) {
            let (df, max) = &mut self.terms[t as usize];
            *df += 1;
            *max = max.max(w);
        }
    }

    /// The statistics of two runs, `self` before `other`: the first bad document of
    /// either.
    fn merge(mut self, other: Self) -> Self {
        self.bad = match (self.bad, other.bad) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        if self.bad.is_none() {
            self.terms
                .iter_mut()
                .zip(&other.terms)
                .for_each(|((df, max), &(f, m))| {
                    *df += f;
                    *max = max.max(m);
                });
        }
        self
    }

    /// The document frequencies and largest weights of the terms up to the last one
    /// used.
    fn into_df_and_max(self) -> (Vec<u32>, Vec<f32>) {
        let used = self
            .terms
            .iter()
            .rposition(|&(f, _)| f > 0)
            .map_or(0, |t| t + 1);
        self.terms[..used].iter().copied().unzip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass check accepts exactly the documents the two detailed checks accept:
    /// every position of every edge (a repeated or falling index, an index at the
    /// dimension, a negative, NaN, infinite or too large weight, -0.0, an empty id or one
    /// with a control character, ASCII or not) in documents of every length.
    #[test]
    fn plainly_valid_accepts_what_the_detailed_checks_accept() {
        let dim = 50usize;
        let detailed = |id: &str, t: &[u32], w: &[f32]| {
            SparseView::new(t, w)
                .map_err(|_| ())
                .and_then(|v| check_document(id, v, dim).map_err(|_| ()))
                .is_ok()
        };
        let weights = [
            0.0f32,
            -0.0,
            1.5,
            -1e-30,
            f32::NAN,
            f32::INFINITY,
            format::MAX_WEIGHT,
            format::MAX_WEIGHT * 1.01,
        ];
        let ids = ["d1", "", "a\tb", "caf\u{e9}", "x\u{85}y", "\u{7f}"];
        let (mut accepted, mut refused) = (0, 0);
        for len in 0..20usize {
            let good: Vec<u32> = (0..len as u32).map(|i| i * 2).collect();
            let ones = vec![1.0f32; len];
            let mut cases: Vec<(Vec<u32>, Vec<f32>)> = vec![(good.clone(), ones.clone())];
            for at in 0..len {
                for &w in &weights {
                    let mut v = ones.clone();
                    v[at] = w;
                    cases.push((good.clone(), v));
                }
                for t in [0u32, 1, 49, 50, 51, u32::MAX] {
                    let mut g = good.clone();
                    g[at] = t;
                    cases.push((g, ones.clone()));
                }
            }
            cases.push((good.clone(), vec![1.0; len + 1]));
            for (t, w) in &cases {
                for id in ids {
                    let expected = detailed(id, t, w);
                    assert_eq!(
                        plainly_valid(id, t, w, dim),
                        expected,
                        "id {id:?} terms {t:?} weights {w:?}"
                    );
                    if expected {
                        accepted += 1;
                    } else {
                        refused += 1;
                    }
                }
            }
        }
        assert!(accepted > 100 && refused > 100);
    }

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
}
