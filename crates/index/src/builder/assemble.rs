//! The block arrays of the format from documents in their block order: one parallel pass
//! over the blocks (each block's postings sorted by term into its (block, term) slots and
//! entries, appended to the output arrays in block order, each slot also filed under its
//! range of terms), then the term-major bound lists by a counting sort of each range's
//! slots, range by range, in a region of memory small enough to stay in cache.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::builder::sink::{Output, Sink};
use crate::builder::source::{DocBuf, DocSource};
use crate::error::{IndexError, Result};
use crate::format::{spill_name, FileId};
use crate::quantize::{encode_up, scale_for};

/// Blocks assembled in parallel before their output is appended.
const BATCH_BLOCKS: usize = 1024;

/// The block arrays of one segment.
pub(crate) struct BlockOutput {
    pub block_term_offsets: Vec<u64>,
    pub entry_offsets: Output,
    pub entry_docs: Output,
    pub entry_values: Output,
    pub bound_offsets: Vec<u64>,
    pub bound_blocks: Output,
    pub bound_codes: Output,
    pub bound_scales: Vec<f32>,
    pub bound_slots: Output,
}

/// The entries and slots of one block.
#[derive(Default)]
struct Block {
    docs: Vec<u8>,
    values: Vec<f32>,
    slot_terms: Vec<u32>,
    slot_codes: Vec<u8>,
    /// Entries of the block before the end of each slot.
    slot_ends: Vec<u32>,
}

/// Slots of one range of terms, in block order: term, slot number and bound code.
#[derive(Default)]
struct SlotRun {
    terms: Vec<u32>,
    slots: Vec<u32>,
    codes: Vec<u8>,
}

impl SlotRun {
    fn clear(&mut self) {
        self.terms.clear();
        self.slots.clear();
        self.codes.clear();
    }
}

/// The (block, term) slots, grouped by ranges of terms so that each range's term-major
/// lists are filled from its own slots, in a region of memory small enough to stay in
/// cache: in memory, or spilled to one file per range beside the index files.
enum SlotStore {
    Memory(Vec<SlotRun>),
    /// Per range, runs of: length (u32), terms, slot numbers (u32 each), codes (u8),
    /// little-endian.
    Files(Vec<(BufWriter<File>, PathBuf)>),
}

impl SlotStore {
    /// Appends one run of slots to range `r`.
    fn push(&mut self, r: usize, run: &SlotRun) -> Result<()> {
        match self {
            SlotStore::Memory(runs) => {
                let to = &mut runs[r];
                to.terms.extend_from_slice(&run.terms);
                to.slots.extend_from_slice(&run.slots);
                to.codes.extend_from_slice(&run.codes);
                Ok(())
            }
            SlotStore::Files(files) => {
                let (out, path) = &mut files[r];
                let len = run.terms.len() as u32;
                out.write_all(&len.to_le_bytes())
                    .and_then(|_| out.write_all(bytemuck::cast_slice(&run.terms)))
                    .and_then(|_| out.write_all(bytemuck::cast_slice(&run.slots)))
                    .and_then(|_| out.write_all(&run.codes))
                    .map_err(|e| IndexError::io(&*path, e))
            }
        }
    }

    /// Flushes the spill files (before [`Self::scan`]).
    fn flush(&mut self) -> Result<()> {
        if let SlotStore::Files(files) = self {
            for (out, path) in files.iter_mut() {
                out.flush().map_err(|e| IndexError::io(&*path, e))?;
            }
        }
        Ok(())
    }

    /// Calls `f` on the runs of range `r`, in slot order (a spilled range's file is
    /// removed once read). The spill files must be flushed.
    fn scan(&self, r: usize, mut f: impl FnMut(&SlotRun)) -> Result<()> {
        match self {
            SlotStore::Memory(runs) => {
                f(&runs[r]);
                Ok(())
            }
            SlotStore::Files(files) => {
                let path = &files[r].1;
                let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
                let mut reader = BufReader::with_capacity(1 << 20, file);
                let mut run = SlotRun::default();
                let io = |e| IndexError::io(path, e);
                let short = || IndexError::corrupt(path, "slot list cut short");
                loop {
                    let mut len = [0u8; 4];
                    match read_full(&mut reader, &mut len).map_err(io)? {
                        0 => break,
                        4 => {}
                        _ => return Err(short()),
                    }
                    let len = u32::from_le_bytes(len) as usize;
                    run.terms.resize(len, 0);
                    run.slots.resize(len, 0);
                    run.codes.resize(len, 0);
                    reader
                        .read_exact(bytemuck::cast_slice_mut(&mut run.terms))
                        .and_then(|_| reader.read_exact(bytemuck::cast_slice_mut(&mut run.slots)))
                        .and_then(|_| reader.read_exact(&mut run.codes))
                        .map_err(|e| match e.kind() {
                            std::io::ErrorKind::UnexpectedEof => short(),
                            _ => io(e),
                        })?;
                    f(&run);
                }
                std::fs::remove_file(path).map_err(|e| IndexError::io(path, e))
            }
        }
    }

