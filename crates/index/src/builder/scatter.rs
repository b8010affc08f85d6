//! The last step of an in-memory build's term-major lists (`builder::assemble`): one
//! range of terms' slots, read in block order, written at their terms' places.
//!
//! A range spans hundreds of terms, each with its own place to write next in each of the
//! four arrays (block, bound code, first entry, entries less one), so a slot's writes land
//! in hundreds of streams at once, more than the caches keep open: each new line of a
//! stream was read from memory before it was written. On the topical 1M collection of
//! BENCHMARKS.md that made about 7 of the 12 ns a slot took (measured by sending every
//! write to a few pages instead). Here each term gathers its next 16 block numbers and 16
//! first entries in a cache line of its own, and a full line is written out with
//! non-temporal stores, which need no read of the line (software write-combining, as radix
//! sorts do); lines a term shares with its neighbours, and every bound code and length (a
//! byte a slot: a line holds 64 of them, so their streams cost little), are written as
//! before.

/// 4-byte values in a line of 64 bytes.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const LINE: usize = 16;

/// A term's next [`LINE`] values, in the lanes of their places' line.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u32; LINE]);

/// The outputs of [`place_slots`]: the range's part of the lists' blocks, codes, first
/// entries and lengths (entries less one), of equal lengths.
pub(super) type ListParts<'a> = (&'a mut [u32], &'a mut [u8], &'a mut [u32], &'a mut [u8]);

/// One range's slots in block order: `runs` are (block, first entry, number of slots),
/// and per slot its term less the range's first, its bound code and its number of entries
/// less one (a slot's entries follow the previous slot's in its run).
#[derive(Clone, Copy)]
pub(super) struct RangeRuns<'a> {
    pub runs: &'a [[u32; 3]],
    pub terms: &'a [u16],
    pub codes: &'a [u8],
    pub lengths: &'a [u8],
}

/// Writes one range's slots at their terms' next places in `out`; `fill` holds each term's
/// next place and moves on. Panics when a term or a place is out of range (the caller made
/// them: an in-memory build's slots).
pub(super) fn place_slots(slots: RangeRuns<'_>, fill: &mut [usize], out: ListParts<'_>) {
    let (blocks, starts) = (&out.0, &out.2);
    assert!(
        blocks.len() == out.1.len() && starts.len() == out.1.len() && out.3.len() == out.1.len(),
        "one length for the four parts"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let lane_of = |p: *const u32| (p as usize / 4) % LINE;
        let lane = lane_of(blocks.as_ptr());
        // Lines pay once a term has on average a line of slots to fill (a sparse range's
        // buffers would cost more than its writes); both arrays must start at the same lane,
        // so that one lane serves both.
        if slots.terms.len() >= LINE * fill.len() && lane == lane_of(starts.as_ptr()) {
            place_through_lines(slots, fill, out, lane);
            return;
        }
    }
    place_directly(slots, fill, out);
}

/// Calls `place(at, term, block, first entry, code, length)` for each slot of `slots` (see
/// [`place_slots`]) in block order, `at` its term's next place (`fill` moved on).
#[inline(always)]
fn for_each_slot(
    slots: RangeRuns<'_>,
    fill: &mut [usize],
    mut place: impl FnMut(usize, usize, u32, u32, u8, u8),
) {
    let RangeRuns {
        runs,
        terms,
        codes,
        lengths,
    } = slots;
    let mut i = 0;
    for &[block, first, count] in runs {
        let count = count as usize;
        let run = terms[i..i + count]
            .iter()
            .zip(&codes[i..i + count])
            .zip(&lengths[i..i + count]);
        let mut entry = first;
        for ((&t, &code), &len) in run {
            let t = t as usize;
            let at = fill[t];
            fill[t] = at + 1;
            place(at, t, block, entry, code, len);
            entry += u32::from(len) + 1;
        }
        i += count;
    }
}

/// [`place_slots`], each value written at its place.
fn place_directly(
    slots: RangeRuns<'_>,
    fill: &mut [usize],
    (blocks, out_codes, starts, out_lengths): ListParts<'_>,
) {
    for_each_slot(slots, fill, |at, _, block, entry, code, len| {
        blocks[at] = block;
        out_codes[at] = code;
        starts[at] = entry;
        out_lengths[at] = len;
    });
}

