//! The block arrays of the format from documents in their block order: one parallel pass
//! over the blocks (each block's postings sorted by term, by a radix sort, into its
//! (block, term) slots and entries), then the term-major bound lists (per (term, block):
//! block, bound code, first entry, entries less one) by a counting sort of each range of
//! terms' slots, range by range, in a region of memory small enough to stay in cache. Two
//! ways, byte for byte the same:
//! - in memory ([`assemble_in_memory`]): every array is allocated once at its final size
//!   and written in place, in parallel, each block's slots copied to one buffer per range
//!   of terms ([`RangeSlots`]) as the block is made;
//! - streamed to files ([`assemble_streaming`], for a [`crate::DiskIndexBuilder`]): each
//!   batch of blocks is appended to the files, and the slots are spilled to one file per
//!   range of terms, so memory stays bounded by a batch and a range.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::builder::scatter::{place_slots, ListParts, RangeRuns};
use crate::builder::sink::{Output, Sink};
use crate::builder::source::{DocBuf, DocSource};
use crate::error::{IndexError, Result};
use crate::format::{spill_name, FileId};
use crate::hint::zeroed;
use crate::quantize::{encode_up_all, scale_for};
use crate::storage::OwnedArray;

/// Blocks assembled in parallel before their output is appended.
const BATCH_BLOCKS: usize = 1024;

/// The block arrays of one segment.
pub(crate) struct BlockOutput {
    pub block_offsets: Vec<u64>,
    pub entry_docs: Output,
    pub entry_values: Output,
    pub bound_offsets: Vec<u64>,
    pub bound_blocks: Output,
    pub bound_codes: Output,
    pub bound_starts: Output,
    pub bound_lengths: Output,
    pub bound_scales: Vec<f32>,
}

/// The entries and slots of one block.
#[derive(Default)]
struct Block {
    docs: Vec<u8>,
    values: Vec<f32>,
    slots: BlockSlots,
}

/// Slots of one range of terms, in block order: per run (a block's slots of the range),
/// its block, first entry and number of slots; then every slot's term, bound code and
/// number of entries less one (a slot's entries follow the previous slot's in its run).
#[derive(Default)]
struct SlotRun {
    runs: Vec<[u32; 3]>,
    terms: Vec<u32>,
    codes: Vec<u8>,
    lengths: Vec<u8>,
}

impl SlotRun {
    fn clear(&mut self) {
        self.runs.clear();
        self.terms.clear();
        self.codes.clear();
        self.lengths.clear();
    }
}

/// The (block, term) slots between the block pass and the term-major lists of a
/// streaming build, spilled to one file per range of terms beside the index files (the
/// memory of a [`crate::DiskIndexBuilder`] stays bounded), a record a batch of blocks:
/// the number of runs and of slots (u32 each), the runs (block, first entry, number of
/// slots: u32 each), the terms (u32 each), the codes (u8), the lengths (u8: entries less
/// one), little-endian. A slot's first entry follows from its run and the lengths before
/// it (12 bytes a run instead of 4 a slot).
struct SlotStore {
    files: Vec<(BufWriter<File>, PathBuf)>,
    /// One batch of blocks' slots per range.
    runs: Vec<SlotRun>,
}

impl SlotStore {
    /// Spill files for the ranges `starts` describes in `dir` (none is left after an
    /// error).
    fn files(dir: &Path, starts: &[usize]) -> Result<Self> {
        let ranges = starts.len() - 1;
        let mut files = Vec::with_capacity(ranges);
        for r in 0..ranges {
            let path = dir.join(spill_name(r));
            match File::create(&path) {
                Ok(f) => files.push((BufWriter::with_capacity(1 << 16, f), path)),
                Err(e) => {
                    files.iter().for_each(|(_, p)| {
                        let _ = std::fs::remove_file(p);
                    });
                    return Err(IndexError::io(&path, e));
                }
            }
        }
        Ok(SlotStore {
            files,
            runs: (0..ranges).map(|_| SlotRun::default()).collect(),
        })
    }

    /// Takes the slots of block `block`, whose entries start at `first_entry`, cut into
    /// the ranges' runs ([`BlockSlots::cut_at`]).
    fn push_block(&mut self, block: usize, first_entry: u64, slots: &BlockSlots) {
        let (terms, codes, lengths) = (slots.terms(), slots.codes(), slots.lengths());
        for (run, w) in self.runs.iter_mut().zip(slots.cuts.windows(2)) {
            let (a, e) = (w[0] as usize, w[1] as usize);
            if a == e {
                continue;
            }
            let entry = first_entry + u64::from(slots.entry_of(a));
            run.runs.push([block as u32, entry as u32, (e - a) as u32]);
            run.terms.extend_from_slice(&terms[a..e]);
            run.codes.extend_from_slice(&codes[a..e]);
            run.lengths.extend_from_slice(&lengths[a..e]);
        }
    }

    /// Writes the slots gathered since the last call to the spill files.
    fn end_batch(&mut self) -> Result<()> {
        for ((out, path), run) in self.files.iter_mut().zip(self.runs.iter_mut()) {
            if run.terms.is_empty() {
                continue;
            }
            let counts = [run.runs.len() as u32, run.terms.len() as u32];
            out.write_all(bytemuck::cast_slice(&counts))
                .and_then(|_| out.write_all(bytemuck::cast_slice(&run.runs)))
                .and_then(|_| out.write_all(bytemuck::cast_slice(&run.terms)))
                .and_then(|_| out.write_all(&run.codes))
                .and_then(|_| out.write_all(&run.lengths))
                .map_err(|e| IndexError::io(&*path, e))?;
            run.clear();
        }
        Ok(())
    }

