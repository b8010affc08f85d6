//! The term-major copy of a segment's postings, for the term-at-a-time search
//! (`search::taat`).
//!
//! [`TermPostings`]: per term, its (block position, weight) pairs in ascending position,
//! made once from the block arrays on the first search that uses it (`O(nnz)`; 8 bytes a
//! posting, in memory only: nothing on disk changes). The most frequent terms also get a
//! dense column (their weight at every position, 0 elsewhere; at most twice the postings'
//! bytes). [`LazyTermPostings`] holds the copy and the per-term document frequencies of a
//! segment, each made on first use.
//!
//! Depends only on the block arrays ([`super::blocks`]); the search that reads it lives in
//! `search::taat`.

use std::sync::OnceLock;

use splade_sparse::SparseView;

use super::blocks::BlockArrays;
use crate::counts::term_counts;

/// The postings of a segment by term: per term, its (block position, weight) pairs in
/// ascending block position.
#[derive(Debug)]
pub(crate) struct TermPostings {
    /// Per term `t`, its postings are `postings[offsets[t]..offsets[t + 1]]`.
    offsets: Vec<usize>,
    postings: Vec<Posting>,
    /// One more than the largest position (0 without postings): an accumulator this long
    /// takes every posting without a bounds check.
    span: usize,
    /// Per term, its dense column (see [`DenseColumns`]), if it has one.
    dense: DenseColumns,
    /// The byte columns of the screening search of large segments (see
    /// [`ScreenColumns`]), made on first use.
    screen: OnceLock<ScreenColumns>,
}

/// Frequent terms as columns of byte codes, for the screening pass of the term-at-a-time
/// search of large segments (`search::taat::screen_segment`): per column, the term's
/// weight at every block position quantised to `round(w / scale)` in `0..=255` (0 where
/// the term is absent), with `scale = max weight / 255`, so that `scale * code` is within
/// `scale / 2` of the weight. One byte a document where a posting takes eight: on a
/// collection where a few terms occur in almost every document, adding their columns is
/// a short vectorised stream. Only approximate scores come from them; the screening
/// search rescores its candidates exactly.
#[derive(Debug, Default)]
pub(crate) struct ScreenColumns {
    /// Per term, its column number, or `u32::MAX`.
    column_of: Vec<u32>,
    /// Per column, its scale.
    scales: Vec<f32>,
    /// The columns, `span` codes each, one after the other.
    codes: Vec<u8>,
    span: usize,
}

/// A term gets a byte column when it occurs in at least `span / SCREEN_MIN_DF_DIVISOR`
/// positions (a column then reads at most 16 bytes per posting it replaces, as one
/// stream instead of scattered adds).
pub(crate) const SCREEN_MIN_DF_DIVISOR: usize = 16;
/// The byte columns hold at most this many times the bytes of the postings copy.
const SCREEN_MAX_BYTES_PER_POSTING_BYTE: usize = 1;