/// [`place_slots`] through a [`Line`] a term for blocks and one for first entries; `lane`
/// is the lane of the outputs' first place (the address's place in its line).
#[cfg(target_arch = "x86_64")]
fn place_through_lines(
    slots: RangeRuns<'_>,
    fill: &mut [usize],
    (blocks, out_codes, starts, out_lengths): ListParts<'_>,
    lane: usize,
) {
    let firsts = fill.to_vec();
    let mut block_lines = vec![Line([0; LINE]); fill.len()];
    let mut start_lines = vec![Line([0; LINE]); fill.len()];
    for_each_slot(slots, fill, |at, t, block, entry, code, len| {
        // Checks `at` against the parts' common length, before any write below.
        out_codes[at] = code;
        out_lengths[at] = len;
        let l = (at + lane) % LINE;
        block_lines[t].0[l] = block;
        start_lines[t].0[l] = entry;
        if l == LINE - 1 {
            // The line ends at `at`; its places from `from` on are the term's.
            let from = (at + 1).saturating_sub(LINE).max(firsts[t]);
            if from + LINE == at + 1 {
                // SAFETY: places `from..=at` are in bounds (`at` was checked above), and
                // `from`'s address is at the start of a line (its lane is 0), as the
                // stores need.
                unsafe {
                    stream_line(blocks.as_mut_ptr().add(from), &block_lines[t]);
                    stream_line(starts.as_mut_ptr().add(from), &start_lines[t]);
                }
            } else {
                let lanes = LINE - (at + 1 - from)..LINE;
                blocks[from..=at].copy_from_slice(&block_lines[t].0[lanes.clone()]);
                starts[from..=at].copy_from_slice(&start_lines[t].0[lanes]);
            }
        }
    });
    // Each term's last line, where the term ended inside it.
    for (t, (&start, &end)) in firsts.iter().zip(fill.iter()).enumerate() {
        let open = (end + lane) % LINE;
        if end == start || open == 0 {
            continue;
        }
        let from = start.max(end.saturating_sub(open));
        let lanes = open - (end - from)..open;
        blocks[from..end].copy_from_slice(&block_lines[t].0[lanes.clone()]);
        starts[from..end].copy_from_slice(&start_lines[t].0[lanes]);
    }
    // Non-temporal stores are ordered by a fence, not by the locked instructions that hand
    // the lists to the next reader.
    // SAFETY: SSE2 is part of every x86_64 CPU.
    unsafe { std::arch::x86_64::_mm_sfence() };
}