    /// Removes the spill files left (after an error).
    fn remove(&mut self) {
        for (_, path) in self.files.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Calls `f` on the records of the spill file `path`, in slot order, and removes the
/// file.
fn scan_spill(path: &Path, mut f: impl FnMut(&SlotRun) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut run = SlotRun::default();
    let io = |e| IndexError::io(path, e);
    let short = || IndexError::corrupt(path, "slot list cut short");
    loop {
        let mut counts = [0u8; 8];
        match read_full(&mut reader, &mut counts).map_err(io)? {
            0 => break,
            8 => {}
            _ => return Err(short()),
        }
        let [runs, len]: [u32; 2] = bytemuck::cast(counts);
        run.runs.resize(runs as usize, [0; 3]);
        run.terms.resize(len as usize, 0);
        run.codes.resize(len as usize, 0);
        run.lengths.resize(len as usize, 0);
        reader
            .read_exact(bytemuck::cast_slice_mut(&mut run.runs))
            .and_then(|_| reader.read_exact(bytemuck::cast_slice_mut(&mut run.terms)))
            .and_then(|_| reader.read_exact(&mut run.codes))
            .and_then(|_| reader.read_exact(&mut run.lengths))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => short(),
                _ => io(e),
            })?;
        if run.runs.iter().map(|r| u64::from(r[2])).sum::<u64>() != u64::from(len) {
            return Err(IndexError::corrupt(path, "slot runs do not add up"));
        }
        f(&run)?;
    }
    std::fs::remove_file(path).map_err(|e| IndexError::io(path, e))
}

/// Ranges of terms (`starts[r]..starts[r + 1]`) of at most `budget` slots each (at least
/// one term) and at most `max_terms` terms, from an upper bound of every term's slots: its
/// document frequency, at most one slot a block.
fn term_ranges(df: &[u32], num_blocks: usize, budget: usize, max_terms: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let (mut first, mut held) = (0usize, 0usize);
    for (t, &f) in df.iter().enumerate() {
        let slots = (f as usize).min(num_blocks);
        if (held > 0 && held + slots > budget) || t - first >= max_terms {
            starts.push(t);
            (first, held) = (t, 0);
        }
        held += slots;
    }
    starts.push(df.len());
    starts
}

/// The most terms a range of an in-memory build spans, so that a term less its range's
/// first fits in a `u16` ([`RangeSlots`]). (A streamed build keeps whole terms and has no
/// such limit: each of its ranges is a spill file.)
const RANGE_TERMS: usize = 1 << 16;

/// The slot budget of an in-memory build's ranges: `range_slots`, but no fewer than 4
/// slots a block once that is more than [`RANGE_SLOTS`] (above 524,288 blocks), so that
/// blocks do not fall apart into more runs than slots (12 bytes a run, and a cut a range
/// a block: [`RangeSlots`]). Smaller `range_slots` (the tests') are kept as they are.
fn memory_range_budget(range_slots: usize, num_blocks: usize) -> usize {
    let floor = num_blocks.saturating_mul(4);
    if floor > RANGE_SLOTS {
        range_slots.max(floor)
    } else {
        range_slots
    }
}

/// Bits of a block key ([`assemble_blocks`]) below its term: the position in the block
/// (8 bits) and the weight's bits (32).
const TERM_SHIFT: u32 = 40;

/// Sorts `keys` (term `<< TERM_SHIFT` | anything below) by term, stably, terms below
/// `2^term_bits`: a least-significant-digit radix sort, one pass per byte of the term
/// (two for a vocabulary of 30,522), through `scratch`. A comparison sort of a block's
/// few thousand keys took most of the block pass.
fn sort_by_term(keys: &mut Vec<u64>, scratch: &mut Vec<u64>, term_bits: u32) {
    // At most three passes: terms are below 2^24.
    let passes = term_bits.div_ceil(8).clamp(1, 3) as usize;
    let n = keys.len();
    // The scratch only grows: what it holds is overwritten.
    grow(scratch, n);
    // Every pass's digit counts, from one read of the keys.
    let mut counts = [[0usize; 256]; 3];
    let digit = |k: u64, pass: usize| (k >> (TERM_SHIFT + 8 * pass as u32)) as usize & 0xff;
    for &k in keys.iter() {
        for (pass, c) in counts[..passes].iter_mut().enumerate() {
            c[digit(k, pass)] += 1;
        }
    }
    for (pass, counts) in counts[..passes].iter_mut().enumerate() {
        if counts.contains(&n) {
            continue;
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            let here = *c;
            *c = at;
            at += here;
        }
        let out = &mut scratch[..n];
        for &k in keys.iter() {
            let d = digit(k, pass);
            out[counts[d]] = k;
            counts[d] += 1;
        }
        std::mem::swap(keys, scratch);
        // The scratch may have been the longer: the keys are its first `n`.
        keys.truncate(n);
    }
}

/// Reused buffers of the per-block work.
#[derive(Default)]
struct BlockScratch {
    buf: DocBuf,
    keys: Vec<u64>,
    sorted: Vec<u64>,
}

/// Fills `scratch.keys` with the postings of the documents `docs` (a block, in position
/// order), sorted by term, then position: term (< 2^24) `<< TERM_SHIFT` | position in
/// the block (< 256) `<< 32` | weight bits. Returns the number of postings.
fn block_keys(
    src: &dyn DocSource,
    docs: &[u32],
    scratch: &mut BlockScratch,
    term_bits: u32,
) -> Result<usize> {
    let BlockScratch { buf, keys, sorted } = scratch;
    keys.clear();
    for (slot, &doc) in docs.iter().enumerate() {
        let doc = doc as usize;
        let chunk = src.chunk(doc, doc + 1, buf)?;
        let (t, v) = chunk.doc(doc);
        // Keys are made in position order, so a stable sort by term sorts by term, then
        // position.
        keys.extend(t.iter().zip(v).map(|(&t, &v)| {
            ((t as u64) << TERM_SHIFT) | ((slot as u64) << 32) | v.to_bits() as u64
        }));
    }
    sort_by_term(keys, sorted, term_bits);
    Ok(keys.len())
}