impl ScreenColumns {
    fn build(offsets: &[usize], postings: &[Posting], span: usize) -> Self {
        let terms = offsets.len().saturating_sub(1);
        let min_df = (span / SCREEN_MIN_DF_DIVISOR).max(1);
        let mut frequent: Vec<(usize, usize)> = (0..terms)
            .map(|t| (offsets[t + 1] - offsets[t], t))
            .filter(|&(df, _)| df >= min_df)
            .collect();
        frequent.sort_unstable_by(|a, b| b.cmp(a));
        let budget = SCREEN_MAX_BYTES_PER_POSTING_BYTE * std::mem::size_of_val(postings);
        let count = frequent.len().min(budget / span.max(1));
        if count == 0 {
            return Self {
                span,
                ..Self::default()
            };
        }
        let mut column_of = vec![u32::MAX; terms];
        let mut scales = Vec::with_capacity(count);
        let mut codes = vec![0u8; count * span];
        for (c, &(_, t)) in frequent[..count].iter().enumerate() {
            column_of[t] = c as u32;
            let list = &postings[offsets[t]..offsets[t + 1]];
            let max = list.iter().map(|p| p.weight).fold(0.0f32, f32::max);
            let scale = max / 255.0;
            scales.push(scale);
            let column = &mut codes[c * span..(c + 1) * span];
            if scale > 0.0 {
                for p in list {
                    column[p.position as usize] =
                        (p.weight / scale).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        Self {
            column_of,
            scales,
            codes,
            span,
        }
    }

    /// The byte column of term `t` and its scale, if it has one (`span` codes).
    #[inline]
    pub(crate) fn column(&self, t: u32) -> Option<(&[u8], f32)> {
        let c = *self.column_of.get(t as usize)?;
        (c != u32::MAX).then(|| {
            let start = c as usize * self.span;
            (
                &self.codes[start..start + self.span],
                self.scales[c as usize],
            )
        })
    }
}

/// Frequent terms as dense columns: per column, the term's weight at every block position
/// (0 where the term is absent), `span` values. Adding a whole column into the accumulator
/// is a vectorised streaming pass, far cheaper per document than a scattered add per
/// posting once the term occurs in more than about one document in [`DENSE_MIN_DF_DIVISOR`].
/// Adding the `+0.0` products of absent documents leaves their sums unchanged, so the
/// scores stay bit-identical.
#[derive(Debug, Default)]
struct DenseColumns {
    /// Per term, its column number, or `u32::MAX`.
    column_of: Vec<u32>,
    /// The columns, `span` values each, one after the other.
    values: Vec<f32>,
}

/// A term gets a dense column when it occurs in at least `span / DENSE_MIN_DF_DIVISOR`
/// positions. A column reads 4 bytes a document where the postings read 8 a posting, so
/// below about half the documents it reads more bytes, but as one vectorised stream instead
/// of scattered adds; on SciFact (full passes over the 1,109 queries, alternating runs)
/// 1/4 was faster than both 1/8 and 1/2 (BENCHMARKS.md).
pub(crate) const DENSE_MIN_DF_DIVISOR: usize = 4;
/// The dense columns hold at most this many times the bytes of the postings copy (the
/// most frequent terms first).
const DENSE_MAX_BYTES_PER_POSTING_BYTE: usize = 2;

/// A segment's forward arrays: document `d` holds `terms[indptr[d]..indptr[d + 1]]` (strictly
/// ascending) with the weights at the same places of `values`.
pub(crate) struct Forward<'a> {
    pub indptr: &'a [u64],
    pub terms: &'a [u32],
    pub values: &'a [f32],
}

impl Forward<'_> {
    /// The range of document `doc`'s postings.
    #[inline]
    fn range(&self, doc: u32) -> (usize, usize) {
        let d = doc as usize;
        (self.indptr[d] as usize, self.indptr[d + 1] as usize)
    }
}

/// One posting: the block position of a document and its weight for the term.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Posting {
    /// Block position (see [`BlockArrays::doc_order`]).
    pub(crate) position: u32,
    /// The term's weight in that document.
    pub(crate) weight: f32,
}

impl TermPostings {
    /// The term-major copy of the block arrays: per term (of `df`, each term's document
    /// frequency), its postings by ascending block position. Made from the forward arrays
    /// visited in block order (`a.doc_order`), ranges of terms in parallel: the same
    /// postings as the block entries (each term's blocks in order, a block's entries by
    /// position) without a cache miss a (block, term) slot (4 s on one core for the flat
    /// 1M collection of BENCHMARKS.md that way).
    pub(crate) fn build(a: &BlockArrays<'_>, forward: &Forward<'_>, df: &[u32]) -> Self {
        use rayon::prelude::*;
        let terms = df.len();
        let mut offsets = Vec::with_capacity(terms + 1);
        offsets.push(0usize);
        for &f in df {
            offsets.push(offsets.last().unwrap_or(&0) + f as usize);
        }
        let total = offsets[terms];
        let mut postings = vec![
            Posting {
                position: 0,
                weight: 0.0
            };
            total
        ];
        // Ranges of terms of about equal postings, one a task: each task walks the
        // documents in block order and writes its terms' postings, which therefore come
        // out by ascending position (the few thousand lists a task writes stay in cache).
        let tasks = if total < 1 << 16 {
            1
        } else {
            2 * rayon::current_num_threads()
        };
        let mut bounds = vec![0usize];
        for k in 1..tasks {
            let t = offsets
                .partition_point(|&o| o < k * total / tasks)
                .min(terms);
            bounds.push(t.max(*bounds.last().unwrap_or(&0)));
        }
        bounds.push(terms);
        let mut parts = Vec::with_capacity(tasks);
        let mut rest = &mut postings[..];
        for w in bounds.windows(2) {
            let (t0, t1) = (w[0], w[1]);
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(offsets[t1] - offsets[t0]);
            parts.push((t0, t1, part));
            rest = tail;
        }
        parts.into_par_iter().for_each(|(t0, t1, out)| {
            let base = offsets[t0];
            let mut cursor: Vec<usize> = offsets[t0..t1].iter().map(|&o| o - base).collect();
            for (position, &doc) in a.doc_order.iter().enumerate() {
                let (s, e) = forward.range(doc);
                let (doc_terms, weights) = (&forward.terms[s..e], &forward.values[s..e]);
                let first = if t0 == 0 {
                    0
                } else {
                    doc_terms.partition_point(|&t| (t as usize) < t0)
                };
                for (&t, &w) in doc_terms[first..].iter().zip(&weights[first..]) {
                    let t = t as usize;
                    if t >= t1 {
                        break;
                    }
                    let c = &mut cursor[t - t0];
                    out[*c] = Posting {
                        position: position as u32,
                        weight: w,
                    };
                    *c += 1;
                }
            }
        });
        // One more than the last position holding a posting.
        let span = a
            .doc_order
            .iter()
            .rposition(|&doc| {
                let (s, e) = forward.range(doc);
                s < e
            })
            .map_or(0, |p| p + 1);
        let dense = DenseColumns::build(&offsets, &postings, span);
        Self {
            offsets,
            postings,
            span,
            dense,
            screen: OnceLock::new(),
        }
    }

