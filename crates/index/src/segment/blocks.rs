//! Borrowed views of a segment's block arrays (the block layout and the quantised block
//! maxima, see [`crate::format`]), as the block-max search and the term-major postings
//! copy read them.

/// Borrowed views of the block arrays (see [`crate::format`]).
pub(crate) struct BlockArrays<'a> {
    pub block_size: usize,
    pub num_docs: usize,
    pub entry_docs: &'a [u8],
    pub entry_values: &'a [f32],
    pub bound_offsets: &'a [u64],
    pub bound_blocks: &'a [u32],
    pub bound_codes: &'a [u8],
    pub bound_scales: &'a [f32],
    /// Per (term, block) pair of the lists, its first entry.
    pub bound_starts: &'a [u32],
    /// Per (term, block) pair of the lists, its number of entries less one.
    pub bound_lengths: &'a [u8],
    /// Block position -> document number.
    pub doc_order: &'a [u32],
}

impl BlockArrays<'_> {
    /// Number of blocks.
    pub(crate) fn num_blocks(&self) -> usize {
        self.num_docs.div_ceil(self.block_size.max(1))
    }

    /// The entries of the `i`-th (term, block) pair of the lists (`bounds.starts`,
    /// `bounds.lengths`): `start..end`.
    #[inline(always)]
    pub(crate) fn entries(&self, i: usize) -> (usize, usize) {
        let start = self.bound_starts[i] as usize;
        (start, start + self.bound_lengths[i] as usize + 1)
    }
}