/// The slots of one block: per (block, term) slot, its term, its bound code, the end of
/// its entries (relative to the block's first entry) and their number less one: the first
/// `len` of each buffer.
/// The buffers are reused from block to block and only grow, so no block pays for
/// clearing them.
#[derive(Default)]
struct BlockSlots {
    len: usize,
    terms: Vec<u32>,
    codes: Vec<u8>,
    ends: Vec<u32>,
    lengths: Vec<u8>,
    /// Each slot's largest weight and its term's scale (scratch for the codes).
    maxes: Vec<f32>,
    scales: Vec<f32>,
    /// Set by [`Self::cut_at`]: where each range of terms' run starts in the slots, then
    /// the number of slots.
    cuts: Vec<u32>,
}

impl BlockSlots {
    fn terms(&self) -> &[u32] {
        &self.terms[..self.len]
    }

    fn codes(&self) -> &[u8] {
        &self.codes[..self.len]
    }

    #[cfg(test)]
    fn ends(&self) -> &[u32] {
        &self.ends[..self.len]
    }

    fn lengths(&self) -> &[u8] {
        &self.lengths[..self.len]
    }

    /// The first entry of slot `s` (`s <= len`), relative to the block's first entry.
    fn entry_of(&self, s: usize) -> u32 {
        match s {
            0 => 0,
            s => self.ends[s - 1],
        }
    }

    /// Cuts the slots into the runs of the ranges of terms `starts` describes
    /// (`self.cuts`).
    fn cut_at(&mut self, starts: &[usize]) {
        let terms = &self.terms[..self.len];
        self.cuts.clear();
        let mut at = 0;
        for &t0 in &starts[..starts.len() - 1] {
            at += terms[at..].partition_point(|&t| (t as usize) < t0);
            self.cuts.push(at as u32);
        }
        self.cuts.push(self.len as u32);
    }
}

/// Makes `v` at least `n` long (what it holds is overwritten by the caller).
fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// Writes a block's entries (position and weight, by term then position) from its sorted
/// `keys` into `docs` and `values` (as long as `keys`), and its slots into `out`.
///
/// Most postings of a block start a slot of their own (on the flat 1M collection of
/// BENCHMARKS.md, 82M slots for 120M postings), so the loop has no branch on it: every
/// posting writes its slot's running end and maximum, and a new term moves to the next
/// slot.
fn emit_block(
    keys: &[u64],
    bound_scales: &[f32],
    docs: &mut [u8],
    values: &mut [f32],
    out: &mut BlockSlots,
) {
    let n = keys.len();
    let BlockSlots {
        len,
        terms,
        codes,
        ends,
        lengths,
        maxes,
        scales,
        cuts: _,
    } = out;
    *len = 0;
    let Some(&first) = keys.first() else {
        return;
    };
    grow(terms, n);
    grow(ends, n);
    grow(maxes, n);
    let (docs, values) = (&mut docs[..n], &mut values[..n]);
    let mut prev = (first >> TERM_SHIFT) as u32;
    terms[0] = prev;
    // The running maximum is kept on the weights' bits: weights are non-negative floats
    // (or -0.0, whose sign bit is dropped), which order as their bits do, so an integer
    // `max` and a mask that clears it at a new slot do it without a branch (a branch on
    // "new term" is mispredicted often: most postings start a slot, not all) and with a
    // short dependency chain from one posting to the next.
    let (mut slot, mut max) = (0usize, 0u32);
    for (i, &k) in keys.iter().enumerate() {
        let term = (k >> TERM_SHIFT) as u32;
        let w = k as u32;
        docs[i] = (k >> 32) as u8;
        values[i] = f32::from_bits(w);
        // The running end and maximum of the current slot (final once a new term starts).
        ends[slot] = i as u32;
        maxes[slot] = f32::from_bits(max);
        let new = term != prev;
        slot += new as usize;
        // A new slot's maximum starts from zero.
        max = (max & u32::from(new).wrapping_sub(1)).max(w & 0x7fff_ffff);
        terms[slot] = term;
        prev = term;
    }
    ends[slot] = n as u32;
    maxes[slot] = f32::from_bits(max);
    let slots = slot + 1;
    *len = slots;
    grow(scales, slots);
    grow(codes, slots);
    grow(lengths, slots);
    // A slot holds 1 to 256 entries: a document holds a term at most once, a block at most
    // 256 documents.
    let mut start = 0;
    for (l, &end) in lengths[..slots].iter_mut().zip(&ends[..slots]) {
        debug_assert!(
            (1..=256).contains(&(end - start)),
            "1 to 256 entries a slot"
        );
        *l = (end - start - 1) as u8;
        start = end;
    }
    for (s, &t) in scales[..slots].iter_mut().zip(&terms[..slots]) {
        *s = bound_scales[t as usize];
    }
    encode_up_all(&maxes[..slots], &scales[..slots], &mut codes[..slots]);
}

/// Splits `items` into consecutive pieces of the given lengths (which must add up to at
/// most its length).
fn split_lengths<T>(mut items: &mut [T], lengths: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut parts = Vec::new();
    for len in lengths {
        let (part, rest) = std::mem::take(&mut items).split_at_mut(len);
        parts.push(part);
        items = rest;
    }
    parts
}