    /// The byte columns of the screening search (see [`ScreenColumns`]), made on first use.
    pub(crate) fn screen_columns(&self) -> &ScreenColumns {
        self.screen
            .get_or_init(|| ScreenColumns::build(&self.offsets, &self.postings, self.span))
    }

    /// One more than the largest block position with a posting (0 without postings):
    /// an accumulator this long takes every posting without a bounds check.
    #[inline]
    pub(crate) fn span(&self) -> usize {
        self.span
    }

    /// The dense column of term `t`, if it has one (`span` values).
    #[inline]
    pub(crate) fn column(&self, t: u32) -> Option<&[f32]> {
        let c = *self.dense.column_of.get(t as usize)?;
        (c != u32::MAX).then(|| {
            let start = c as usize * self.span;
            &self.dense.values[start..start + self.span]
        })
    }

    /// The postings of term `t` (empty when the term is out of range).
    #[inline]
    pub(crate) fn term(&self, t: u32) -> &[Posting] {
        let t = t as usize;
        match (self.offsets.get(t), self.offsets.get(t + 1)) {
            (Some(&s), Some(&e)) => &self.postings[s..e],
            _ => &[],
        }
    }

    /// Postings of the query's terms (`Σ df`).
    pub(crate) fn query_postings(&self, query: SparseView<'_>) -> usize {
        query.indices().iter().map(|&t| self.term(t).len()).sum()
    }
}

impl DenseColumns {
    /// Columns for the most frequent terms with at least `span / DENSE_MIN_DF_DIVISOR`
    /// postings, within the byte budget.
    fn build(offsets: &[usize], postings: &[Posting], span: usize) -> Self {
        let terms = offsets.len().saturating_sub(1);
        let min_df = (span / DENSE_MIN_DF_DIVISOR).max(1);
        let mut frequent: Vec<(usize, usize)> = (0..terms)
            .map(|t| (offsets[t + 1] - offsets[t], t))
            .filter(|&(df, _)| df >= min_df)
            .collect();
        frequent.sort_unstable_by(|a, b| b.cmp(a));
        let budget = DENSE_MAX_BYTES_PER_POSTING_BYTE * std::mem::size_of_val(postings);
        let per_column = span * std::mem::size_of::<f32>();
        let count = frequent.len().min(budget / per_column.max(1));
        if count == 0 {
            return Self::default();
        }
        let mut column_of = vec![u32::MAX; terms];
        let mut values = vec![0.0f32; count * span];
        for (c, &(_, t)) in frequent[..count].iter().enumerate() {
            column_of[t] = c as u32;
            let column = &mut values[c * span..(c + 1) * span];
            for p in &postings[offsets[t]..offsets[t + 1]] {
                column[p.position as usize] = p.weight;
            }
        }
        Self { column_of, values }
    }
}

/// A segment's term-major postings and per-term document frequencies, each made on
/// first use and shared by every search of the segment.
#[derive(Debug, Default)]
pub(crate) struct LazyTermPostings {
    postings: OnceLock<TermPostings>,
    df: OnceLock<Box<[u32]>>,
}

impl LazyTermPostings {
    /// The postings, built on first use from `a`, the forward arrays and each term's
    /// document frequency ([`Self::df`]).
    pub(crate) fn get(
        &self,
        a: &BlockArrays<'_>,
        forward: &Forward<'_>,
        df: &[u32],
    ) -> &TermPostings {
        self.postings
            .get_or_init(|| TermPostings::build(a, forward, df))
    }

