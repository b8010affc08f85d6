//! Dense block-maxima columns of a segment's most widespread terms, made on first use.
//!
//! The bound pass of a block-max search adds each query term's block maxima into the
//! per-block bounds and notes the term's slot per block in the query's position table: one
//! pair of scattered writes per entry of the term's block list. A term present in most
//! blocks (a stopword-like term, or any frequent one on a collection in no particular order)
//! costs about as many scattered writes as the segment has blocks. As a dense column (its
//! bound code in every block, 0 where it is absent, and its slot, `u32::MAX` where absent)
//! the same bounds come from one vectorised pass over the column, and a scored block's slot
//! is read from the column in place. The bounds are bit-identical to the lists': the same product per (term, block), in
//! the same term order, plus `0.0` where the term is absent (bounds are never negative, so
//! adding `0.0` changes nothing).
//!
//! On the topical synthetic 200k collection (6,250 blocks) the terms in at least half of the
//! blocks hold 57 % of a query's block-list entries (BENCHMARKS.md, "Dense bound columns").

use std::sync::OnceLock;

use super::blocks::BlockArrays;

/// A term in at least `1 / DENSE_DIVISOR` of a segment's blocks gets a dense column: its
/// five bytes a block then cost at most about what its list costs (nine bytes an entry).
pub(crate) const DENSE_DIVISOR: usize = 2;
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
    /// The columns of the terms of `a` in at least `1 / DENSE_DIVISOR` of its blocks (none
    /// below [`MIN_DENSE_BLOCKS`] blocks).
    pub(crate) fn build(a: &BlockArrays<'_>) -> Self {
        let nb = a.num_blocks();
        if nb < MIN_DENSE_BLOCKS {
            return Self::default();
        }
        let terms = a.bound_offsets.len().saturating_sub(1);
        let list = |t: usize| a.bound_offsets[t] as usize..a.bound_offsets[t + 1] as usize;
        let dense = |t: usize| list(t).len() * DENSE_DIVISOR >= nb;
        // Up to the last dense term only (the dimension may be large, the dense terms few).
        let Some(last) = (0..terms).rev().find(|&t| dense(t)) else {
            return Self::default();
        };
        let mut column_of = vec![u32::MAX; last + 1];
        let mut columns = 0usize;
        for (t, c) in column_of.iter_mut().enumerate() {
            if dense(t) {
                *c = columns as u32;
                columns += 1;
            }
        }
        let mut codes = vec![0u8; columns * nb];
        let mut slots = vec![u32::MAX; columns * nb];
        for (t, &c) in column_of.iter().enumerate() {
            if c == u32::MAX {
                continue;
            }
            let base = c as usize * nb;
            let r = list(t);
            // Blocks are validated below `nb` when the segment is opened.
            for ((&b, &code), &slot) in a.bound_blocks[r.clone()]
                .iter()
                .zip(&a.bound_codes[r.clone()])
                .zip(&a.bound_slots[r])
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

/// A segment's [`DenseBounds`], made on first use (concurrent searches wait for one build).
#[derive(Debug, Default)]
pub(crate) struct LazyDenseBounds(OnceLock<DenseBounds>);

impl LazyDenseBounds {
    pub(crate) fn get(&self, a: &BlockArrays<'_>) -> &DenseBounds {
        self.0.get_or_init(|| DenseBounds::build(a))
    }
}