/// Writes `line` at `dst` with non-temporal stores.
///
/// # Safety
/// `dst` is 64-byte aligned and the 16 values from it are writable.
#[cfg(target_arch = "x86_64")]
unsafe fn stream_line(dst: *mut u32, line: &Line) {
    use std::arch::x86_64::{__m128i, _mm_load_si128, _mm_stream_si128};
    let (src, dst) = (line.0.as_ptr().cast::<__m128i>(), dst.cast::<__m128i>());
    for q in 0..4 {
        // SAFETY: `line` is 64-byte aligned, `dst` by the caller's promise; SSE2 is part of
        // every x86_64 CPU.
        unsafe { _mm_stream_si128(dst.add(q), _mm_load_si128(src.add(q))) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift;

    /// Runs, terms and lengths of slots (see [`RangeRuns`]).
    type Runs = (Vec<[u32; 3]>, Vec<u16>, Vec<u8>);

    /// Runs of random slots over `terms` terms: `blocks` blocks, each holding every term
    /// with probability `density` (in term order), each slot with 1 to 256 entries (its
    /// length less one), a run's entries from `first` on; and the slots' lengths.
    fn runs(terms: usize, blocks: u32, density: f64, seed: u64) -> Runs {
        let mut next = xorshift(seed);
        let (mut runs, mut ts, mut lengths, mut first) = (Vec::new(), Vec::new(), Vec::new(), 0u32);
        for b in 0..blocks {
            let before = ts.len();
            let mut entries = 0;
            for t in 0..terms {
                if (next() % 1000) as f64 / 1000.0 < density {
                    ts.push(t as u16);
                    let len = (next() % 256) as u8;
                    lengths.push(len);
                    entries += u32::from(len) + 1;
                }
            }
            let len = (ts.len() - before) as u32;
            if len > 0 {
                runs.push([b * 3, first, len]);
            }
            first += entries + (b % 2);
        }
        (runs, ts, lengths)
    }

    /// Blocks, codes, first entries and lengths of lists.
    type Lists = (Vec<u32>, Vec<u8>, Vec<u32>, Vec<u8>);

    /// The lists by a stable sort of the slots on their terms, each term's list from
    /// `base` on.
    fn reference(slots: RangeRuns<'_>) -> Lists {
        let mut all = Vec::new();
        let mut i = 0;
        for &[block, first, count] in slots.runs {
            let mut entry = first;
            for _ in 0..count {
                let len = slots.lengths[i];
                all.push((slots.terms[i], block, slots.codes[i], entry, len));
                entry += u32::from(len) + 1;
                i += 1;
            }
        }
        all.sort_by_key(|s| s.0);
        (
            all.iter().map(|s| s.1).collect(),
            all.iter().map(|s| s.2).collect(),
            all.iter().map(|s| s.3).collect(),
            all.iter().map(|s| s.4).collect(),
        )
    }

    /// Every term's first place, from the slots' terms.
    fn term_starts(terms: &[u16], n_terms: usize) -> Vec<usize> {
        let mut fill = vec![0usize; n_terms];
        for &t in terms {
            fill[t as usize] += 1;
        }
        let mut at = 0;
        for f in fill.iter_mut() {
            (*f, at) = (at, at + *f);
        }
        fill
    }

    /// Both ways of placing equal a sorted reference, whatever the lane the outputs start
    /// at (the lines' first and last places then belong to other terms or to none), for
    /// dense ranges (through lines) and sparse ones (directly), terms with 0 to hundreds
    /// of slots included.
    #[test]
    fn slots_land_at_their_terms_places_through_lines_or_directly() {
        for (case, &(n_terms, blocks, density)) in [
            (40, 300, 0.5),
            (3, 1000, 0.9),
            (200, 40, 0.05),
            (17, 37, 0.3),
            (1, 1, 1.0),
        ]
        .iter()
        .enumerate()
        {
            let (runs, terms, lengths) = runs(n_terms, blocks, density, case as u64 + 1);
            let codes: Vec<u8> = (0..terms.len()).map(|i| (i * 7 % 251) as u8).collect();
            let slots = RangeRuns {
                runs: &runs,
                terms: &terms,
                codes: &codes,
                lengths: &lengths,
            };
            let want = reference(slots);
            let n = terms.len();
            for (shift_blocks, shift_starts) in (0..LINE).map(|s| (s, s)).chain([(0, 3), (5, 0)]) {
                for lines in [false, true] {
                    // Outputs at every lane: parts of larger buffers (aligned by `Line`).
                    let mut block_buf = vec![Line([7; LINE]); n / LINE + 2];
                    let mut start_buf = vec![Line([7; LINE]); n / LINE + 2];
                    let as_u32 = |b: &mut Vec<Line>| -> *mut u32 { b.as_mut_ptr().cast() };
                    // SAFETY: each buffer holds `(n / LINE + 2) * LINE` u32 values, more
                    // than `shift + n`.
                    let blocks = unsafe {
                        std::slice::from_raw_parts_mut(as_u32(&mut block_buf).add(shift_blocks), n)
                    };
                    let starts_out = unsafe {
                        std::slice::from_raw_parts_mut(as_u32(&mut start_buf).add(shift_starts), n)
                    };
                    let (mut out_codes, mut out_lengths) = (vec![0u8; n], vec![0u8; n]);
                    let mut fill = term_starts(&terms, n_terms);
                    let out = (
                        &mut *blocks,
                        &mut out_codes[..],
                        &mut *starts_out,
                        &mut out_lengths[..],
                    );
                    if lines {
                        #[cfg(target_arch = "x86_64")]
                        {
                            if shift_blocks != shift_starts {
                                continue;
                            }
                            place_through_lines(slots, &mut fill, out, shift_blocks);
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        continue;
                    } else {
                        place_slots(slots, &mut fill, out);
                    }
                    let got = (
                        blocks.to_vec(),
                        out_codes.clone(),
                        starts_out.to_vec(),
                        out_lengths.clone(),
                    );
                    assert_eq!(
                        got, want,
                        "case {case}, lanes {shift_blocks}/{shift_starts}, lines {lines}"
                    );
                    // Each term's next place is the next term's first.
                    let mut ends = term_starts(&terms, n_terms);
                    ends.remove(0);
                    ends.push(n);
                    assert_eq!(fill, ends, "case {case}");
                    // Nothing written past the outputs.
                    let flat = |b: &Vec<Line>| b.iter().flat_map(|l| l.0).collect::<Vec<u32>>();
                    let (fb, fs) = (flat(&block_buf), flat(&start_buf));
                    assert!(fb[..shift_blocks].iter().all(|&v| v == 7), "case {case}");
                    assert!(
                        fb[shift_blocks + n..].iter().all(|&v| v == 7),
                        "case {case}"
                    );
                    assert!(fs[..shift_starts].iter().all(|&v| v == 7), "case {case}");
                    assert!(
                        fs[shift_starts + n..].iter().all(|&v| v == 7),
                        "case {case}"
                    );
                }
            }
        }
    }
}