    /// Removes the spill files left (after an error).
    fn remove(&mut self) {
        if let SlotStore::Files(files) = self {
            for (_, path) in files.iter() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Ranges of terms (`starts[r]..starts[r + 1]`) of at most `budget` slots each (at least
/// one term), from an upper bound of every term's slots: its document frequency, at most
/// one slot a block.
fn term_ranges(df: &[u32], num_blocks: usize, budget: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let mut held = 0usize;
    for (t, &f) in df.iter().enumerate() {
        let slots = (f as usize).min(num_blocks);
        if held > 0 && held + slots > budget {
            starts.push(t);
            held = 0;
        }
        held += slots;
    }
    starts.push(df.len());
    starts
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
    /// `Some(dir)`: the large arrays are written to their files in `dir` as they grow and
    /// the slots are spilled there ([`spill_name`]); `None`: all in memory.
    pub dir: Option<&'a Path>,
    /// At most this many slots per range of terms (at least one term a range), whose
    /// term-major lists are filled together ([`RANGE_SLOTS`]).
    pub range_slots: usize,
}

/// Slots of one range of terms (whose lists are filled together: 9 bytes a slot, 18 MiB,
/// written at random places, so it pays to keep them within the caches).
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
    let starts = term_ranges(
        df,
        src.len().div_ceil(options.block_size),
        options.range_slots,
    );
    let ranges = starts.len() - 1;
    let mut slots = match options.dir {
        Some(dir) => {
            let mut files = Vec::with_capacity(ranges);
            for r in 0..ranges {
                let path = dir.join(spill_name(r));
                let file = File::create(&path).map_err(|e| IndexError::io(&path, e));
                let file = match file {
                    Ok(f) => f,
                    Err(e) => {
                        SlotStore::Files(files).remove();
                        return Err(e);
                    }
                };
                files.push((BufWriter::with_capacity(1 << 16, file), path));
            }
            SlotStore::Files(files)
        }
        None => SlotStore::Memory((0..ranges).map(|_| SlotRun::default()).collect()),
    };
    let out = assemble_into(src, order, term_max, &starts, &mut slots, options);
    if out.is_err() {
        slots.remove();
    }
    out
}

fn assemble_into(
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
    let mut entry_offsets = Sink::<u32>::new(dir, FileId::BlockEntryOffsets.name())?;
    let mut entry_docs = Sink::<u8>::new(dir, FileId::BlockEntryDocs.name())?;
    let mut entry_values = Sink::<f32>::new(dir, FileId::BlockEntryValues.name())?;
    entry_offsets.extend(&[0])?;
    let ranges = starts.len() - 1;
    let mut range_of = vec![0u32; stored_terms];
    for r in 0..ranges {
        range_of[starts[r]..starts[r + 1]].fill(r as u32);
    }
    let mut runs: Vec<SlotRun> = (0..ranges).map(|_| SlotRun::default()).collect();
    let mut block_term_offsets = Vec::with_capacity(num_blocks + 1);
    block_term_offsets.push(0u64);
    let mut slot_counts = vec![0u64; stored_terms + 1];
    let (mut entries, mut num_slots) = (0u64, 0u64);
    let mut offsets_buf: Vec<u32> = Vec::new();
    // Batch i + 1 is assembled (in parallel) while batch i is appended to the outputs.
    let compute = |batch: usize| -> Result<Vec<Block>> {
        (batch..(batch + BATCH_BLOCKS).min(num_blocks))
            .into_par_iter()
            .map_init(
                || (DocBuf::default(), Vec::<u64>::new()),
                |(buf, keys), b| -> Result<Block> {
                    keys.clear();
                    let first = b * bs;
                    for (slot, &doc) in order[first..(first + bs).min(n)].iter().enumerate() {
                        let doc = doc as usize;
                        let chunk = src.chunk(doc, doc + 1, buf)?;
                        let (t, v) = chunk.doc(doc);
                        // term (< 2^24) | position in the block (< 256) | weight bits:
                        // sorting the keys sorts by term, then position.
                        keys.extend(t.iter().zip(v).map(|(&t, &v)| {
                            ((t as u64) << 40) | ((slot as u64) << 32) | v.to_bits() as u64
                        }));
                    }
                    keys.sort_unstable();
                    let mut out = Block {
                        docs: Vec::with_capacity(keys.len()),
                        values: Vec::with_capacity(keys.len()),
                        ..Block::default()
                    };
                    let mut i = 0;
                    while i < keys.len() {
                        let term = (keys[i] >> 40) as u32;
                        let mut max = 0.0f32;
                        while i < keys.len() && (keys[i] >> 40) as u32 == term {
                            let w = f32::from_bits(keys[i] as u32);
                            out.docs.push((keys[i] >> 32) as u8);
                            out.values.push(w);
                            max = max.max(w);
                            i += 1;
                        }
                        out.slot_terms.push(term);
                        out.slot_codes
                            .push(encode_up(max, bound_scales[term as usize]));
                        out.slot_ends.push(out.docs.len() as u32);
                    }
                    Ok(out)
                },
            )
            .collect::<Result<_>>()
    };
    let mut append = |blocks: Vec<Block>| -> Result<()> {
        runs.iter_mut().for_each(SlotRun::clear);
        for block in blocks {
            offsets_buf.clear();
            offsets_buf.extend(block.slot_ends.iter().map(|&e| entries as u32 + e));
            entry_offsets.extend(&offsets_buf)?;
            entry_docs.extend(&block.docs)?;
            entry_values.extend(&block.values)?;
            for (i, (&t, &c)) in block.slot_terms.iter().zip(&block.slot_codes).enumerate() {
                slot_counts[t as usize + 1] += 1;
                let run = &mut runs[range_of[t as usize] as usize];
                run.terms.push(t);
                run.slots.push((num_slots + i as u64) as u32);
                run.codes.push(c);
            }
            entries += block.docs.len() as u64;
            num_slots += block.slot_terms.len() as u64;
            block_term_offsets.push(num_slots);
        }
        for (r, run) in runs.iter().enumerate() {
            if !run.terms.is_empty() {
                slots.push(r, run)?;
            }
        }
        Ok(())
    };
    let mut pending: Option<Vec<Block>> = None;
    for batch in (0..num_blocks)
        .step_by(BATCH_BLOCKS)
        .map(Some)
        .chain([None])
    {
        let previous = pending.take();
        let (next, appended) = rayon::join(
            || batch.map(compute).transpose(),
            || previous.map_or(Ok(()), &mut append),
        );
        appended?;
        pending = next?;
    }
    drop(runs);
    let entry_offsets = entry_offsets.finish()?;
    let entry_docs = entry_docs.finish()?;
    let entry_values = entry_values.finish()?;

    // The term-major block lists by a counting sort of the slots (which are in block
    // order, so every term's blocks stay ascending): per term, its blocks, their maxima's
    // codes and their slots; one range of terms at a time, from its own slots.
    let mut bound_offsets = slot_counts;
    for t in 0..stored_terms {
        bound_offsets[t + 1] += bound_offsets[t];
    }
    let mut bound_blocks = Sink::<u32>::new(dir, FileId::BoundBlocks.name())?;
    let mut bound_codes = Sink::<u8>::new(dir, FileId::BoundCodes.name())?;
    let mut bound_slots = Sink::<u32>::new(dir, FileId::BoundSlots.name())?;
    // Ranges are filled in parallel, a few at a time, and appended in order.
    slots.flush()?;
    let slots = &*slots;
    let fill_range = |r: usize| -> Result<(Vec<u32>, Vec<u8>, Vec<u32>)> {
        let (t0, t1) = (starts[r], starts[r + 1]);
        let base = bound_offsets[t0];
        let len = (bound_offsets[t1] - base) as usize;
        let mut blocks = vec![0u32; len];
        let mut codes = vec![0u8; len];
        let mut slot_ids = vec![0u32; len];
        let mut fill: Vec<u64> = bound_offsets[t0..t1].iter().map(|&o| o - base).collect();
        // The range's slots ascend: their blocks follow from the block offsets.
        let mut block = 0usize;
        slots.scan(r, |run| {
            for i in 0..run.terms.len() {
                let slot = run.slots[i] as u64;
                while block_term_offsets[block + 1] <= slot {
                    block += 1;
                }
                let t = run.terms[i] as usize - t0;
                let at = fill[t] as usize;
                fill[t] += 1;
                blocks[at] = block as u32;
                codes[at] = run.codes[i];
                slot_ids[at] = run.slots[i];
            }
        })?;
        Ok((blocks, codes, slot_ids))
    };
    let group = rayon::current_num_threads().max(1);
    for first in (0..ranges).step_by(group) {
        let filled: Vec<_> = (first..(first + group).min(ranges))
            .into_par_iter()
            .map(fill_range)
            .collect::<Result<_>>()?;
        for (blocks, codes, slot_ids) in filled {
            bound_blocks.extend(&blocks)?;
            bound_codes.extend(&codes)?;
            bound_slots.extend(&slot_ids)?;
        }
    }
    Ok(BlockOutput {
        block_term_offsets,
        entry_offsets,
        entry_docs,
        entry_values,
        bound_offsets,
        bound_blocks: bound_blocks.finish()?,
        bound_codes: bound_codes.finish()?,
        bound_scales,
        bound_slots: bound_slots.finish()?,
    })
}