/// The block arrays of `src`'s documents laid out in `order`, all in memory, made in
/// place: every block's entries go straight to their place in the output (their offsets
/// follow from the documents' lengths), batch by batch in parallel; once a batch's slot
/// counts are known, each block's slots are copied, in parallel too, to the buffers of
/// their ranges of terms ([`RangeSlots`]), from which the term-major lists are filled.
fn assemble_in_memory(
    src: &dyn DocSource,
    order: &[u32],
    term_max: &[f32],
    df: &[u32],
    starts: &[usize],
    block_size: usize,
) -> Result<BlockOutput> {
    use rayon::prelude::*;
    let n = src.len();
    let bs = block_size;
    let num_blocks = n.div_ceil(bs);
    let stored_terms = term_max.len();
    let bound_scales: Vec<f32> = term_max.iter().map(|&m| scale_for(m)).collect();
    let term_bits = usize::BITS - stored_terms.saturating_sub(1).leading_zeros();
    let block_docs = |b: usize| &order[b * bs..((b + 1) * bs).min(n)];
    // Each block's first entry.
    let block_lengths: Vec<usize> = (0..num_blocks)
        .into_par_iter()
        .map(|b| block_docs(b).iter().map(|&d| src.doc_len(d as usize)).sum())
        .collect();
    let mut block_entries = Vec::with_capacity(num_blocks + 1);
    block_entries.push(0usize);
    for len in &block_lengths {
        block_entries.push(block_entries.last().unwrap_or(&0) + len);
    }
    let nnz = block_entries[num_blocks];
    let mut entry_docs = zeroed::<u8>(nnz);
    let mut entry_values = zeroed::<f32>(nnz);
    let mut by_range = RangeSlots::new(starts, df, num_blocks);
    let ranges = by_range.ranges();
    // The slots of a batch's blocks, in buffers kept from batch to batch.
    let mut pool: Vec<BlockSlots> = (0..BATCH_BLOCKS.min(num_blocks))
        .map(|_| BlockSlots::default())
        .collect();
    // Per block of a batch and range, where the block's run of the range goes in the
    // range's buffer.
    let mut places: Vec<usize> = Vec::new();
    for batch in (0..num_blocks).step_by(BATCH_BLOCKS) {
        let end = (batch + BATCH_BLOCKS).min(num_blocks);
        let (e0, e1) = (block_entries[batch], block_entries[end]);
        let lengths = || block_lengths[batch..end].iter().copied();
        let docs = split_lengths(&mut entry_docs[e0..e1], lengths());
        let values = split_lengths(&mut entry_values[e0..e1], lengths());
        let slots = &mut pool[..end - batch];
        (batch..end)
            .into_par_iter()
            .zip(docs)
            .zip(values)
            .zip(&mut *slots)
            .try_for_each_init(
                BlockScratch::default,
                |scratch, (((b, docs), values), out)| {
                    // The next block's documents are fetched while this one is made (a
                    // clustered layout reads them from all over the forward arrays).
                    if b + 1 < num_blocks {
                        block_docs(b + 1)
                            .iter()
                            .for_each(|&d| src.prefetch(d as usize));
                    }
                    block_keys(src, block_docs(b), scratch, term_bits)?;
                    emit_block(&scratch.keys, &bound_scales, docs, values, out);
                    out.cut_at(starts);
                    Ok::<_, IndexError>(())
                },
            )?;
        let slots = &*slots;
        places.clear();
        for (b, s) in (batch..end).zip(slots) {
            places.extend(by_range.append(b, block_entries[b], s));
        }
        let writers = by_range.writers();
        slots
            .par_iter()
            .zip(places.par_chunks(ranges))
            .for_each(|(s, places)| {
                // SAFETY: the places of every block's runs were handed out by
                // `RangeSlots::append`, one after another: no two runs overlap.
                unsafe { writers.copy_block(s, starts, places) };
            });
    }
    let (lists, bound_offsets) = Lists::from_ranges(&by_range, starts);
    drop(by_range);
    let array = |a: OwnedArray| Output::Array(a);
    Ok(BlockOutput {
        block_offsets: block_entries.iter().map(|&e| e as u64).collect(),
        entry_docs: array(entry_docs.into()),
        entry_values: array(entry_values.into()),
        bound_offsets,
        bound_blocks: array(lists.blocks.into()),
        bound_codes: array(lists.codes.into()),
        bound_starts: array(lists.starts.into()),
        bound_lengths: array(lists.lengths.into()),
        bound_scales,
    })
}

/// The slots of an in-memory build between the block pass and the term-major lists, by
/// range of terms: per range, its slots in block order (each one's term less the range's
/// first term, its code and its length), read once, in order, when the range's lists are filled
/// (the lists of a range are written at random places, and a range is small enough for
/// its places to stay in cache). Each block's slots are copied to the ranges as soon as
/// the block is made, a run per range, so neither side jumps through memory: the block
/// side writes a cursor per range, the list side reads one stream.
struct RangeSlots {
    /// Per range, its slots' terms (less the range's first term: a range spans at most
    /// 2^16 terms, [`RANGE_TERMS`]), codes and lengths (entries less one), at most as many
    /// as the upper bound the ranges were cut by (pages never written are never touched).
    terms: Vec<Vec<u16>>,
    codes: Vec<Vec<u8>>,
    lengths: Vec<Vec<u8>>,
    /// Per range, the slots appended so far.
    filled: Vec<usize>,
    /// Per range, its runs in block order: block, first entry, number of slots (a run is
    /// a block's slots of the range; blocks with none have no run).
    runs: Vec<Vec<[u32; 3]>>,
}

impl RangeSlots {
    /// Empty buffers for the ranges `starts` cut from the terms of `df` (document
    /// frequencies) over `num_blocks` blocks.
    fn new(starts: &[usize], df: &[u32], num_blocks: usize) -> Self {
        let ranges = starts.len() - 1;
        let bound = |r: usize| -> usize {
            df[starts[r].min(df.len())..starts[r + 1].min(df.len())]
                .iter()
                .map(|&f| (f as usize).min(num_blocks))
                .sum()
        };
        let caps: Vec<usize> = (0..ranges).map(bound).collect();
        RangeSlots {
            terms: caps.iter().map(|&c| zeroed::<u16>(c)).collect(),
            codes: caps.iter().map(|&c| zeroed::<u8>(c)).collect(),
            lengths: caps.iter().map(|&c| zeroed::<u8>(c)).collect(),
            filled: vec![0; ranges],
            runs: vec![Vec::new(); ranges],
        }
    }

