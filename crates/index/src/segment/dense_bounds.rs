//! Dense block-maxima columns of a segment's most widespread terms, made on first use.
//!
//! The bound pass of a block-max search adds each query term's block maxima into the
//! per-block bounds and notes the term's slot per block (its place in the term's list) in
//! the query's slot table: a scattered add and a bit per entry of the term's block list. A
//! term present in most blocks (a stopword-like term, or any frequent one on a collection in
//! no particular order) costs about as many scattered writes as the segment has blocks. As
//! a dense column (its bound code in every block, 0 where it is absent, and its slot,
//! `u32::MAX` where absent) the same bounds come from one vectorised pass over the column,
//! and a scored block's slot is read from the column in place. The bounds are bit-identical
//! to the lists': the same product per (term, block), in the same term order, plus `0.0`
//! where the term is absent (bounds are never negative, so adding `0.0` changes nothing).
//!
//! Columns come in two sets ([`LazyDenseBounds`]):
//! - the *narrow* set, the terms in at least half of the blocks, made by a segment's first
//!   block-max search: a column costs about what the term's list does. On the topical
//!   synthetic 200k collection (6,250 blocks) these terms hold 57 % of a query's block-list
//!   entries (BENCHMARKS.md, "Dense bound columns").
//! - the *wide* set, the terms in at least an eighth of the blocks (the most widespread
//!   first) within as many bytes as the segment's block lists, made once
//!   [`WIDE_AFTER`] searches in a row finished by block-max pruning (a segment whose searches
//!   go term at a time, like the flat 1M collection of BENCHMARKS.md, never pays for it).
//!   On one thread it made exact search 5-11 % faster on Quora (537k questions, +47 MB)
//!   and 21-61 % on the topical 1M (+532 MB), in alternating runs on a noisy machine
//!   (BENCHMARKS.md, "Session 23").

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::blocks::BlockArrays;

/// A term in at least `1 / DENSE_DIVISOR` of a segment's blocks gets a column of the narrow
/// set: its five bytes a block then cost the bound pass at most about what the term's list
/// costs it (nine bytes an entry, [`LIST_ENTRY_BYTES`]).
pub(crate) const DENSE_DIVISOR: usize = 2;
/// A term in at least `1 / WIDE_DIVISOR` of a segment's blocks may get a column of the wide
/// set (on Quora, 4 gave half the gain of 8 for a third of the memory).
pub(crate) const WIDE_DIVISOR: usize = 8;
/// Bytes the bound pass handles per block-list entry (block u32 and bound code u8 read, and,
/// when this was set, a slot u32 written to the table; since session 36 the table holds a bit
/// a block, in words that stay in cache, and the value was kept): the wide set's columns take
/// at most that many bytes per entry of the segment's block lists.
const LIST_ENTRY_BYTES: usize = 9;
/// Bytes of a column a block (bound code u8, slot u32).
const COLUMN_BYTES: usize = 5;
/// Searches in a row finished by block-max pruning after which a segment makes its wide set.
pub(crate) const WIDE_AFTER: u32 = 8;
/// Segments with fewer blocks keep their lists alone: their bound pass is short anyway.
pub(crate) const MIN_DENSE_BLOCKS: usize = 1024;

/// The dense columns of one segment (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct DenseBounds {
    num_blocks: usize,
    /// Per term, its column (`u32::MAX`: none). Empty when no term has one.
    column_of: Vec<u32>,
    /// Column `c`'s bound codes are `codes[c * num_blocks..(c + 1) * num_blocks]`.
    codes: Vec<u8>,
    /// Column `c`'s slots, laid out as `codes`.
    slots: Vec<u32>,
}

impl DenseBounds {
    /// The narrow set of `a`: the columns of its terms in at least `1 / DENSE_DIVISOR` of
    /// its blocks (none below [`MIN_DENSE_BLOCKS`] blocks).
    pub(crate) fn narrow(a: &BlockArrays<'_>) -> Self {
        let Some((nb, lens)) = list_lengths(a) else {
            return Self::default();
        };
        let chosen: Vec<usize> = lens
            .filter(|&(len, _)| len * DENSE_DIVISOR >= nb)
            .map(|(_, t)| t)
            .collect();
        Self::of_terms(a, &chosen)
    }

    /// The wide set of `a` less the narrow one: the columns of its terms in at least
    /// `1 / WIDE_DIVISOR` of its blocks but fewer than `1 / DENSE_DIVISOR`, the longest
    /// lists first (ties to the smaller term), as long as their bytes stay within those of
    /// the segment's block lists (none below [`MIN_DENSE_BLOCKS`] blocks).
    pub(crate) fn wide_extra(a: &BlockArrays<'_>) -> Self {
        let Some((nb, lens)) = list_lengths(a) else {
            return Self::default();
        };
        let mut wide: Vec<(usize, usize)> = lens
            .filter(|&(len, _)| len * WIDE_DIVISOR >= nb && len * DENSE_DIVISOR < nb)
            .collect();
        wide.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        let entries = a.bound_offsets.last().map_or(0, |&e| e as usize);
        let columns = (entries * LIST_ENTRY_BYTES / (COLUMN_BYTES * nb)).min(wide.len());
        let mut chosen: Vec<usize> = wide[..columns].iter().map(|&(_, t)| t).collect();
        chosen.sort_unstable();
        Self::of_terms(a, &chosen)
    }