    /// Per term (of `terms`), the documents it occurs in: 4 bytes a term, counted on first
    /// use from the forward terms (`forward_terms`, every posting once), in parallel. The
    /// same counts follow from the block lists (a term's entries in each of its blocks),
    /// but reading those is a cache miss a (block, term) slot: 2.6 s of a first search on
    /// a 1M-document segment, against a sequential pass.
    pub(crate) fn df(&self, terms: usize, forward_terms: &[u32]) -> &[u32] {
        self.df
            .get_or_init(|| term_counts(forward_terms, terms).into_boxed_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift;
    use crate::{IndexBuilder, Reorder};
    use splade_sparse::SparseVector;

    /// Per term, the postings read from the block arrays (each term's blocks in order, a
    /// block's entries by position): what the term-major copy must equal.
    fn postings_from_blocks(a: &BlockArrays<'_>) -> Vec<Vec<(u32, u32)>> {
        let terms = a.bound_offsets.len() - 1;
        (0..terms)
            .map(|t| {
                let (start, end) = (a.bound_offsets[t] as usize, a.bound_offsets[t + 1] as usize);
                let mut list = Vec::new();
                for (&block, slot) in a.bound_blocks[start..end].iter().zip(start..) {
                    let (s, e) = a.entries(slot);
                    for (&d, &w) in a.entry_docs[s..e].iter().zip(&a.entry_values[s..e]) {
                        list.push((block * a.block_size as u32 + d as u32, w.to_bits()));
                    }
                }
                list
            })
            .collect()
    }

    /// The term-major copy holds, per term, exactly the postings of the block arrays in the
    /// same order, and the documents of the forward index that have the term, with their
    /// weights; the document frequencies agree. Small (one task) and large enough to be
    /// made by several tasks in parallel.
    #[test]
    fn term_postings_invert_the_forward_index() {
        for (n, dim, max_terms) in [(300, 50u64, 12u64), (6000, 300, 40)] {
            let mut next = xorshift(0x2545_f491_4f6c_dd1du64 ^ n as u64);
            let mut b = IndexBuilder::new(dim as usize)
                .block_size(8)
                .reorder(Reorder::Clustered);
            let mut docs = Vec::new();
            for d in 0..n {
                let mut pairs: Vec<(u32, f32)> = (0..next() % max_terms)
                    .map(|_| ((next() % dim) as u32, (next() % 100) as f32 / 10.0))
                    .collect();
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                let v = SparseVector::from_pairs(pairs).unwrap();
                b.add(&format!("d{d}"), v.view()).unwrap();
                docs.push(v);
            }
            let index = b.build().unwrap();
            let [only] = index.slots() else { panic!() };
            let seg = &only.segment;
            let a = seg.blocks();
            let lazy = LazyTermPostings::default();
            let df = lazy.df(a.bound_offsets.len() - 1, seg.forward_terms());
            let forward = Forward {
                indptr: seg.forward_indptr(),
                terms: seg.forward_terms(),
                values: seg.forward_values(),
            };
            let postings = TermPostings::build(&a, &forward, df);
            if n > 1000 {
                assert!(postings.postings.len() >= 1 << 16, "several tasks");
            }
            let from_blocks = postings_from_blocks(&a);
            for t in 0..dim as u32 {
                let mine: Vec<(u32, u32)> = postings
                    .term(t)
                    .iter()
                    .map(|p| (p.position, p.weight.to_bits()))
                    .collect();
                let blocks = from_blocks.get(t as usize).cloned().unwrap_or_default();
                assert_eq!(mine, blocks, "n {n} term {t}: as the block arrays");
                let mut got: Vec<(u32, u32)> = mine
                    .iter()
                    .map(|&(p, w)| (a.doc_order[p as usize], w))
                    .collect();
                let mut want: Vec<(u32, u32)> = docs
                    .iter()
                    .enumerate()
                    .filter_map(|(d, v)| {
                        let i = v.indices().binary_search(&t).ok()?;
                        Some((d as u32, v.values()[i].to_bits()))
                    })
                    .collect();
                got.sort();
                want.sort();
                assert_eq!(got, want, "n {n} term {t}");
                assert_eq!(df.get(t as usize).map_or(0, |&f| f as usize), want.len());
            }
            let span = (0..a.doc_order.len())
                .rev()
                .find(|&p| docs[a.doc_order[p] as usize].nnz() > 0)
                .map_or(0, |p| p + 1);
            assert_eq!(postings.span(), span);
            assert!(postings.term(dim as u32).is_empty(), "out of range");
        }
    }
}