    fn ranges(&self) -> usize {
        self.filled.len()
    }

    /// Records the runs of the next block, `block`, whose entries start at `first_entry`
    /// (its slots cut by [`BlockSlots::cut_at`]), and hands out their places in the
    /// ranges' buffers, one a range.
    fn append<'a>(
        &'a mut self,
        block: usize,
        first_entry: usize,
        slots: &'a BlockSlots,
    ) -> impl Iterator<Item = usize> + 'a {
        self.filled
            .iter_mut()
            .zip(&mut self.runs)
            .zip(slots.cuts.windows(2))
            .map(move |((filled, runs), w)| {
                let (at, len) = (*filled, w[1] - w[0]);
                if len > 0 {
                    let entry = first_entry as u32 + slots.entry_of(w[0] as usize);
                    runs.push([block as u32, entry, len]);
                }
                *filled += len as usize;
                at
            })
    }

    /// Writers of every range's buffers, for the blocks of one batch.
    fn writers(&mut self) -> RangeWriters<'_> {
        RangeWriters {
            terms: self.terms.iter_mut().map(|t| SharedSlice::new(t)).collect(),
            codes: self.codes.iter_mut().map(|c| SharedSlice::new(c)).collect(),
            lengths: self
                .lengths
                .iter_mut()
                .map(|l| SharedSlice::new(l))
                .collect(),
        }
    }
}

/// The range buffers of [`RangeSlots`], written by several threads at places
/// [`RangeSlots::append`] handed out.
struct RangeWriters<'a> {
    terms: Vec<SharedSlice<'a, u16>>,
    codes: Vec<SharedSlice<'a, u8>>,
    lengths: Vec<SharedSlice<'a, u8>>,
}

impl RangeWriters<'_> {
    /// Copies the runs of block `s` (cut by [`BlockSlots::cut_at`]) to `places`, one a
    /// range.
    ///
    /// # Safety
    /// No other call running at the same time may write a place of these runs.
    unsafe fn copy_block(&self, s: &BlockSlots, starts: &[usize], places: &[usize]) {
        let (terms, codes, lengths) = (s.terms(), s.codes(), s.lengths());
        for (r, (w, &at)) in s.cuts.windows(2).zip(places).enumerate() {
            let (a, b) = (w[0] as usize, w[1] as usize);
            if a == b {
                continue;
            }
            let t0 = starts[r] as u32;
            // SAFETY: the caller's promise.
            unsafe {
                self.terms[r].write(at, terms[a..b].iter().map(|&t| (t - t0) as u16));
                self.codes[r].write(at, codes[a..b].iter().copied());
                self.lengths[r].write(at, lengths[a..b].iter().copied());
            }
        }
    }
}