    /// The columns of the terms `chosen` (ascending) of `a`.
    fn of_terms(a: &BlockArrays<'_>, chosen: &[usize]) -> Self {
        let nb = a.num_blocks();
        let list = |t: usize| a.bound_offsets[t] as usize..a.bound_offsets[t + 1] as usize;
        // Up to the last chosen term only (the dimension may be large, the chosen terms few).
        let Some(&last) = chosen.last() else {
            return Self::default();
        };
        let mut column_of = vec![u32::MAX; last + 1];
        for (c, &t) in chosen.iter().enumerate() {
            column_of[t] = c as u32;
        }
        let columns = chosen.len();
        let mut codes = vec![0u8; columns * nb];
        let mut slots = vec![u32::MAX; columns * nb];
        for (t, &c) in column_of.iter().enumerate() {
            if c == u32::MAX {
                continue;
            }
            let base = c as usize * nb;
            let r = list(t);
            // Blocks are validated below `nb` when the segment is opened.
            for ((&b, &code), slot) in a.bound_blocks[r.clone()]
                .iter()
                .zip(&a.bound_codes[r.clone()])
                .zip(r.start as u32..)
            {
                codes[base + b as usize] = code;
                slots[base + b as usize] = slot;
            }
        }
        Self {
            num_blocks: nb,
            column_of,
            codes,
            slots,
        }
    }

    /// Term `t`'s column, when it has one: its bound code and its slot in every block (0 and
    /// `u32::MAX` where it is absent).
    #[inline]
    pub(crate) fn column(&self, t: u32) -> Option<(&[u8], &[u32])> {
        let c = *self.column_of.get(t as usize)?;
        if c == u32::MAX {
            return None;
        }
        let r = c as usize * self.num_blocks..(c as usize + 1) * self.num_blocks;
        Some((&self.codes[r.clone()], &self.slots[r]))
    }

    /// The number of dense columns.
    #[cfg(test)]
    pub(crate) fn columns(&self) -> usize {
        self.codes.len().checked_div(self.num_blocks).unwrap_or(0)
    }
}

/// The number of blocks of `a` and every term's (block-list length, term), or `None` below
/// [`MIN_DENSE_BLOCKS`] blocks (no columns there).
fn list_lengths<'a>(
    a: &'a BlockArrays<'_>,
) -> Option<(usize, impl Iterator<Item = (usize, usize)> + 'a)> {
    let nb = a.num_blocks();
    let lens = a
        .bound_offsets
        .windows(2)
        .enumerate()
        .map(|(t, w)| ((w[1] - w[0]) as usize, t));
    (nb >= MIN_DENSE_BLOCKS).then_some((nb, lens))
}

/// The dense columns a search reads: the narrow set, and the rest of the wide set once it is
/// made (a term has a column in at most one of them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenseView<'a> {
    narrow: &'a DenseBounds,
    wide: Option<&'a DenseBounds>,
}

impl<'a> DenseView<'a> {
    /// Term `t`'s column, when it has one: its bound code and its slot in every block (0 and
    /// `u32::MAX` where it is absent).
    #[inline]
    pub(crate) fn column(&self, t: u32) -> Option<(&'a [u8], &'a [u32])> {
        self.narrow
            .column(t)
            .or_else(|| self.wide.and_then(|w| w.column(t)))
    }

    /// The number of dense columns.
    #[cfg(test)]
    pub(crate) fn columns(&self) -> usize {
        self.narrow.columns() + self.wide.map_or(0, DenseBounds::columns)
    }
}

impl<'a> From<&'a DenseBounds> for DenseView<'a> {
    /// One set alone.
    fn from(narrow: &'a DenseBounds) -> Self {
        DenseView { narrow, wide: None }
    }
}

/// A segment's dense columns (see the module documentation): the narrow set made on first
/// use (concurrent searches wait for one build), the rest of the wide set after
/// [`WIDE_AFTER`] searches in a row finished by block-max pruning (made by the search that
/// completes the run; the others go on with the narrow set meanwhile).
#[derive(Debug, Default)]
pub(crate) struct LazyDenseBounds {
    narrow: OnceLock<DenseBounds>,
    wide: OnceLock<DenseBounds>,
    /// Searches in a row finished by block-max pruning (capped at [`WIDE_AFTER`]).
    finished: AtomicU32,
}

impl LazyDenseBounds {
    /// The columns made so far (the narrow set made now if it is not yet, from `blocks`).
    pub(crate) fn get<'a>(&'a self, blocks: impl FnOnce() -> BlockArrays<'a>) -> DenseView<'a> {
        DenseView {
            narrow: self.narrow.get_or_init(|| DenseBounds::narrow(&blocks())),
            wide: self.wide.get(),
        }
    }

    /// Records how a block-max search ended (finished by block-max pruning, or handed over
    /// to term at a time), and makes the wide set from `blocks` when this completes
    /// [`WIDE_AFTER`] finished ones in a row. (Called on every search of the segment: once
    /// the wide set is made, or while searches keep handing over, it writes nothing.)
    pub(crate) fn record<'a>(&'a self, finished: bool, blocks: impl FnOnce() -> BlockArrays<'a>) {
        if self.wide.get().is_some() {
            return;
        }
        if !finished {
            if self.finished.load(Ordering::Relaxed) != 0 {
                self.finished.store(0, Ordering::Relaxed);
            }
            return;
        }
        let before = self
            .finished
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n + 1).min(WIDE_AFTER))
            })
            .unwrap_or(WIDE_AFTER);
        if before + 1 == WIDE_AFTER {
            self.wide.get_or_init(|| DenseBounds::wide_extra(&blocks()));
        }
    }
}