/// A slice written by several threads at once, at places the callers keep apart.
struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: the slice is only written through `write`, whose callers promise that no two
// writes at the same time touch the same place.
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T: Copy> SharedSlice<'a, T> {
    fn new(slice: &'a mut [T]) -> Self {
        SharedSlice {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _slice: std::marker::PhantomData,
        }
    }

    /// Writes `values` from place `at` on (panics past the end).
    ///
    /// # Safety
    /// No other thread writes any of these places at the same time.
    unsafe fn write(&self, at: usize, values: impl ExactSizeIterator<Item = T>) {
        let n = values.len();
        assert!(at <= self.len && n <= self.len - at, "write past the end");
        // At most the `n` places checked, whatever the iterator yields.
        for (i, v) in values.take(n).enumerate() {
            // SAFETY: in bounds (checked above); exclusive by the caller's promise.
            unsafe { self.ptr.add(at + i).write(v) };
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// How the block arrays are produced.
pub(crate) struct AssembleOptions<'a> {
    /// Documents per block.
    pub block_size: usize,
    /// `Some(dir)`: the large arrays are written to their files in `dir` as they grow
    /// and the slots are spilled there ([`spill_name`]) between the block pass and the
    /// term-major lists, so memory stays bounded by a batch of blocks and one range of
    /// terms; `None`: all in memory, made in place ([`assemble_in_memory`]).
    pub dir: Option<&'a Path>,
    /// At most this many slots per range of terms (at least one term a range), whose
    /// term-major lists are filled together ([`RANGE_SLOTS`]); in memory, ranges also
    /// span at most [`RANGE_TERMS`] terms, and very large collections get larger ranges
    /// ([`memory_range_budget`]).
    pub range_slots: usize,
}

/// Slots of one range of terms (whose lists are filled together: 10 bytes a slot, 20 MiB,
/// written at random places, so it pays to keep them within the caches). On the flat 1M
/// collection of BENCHMARKS.md, an in-memory build's block pass and lists took 0.83 and
/// 0.44 s with ranges of 2^21 slots, 0.87-0.93 and 0.38 s with 2^20, 0.99-1.03 and 0.37 s
/// with 2^19 (more runs a block to copy).
pub(crate) const RANGE_SLOTS: usize = 1 << 21;

/// Assembles the block arrays of `src`'s documents laid out in `order`; `term_max[t]` is
/// the largest weight of term `t` and `df[t]` its document frequency (their length: one
/// more than the largest term used).
pub(crate) fn assemble_blocks(
    src: &dyn DocSource,
    order: &[u32],
    term_max: &[f32],
    df: &[u32],
    options: &AssembleOptions<'_>,
) -> Result<BlockOutput> {
    debug_assert_eq!(df.len(), term_max.len(), "one statistic a term");
    let num_blocks = src.len().div_ceil(options.block_size);
    match options.dir {
        Some(dir) => {
            let starts = term_ranges(df, num_blocks, options.range_slots, usize::MAX);
            let mut slots = SlotStore::files(dir, &starts)?;
            let out = assemble_streaming(src, order, term_max, &starts, &mut slots, options);
            if out.is_err() {
                slots.remove();
            }
            out
        }
        None => {
            let budget = memory_range_budget(options.range_slots, num_blocks);
            let starts = term_ranges(df, num_blocks, budget, RANGE_TERMS);
            assemble_in_memory(src, order, term_max, df, &starts, options.block_size)
        }
    }
}

/// The block arrays written to their files in `options.dir` as they are made, the slots
/// spilled to `slots` on the way (see the module documentation).
fn assemble_streaming(
    src: &dyn DocSource,
    order: &[u32],
    term_max: &[f32],
    starts: &[usize],
    slots: &mut SlotStore,
    options: &AssembleOptions<'_>,
) -> Result<BlockOutput> {
    use rayon::prelude::*;
    let n = src.len();
    let bs = options.block_size;
    let num_blocks = n.div_ceil(bs);
    let dir = options.dir;
    let stored_terms = term_max.len();
    let bound_scales: Vec<f32> = term_max.iter().map(|&m| scale_for(m)).collect();
    let term_bits = usize::BITS - stored_terms.saturating_sub(1).leading_zeros();
    let mut entry_docs = Sink::<u8>::new(dir, FileId::BlockEntryDocs.name())?;
    let mut entry_values = Sink::<f32>::new(dir, FileId::BlockEntryValues.name())?;
    let mut block_offsets = Vec::with_capacity(num_blocks + 1);
    block_offsets.push(0u64);
    let mut slot_counts = vec![0u64; stored_terms + 1];
    let mut entries = 0u64;
    // Batch i + 1 is assembled (in parallel) while batch i is appended to the outputs.
    let compute = |batch: usize| -> Result<Vec<Block>> {
        (batch..(batch + BATCH_BLOCKS).min(num_blocks))
            .into_par_iter()
            .map_init(BlockScratch::default, |scratch, b| -> Result<Block> {
                let mut out = Block::default();
                let len = block_keys(
                    src,
                    &order[b * bs..((b + 1) * bs).min(n)],
                    scratch,
                    term_bits,
                )?;
                out.docs.resize(len, 0);
                out.values.resize(len, 0.0);
                emit_block(
                    &scratch.keys,
                    &bound_scales,
                    &mut out.docs,
                    &mut out.values,
                    &mut out.slots,
                );
                out.slots.cut_at(starts);
                Ok(out)
            })
            .collect::<Result<_>>()
    };
    let mut append = |blocks: Vec<Block>| -> Result<()> {
        for block in blocks {
            entry_docs.extend(&block.docs)?;
            entry_values.extend(&block.values)?;
            for &t in block.slots.terms() {
                slot_counts[t as usize + 1] += 1;
            }
            slots.push_block(block_offsets.len() - 1, entries, &block.slots);
            entries += block.docs.len() as u64;
            block_offsets.push(entries);
        }
        slots.end_batch()
    };
    pipelined((0..num_blocks).step_by(BATCH_BLOCKS), compute, &mut append)?;
    let entry_docs = entry_docs.finish()?;
    let entry_values = entry_values.finish()?;

    // The term-major block lists by a counting sort of the slots (which are in block
    // order, so every term's blocks stay ascending): per term, its blocks, their maxima's
    // codes, their first entries and lengths; one range of terms at a time, from its own
    // slots.
    let mut bound_offsets = slot_counts;
    for t in 0..stored_terms {
        bound_offsets[t + 1] += bound_offsets[t];
    }
    let [bound_blocks, bound_codes, bound_starts, bound_lengths] =
        lists_from_spills(&mut slots.files, &bound_offsets, starts, dir)?;
    Ok(BlockOutput {
        block_offsets,
        entry_docs,
        entry_values,
        bound_offsets,
        bound_blocks,
        bound_codes,
        bound_starts,
        bound_lengths,
        bound_scales,
    })
}

/// Makes the work of each of `items` with `make` while the work made for the item before
/// is handed to `consume`, the two in parallel: `consume` sees every item's work, in order,
/// one step behind.
fn pipelined<T: Send>(
    items: impl Iterator<Item = usize>,
    make: impl Fn(usize) -> Result<T> + Sync,
    mut consume: impl FnMut(T) -> Result<()> + Send,
) -> Result<()> {
    let mut pending: Option<T> = None;
    for item in items.map(Some).chain([None]) {
        let previous = pending.take();
        let (next, consumed) = rayon::join(
            || item.map(&make).transpose(),
            || previous.map_or(Ok(()), &mut consume),
        );
        consumed?;
        pending = next?;
    }
    Ok(())
}

/// The term-major block lists: per term (`bound_offsets`), its blocks ascending, their
/// bound codes, first entries and lengths (entries less one).
struct Lists {
    blocks: Vec<u32>,
    codes: Vec<u8>,
    starts: Vec<u32>,
    lengths: Vec<u8>,
}

impl Lists {
    /// `len` zeroed entries of each list.
    fn zeroed(len: usize) -> Self {
        Lists {
            blocks: zeroed(len),
            codes: zeroed(len),
            starts: zeroed(len),
            lengths: zeroed(len),
        }
    }

    /// The four lists, to be written.
    fn parts(&mut self) -> ListParts<'_> {
        (
            &mut self.blocks,
            &mut self.codes,
            &mut self.starts,
            &mut self.lengths,
        )
    }

    /// The lists from the slots by range of terms, and every term's list offset (one
    /// more than the terms, the last the number of (term, block) pairs). The ranges are filled in
    /// parallel, each in its own part of the output: its slots are counted per term,
    /// then read in block order and written at their term's next place.
    fn from_ranges(by_range: &RangeSlots, starts: &[usize]) -> (Self, Vec<u64>) {
        use rayon::prelude::*;
        let ranges = by_range.ranges();
        let stored_terms = starts[ranges];
        let total: usize = by_range.filled.iter().sum();
        let mut lists = Lists::zeroed(total);
        let mut bound_offsets = vec![0u64; stored_terms + 1];
        bound_offsets[stored_terms] = total as u64;
        let mut bases = Vec::with_capacity(ranges);
        let mut base = 0;
        for &f in &by_range.filled {
            bases.push(base);
            base += f;
        }
        let lens = || by_range.filled.iter().copied();
        let blocks = split_lengths(&mut lists.blocks, lens());
        let codes = split_lengths(&mut lists.codes, lens());
        let entries = split_lengths(&mut lists.starts, lens());
        let lengths = split_lengths(&mut lists.lengths, lens());
        let offsets = split_lengths(
            &mut bound_offsets[..stored_terms],
            starts.windows(2).map(|w| w[1] - w[0]),
        );
        let parts = blocks
            .into_iter()
            .zip(codes)
            .zip(entries)
            .zip(lengths)
            .map(|(((b, c), e), l)| (b, c, e, l));
        (0..ranges)
            .into_par_iter()
            .zip(parts.collect::<Vec<ListParts<'_>>>())
            .zip(offsets)
            .for_each(|((r, out), offsets)| {
                let len = by_range.filled[r];
                let terms = &by_range.terms[r][..len];
                // Per term of the range, its slots, then the next place of its list.
                let mut fill = vec![0usize; offsets.len()];
                for &t in terms {
                    fill[t as usize] += 1;
                }
                let mut at = 0;
                for (f, o) in fill.iter_mut().zip(offsets.iter_mut()) {
                    let here = *f;
                    *f = at;
                    *o = (bases[r] + at) as u64;
                    at += here;
                }
                let slots = RangeRuns {
                    runs: &by_range.runs[r],
                    terms,
                    codes: &by_range.codes[r][..len],
                    lengths: &by_range.lengths[r][..len],
                };
                place_slots(slots, &mut fill, out);
            });
        (lists, bound_offsets)
    }
}

/// Writes one range's spilled slots (`run`) at their terms' next places in the range's
/// part of the lists (blocks, codes, first entries, lengths); `t0` is the range's first
/// term, and `fill` holds each term's next place and moves on. `false` when a term, a
/// place or an entry is out of range (a damaged spill), nothing more written.
fn fill_runs(run: &SlotRun, t0: u64, fill: &mut [usize], out: ListParts<'_>) -> bool {
    let (out_blocks, out_codes, out_starts, out_lengths) = out;
    let mut i = 0;
    for &[block, first, count] in &run.runs {
        let mut entry = u64::from(first);
        for _ in 0..count {
            let slot = (run.terms.get(i), run.codes.get(i), run.lengths.get(i));
            let (Some(&t), Some(&code), Some(&len)) = slot else {
                return false;
            };
            let place = u64::from(t)
                .checked_sub(t0)
                .and_then(|t| fill.get_mut(usize::try_from(t).ok()?));
            let Some(f) = place else {
                return false;
            };
            let at = *f;
            *f += 1;
            if at >= out_blocks.len() || entry > u64::from(u32::MAX) {
                return false;
            }
            out_blocks[at] = block;
            out_codes[at] = code;
            out_starts[at] = entry as u32;
            out_lengths[at] = len;
            entry += u64::from(len) + 1;
            i += 1;
        }
    }
    true
}

/// The term-major block lists from the spilled slots, range by range (a few in
/// parallel), each range's file read once and removed, into files in `dir`.
fn lists_from_spills(
    files: &mut [(BufWriter<File>, PathBuf)],
    bound_offsets: &[u64],
    starts: &[usize],
    dir: Option<&Path>,
) -> Result<[Output; 4]> {
    use rayon::prelude::*;
    for (out, path) in files.iter_mut() {
        out.flush().map_err(|e| IndexError::io(&*path, e))?;
    }
    let mut bound_blocks = Sink::<u32>::new(dir, FileId::BoundBlocks.name())?;
    let mut bound_codes = Sink::<u8>::new(dir, FileId::BoundCodes.name())?;
    let mut bound_starts = Sink::<u32>::new(dir, FileId::BoundStarts.name())?;
    let mut bound_lengths = Sink::<u8>::new(dir, FileId::BoundLengths.name())?;
    let files = &*files;
    let fill_range = |r: usize| -> Result<Lists> {
        let (t0, t1) = (starts[r], starts[r + 1]);
        let base = bound_offsets[t0];
        let mut lists = Lists::zeroed((bound_offsets[t1] - base) as usize);
        let mut fill: Vec<usize> = bound_offsets[t0..t1]
            .iter()
            .map(|&o| (o - base) as usize)
            .collect();
        let path = &files[r].1;
        scan_spill(path, |run| {
            if fill_runs(run, t0 as u64, &mut fill, lists.parts()) {
                Ok(())
            } else {
                Err(IndexError::corrupt(
                    path,
                    "slot list holds a term, slot or entry out of place",
                ))
            }
        })?;
        Ok(lists)
    };
    let ranges = starts.len() - 1;
    let group = rayon::current_num_threads().max(1);
    let fill_group = |first: usize| -> Result<Vec<_>> {
        (first..(first + group).min(ranges))
            .into_par_iter()
            .map(fill_range)
            .collect()
    };
    // The four lists of a range go to their files at once (each file is written in
    // order, with its own checksum).
    let (out_blocks, out_codes, out_starts, out_lengths) = (
        &mut bound_blocks,
        &mut bound_codes,
        &mut bound_starts,
        &mut bound_lengths,
    );
    let mut write_group = |filled: Vec<Lists>| -> Result<()> {
        for Lists {
            blocks,
            codes,
            starts: entries,
            lengths,
        } in filled
        {
            let ((a, b), (c, d)) = rayon::join(
                || rayon::join(|| out_blocks.extend(&blocks), || out_codes.extend(&codes)),
                || {
                    rayon::join(
                        || out_starts.extend(&entries),
                        || out_lengths.extend(&lengths),
                    )
                },
            );
            a.and(b).and(c).and(d)?;
        }
        Ok(())
    };
    // Group i + 1 is filled (in parallel) while group i is written.
    pipelined((0..ranges).step_by(group), fill_group, &mut write_group)?;
    Ok([
        bound_blocks.finish()?,
        bound_codes.finish()?,
        bound_starts.finish()?,
        bound_lengths.finish()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges cover every term once, in order, each within its slot budget (or holding a
    /// single term that is over it) and its term limit.
    #[test]
    fn term_ranges_keep_to_their_budget_and_term_limit() {
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        let df: Vec<u32> = (0..300_000)
            .map(|t| match t % 7 {
                0 => 0,
                1 => (next() % 5_000) as u32,
                _ => (next() % 40) as u32,
            })
            .collect();
        let num_blocks = 1_000;
        for (budget, max_terms) in [
            (1usize, usize::MAX),
            (3_000, usize::MAX),
            (usize::MAX, RANGE_TERMS),
            (50_000, RANGE_TERMS),
            (usize::MAX, usize::MAX),
        ] {
            let starts = term_ranges(&df, num_blocks, budget, max_terms);
            assert_eq!((starts[0], *starts.last().unwrap()), (0, df.len()));
            for w in starts.windows(2) {
                assert!(w[0] < w[1], "a range holds at least one term");
                assert!(w[1] - w[0] <= max_terms, "{} terms", w[1] - w[0]);
                let slots: usize = df[w[0]..w[1]]
                    .iter()
                    .map(|&f| (f as usize).min(num_blocks))
                    .sum();
                // Over the budget only by holding one term that is over it alone.
                let holding = df[w[0]..w[1]].iter().filter(|&&f| f > 0).count();
                assert!(slots <= budget || holding == 1, "{slots} slots");
            }
        }
        // Nothing but the term limit cuts a vocabulary of unused terms.
        assert_eq!(
            term_ranges(&[0; 200_000], 10, usize::MAX, RANGE_TERMS),
            vec![0, 65_536, 131_072, 196_608, 200_000]
        );
        assert_eq!(term_ranges(&[], 10, 5, RANGE_TERMS), vec![0, 0]);
    }

    /// An in-memory build's ranges keep the budget asked for, up to collections of more
    /// than 524,288 blocks, which get at least 4 slots a block.
    #[test]
    fn memory_range_budget_grows_only_for_very_large_collections() {
        assert_eq!(memory_range_budget(7, 1_050), 7);
        assert_eq!(memory_range_budget(RANGE_SLOTS, 31_250), RANGE_SLOTS);
        assert_eq!(memory_range_budget(RANGE_SLOTS, 1 << 19), RANGE_SLOTS);
        assert_eq!(
            memory_range_budget(RANGE_SLOTS, (1 << 19) + 1),
            RANGE_SLOTS + 4
        );
        assert_eq!(memory_range_budget(RANGE_SLOTS, 4_000_000), 16_000_000);
        assert_eq!(memory_range_budget(usize::MAX, 4_000_000), usize::MAX);
    }

    #[test]
    fn a_block_is_emitted_as_its_keys_say() {
        // Terms 3, 5 and 9 over four positions, weights with zeros and -0.0 among them:
        // the slots' maxima come from the largest weight whatever the sign of a zero.
        let postings: [(u32, u8, f32); 9] = [
            (3, 0, -0.0),
            (3, 1, 0.75),
            (3, 3, 0.0),
            (5, 2, -0.0),
            (5, 3, 0.0),
            (9, 0, 2.5),
            (9, 1, -0.0),
            (9, 2, 4.0),
            (9, 3, 1.0),
        ];
        let keys: Vec<u64> = postings
            .iter()
            .map(|&(t, pos, w)| {
                (u64::from(t) << TERM_SHIFT) | (u64::from(pos) << 32) | u64::from(w.to_bits())
            })
            .collect();
        let scales: Vec<f32> = (0..10).map(|t| 0.5 + t as f32 * 0.01).collect();
        let (mut docs, mut values) = (vec![0u8; keys.len()], vec![0f32; keys.len()]);
        let mut out = BlockSlots::default();
        // Buffers left from a larger block must not leak into this one.
        emit_block(
            &[(1u64 << TERM_SHIFT) | 0x4000_0000; 20],
            &scales,
            &mut [0u8; 20],
            &mut [0f32; 20],
            &mut out,
        );
        emit_block(&keys, &scales, &mut docs, &mut values, &mut out);
        assert_eq!(docs, postings.map(|p| p.1));
        assert_eq!(
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            postings.map(|p| p.2.to_bits())
        );
        assert_eq!(out.terms(), [3, 5, 9]);
        assert_eq!(out.ends(), [3, 5, 9]);
        assert_eq!(out.lengths(), [2, 1, 3], "entries less one");
        let maxima = [0.75f32, 0.0, 4.0];
        let codes: Vec<u8> = [3usize, 5, 9]
            .iter()
            .zip(maxima)
            .map(|(&t, m)| crate::quantize::encode_up(m, scales[t]))
            .collect();
        assert_eq!(out.codes(), codes);
        assert_eq!(codes[1], 0, "a slot of zeros has no bound");
    }

    #[test]
    #[should_panic(expected = "write past the end")]
    fn a_shared_slice_refuses_a_write_past_its_end() {
        let mut buf = [0u16; 4];
        let shared = SharedSlice::new(&mut buf);
        // SAFETY: one thread.
        unsafe { shared.write(2, [1u16, 2, 3].into_iter()) };
    }

    #[test]
    fn a_shared_slice_writes_where_it_is_told() {
        let mut buf = [0u16; 6];
        {
            let shared = SharedSlice::new(&mut buf);
            // SAFETY: one thread.
            unsafe {
                shared.write(1, [1u16, 2].into_iter());
                shared.write(4, [9u16, 8].into_iter());
                shared.write(6, std::iter::empty());
            }
        }
        assert_eq!(buf, [0, 1, 2, 0, 9, 8]);
    }
}
