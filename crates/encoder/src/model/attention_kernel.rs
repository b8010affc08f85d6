//! Fused multi-head self-attention over packed (unpadded) texts, for inference on the CPU.
//!
//! One task per (text, head): the head's queries (bias added, scaled), keys (bias added,
//! transposed) and values (bias added) are copied into a small per-thread scratch, then for
//! each block of queries the scores `q·kᵀ` (a register-tiled micro-kernel, vectorised over
//! keys), the softmax (a vectorised `exp`, see [`Simd::exp`]) and the product with the values
//! (vectorised over the head's dimensions), written straight into the head's columns of the
//! packed `[n, heads · head_dim]` output. No padding, no mask (each text attends only to its
//! own tokens), no `[batch, heads, seq, seq]` tensors, no gathers or transposes of whole
//! activations: so a text's result does not depend on the other texts of its batch.
//!
//! The probabilities are not normalised before the value product: the sums of
//! `e^(s - max) · v` are scaled by `1 / Σ e^(s - max)` at the end (the same value up to float
//! rounding).

use std::cell::RefCell;
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::simd::{F32Path, Scalar, Simd};

/// One projected input (queries, keys or values) of the packed tokens: row `r`, column `c`
/// at `data[r * ld + c]`, to which `bias[c]` is added (an empty `bias` adds nothing).
#[derive(Clone, Copy)]
pub(crate) struct Projection<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub bias: &'a [f32],
}

impl Projection<'_> {
    fn check(&self, n: usize, width: usize, what: &str) {
        assert!(
            self.ld >= width,
            "attention: {what} rows are narrower than {width}"
        );
        assert!(
            n == 0 || self.data.len() >= (n - 1) * self.ld + width,
            "attention: {what} holds fewer than {n} rows"
        );
        assert!(
            self.bias.is_empty() || self.bias.len() == width,
            "attention: {what} bias is not [{width}]"
        );
    }

    /// Row `r`'s values from column `c0`, biases added, into `dst`.
    #[inline(always)]
    fn copy_row(&self, r: usize, c0: usize, dst: &mut [f32]) {
        let (row, bias) = self.row(r, c0, dst.len());
        match bias {
            Some(b) => {
                for ((d, &x), &b) in dst.iter_mut().zip(row).zip(b) {
                    *d = x + b;
                }
            }
            None => dst.copy_from_slice(row),
        }
    }

    /// Row `r`'s `len` values from column `c0`, and their biases (zeros when there is none).
    #[inline(always)]
    fn row(&self, r: usize, c0: usize, len: usize) -> (&[f32], Option<&[f32]>) {
        let row = &self.data[r * self.ld + c0..][..len];
        let bias = (!self.bias.is_empty()).then(|| &self.bias[c0..c0 + len]);
        (row, bias)
    }
}

/// A pointer to the output that tasks write disjoint parts of.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each task writes only its own text's rows in its own head's columns.
unsafe impl Sync for Out {}
unsafe impl Send for Out {}

thread_local! {
    /// Per-thread scratch: the head's packed queries, keys, values and a block of scores.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Self-attention of the packed texts (text `t` is rows `starts[t]..starts[t + 1]`):
/// `softmax(q_h k_hᵀ · scale) v_h` for every text and head `h` (columns
/// `h · head_dim..(h + 1) · head_dim` of each projection), as `[n, heads · head_dim]`
/// row-major, on `path`'s kernels and candle's CPU thread pool.
pub(crate) fn attention(
    qkv: [Projection; 3],
    starts: &[usize],
    heads: usize,
    head_dim: usize,
    scale: f32,
    path: F32Path,
) -> Vec<f32> {
    let n = starts.last().copied().unwrap_or(0);
    let mut out = vec![0f32; n * heads * head_dim];
    attention_into(qkv, starts, heads, head_dim, scale, path, &mut out);
    out
}

/// [`attention`] into `out` (`[n, heads · head_dim]`, overwritten).
pub(crate) fn attention_into(
    [q, k, v]: [Projection; 3],
    starts: &[usize],
    heads: usize,
    head_dim: usize,
    scale: f32,
    path: F32Path,
    out: &mut [f32],
) {
    let n = starts.last().copied().unwrap_or(0);
    let width = heads * head_dim;
    assert_eq!(out.len(), n * width, "attention: output size");
    q.check(n, width, "queries");
    k.check(n, width, "keys");
    v.check(n, width, "values");
    assert!(
        starts.first().is_none_or(|&s| s == 0) && starts.windows(2).all(|w| w[0] <= w[1]),
        "attention: text starts must rise from 0"
    );
    let texts = starts.len().saturating_sub(1);
    let writer = Out(out.as_mut_ptr());
    let run = |task: usize| {
        let (t, h) = (task / heads, task % heads);
        let rows = starts[t]..starts[t + 1];
        if rows.is_empty() {
            return;
        }
        let job = Head {
            q,
            k,
            v,
            rows,
            col0: h * head_dim,
            head_dim,
            scale,
            // SAFETY (for the kernels' writes): rows `rows`, columns of head `h`, leading
            // dimension `width`, inside the `n · width` allocation; no other task writes them.
            out: writer,
            ld_out: width,
        };
        SCRATCH.with(|s| {
            let scratch = &mut s.borrow_mut();
            match path {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the path was checked available when selected.
                F32Path::Avx512 => unsafe { head_avx512(&job, scratch) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                F32Path::Avx2 => unsafe { head_avx2(&job, scratch) },
                // SAFETY: plain Rust.
                _ => unsafe { job.run::<Scalar, 4, 4>(scratch) },
            }
        });
    };
    candle_core::utils::barrier_pool().execute_chunked(texts * heads, |tasks| {
        for task in tasks {
            run(task);
        }
    });
    // The tasks wrote every column of every row (each text's rows, every head's columns;
    // the texts' rows cover 0..n).
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn head_avx512(job: &Head, scratch: &mut Vec<f32>) {
    job.run::<Avx512, 6, 4>(scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(job: &Head, scratch: &mut Vec<f32>) {
    job.run::<Avx2, 4, 2>(scratch)
}

/// Keys transposed per block of this many rows.
const TRANSPOSE_BLOCK: usize = 16;

/// The keys' padded width `lp` (a multiple of `lanes`) and the transposed keys' leading
/// dimension: `lp`, or one vector more when `lp` is an even number of vectors, so that the
/// rows of `kᵀ` do not all fall into the same few cache sets (a stride of a multiple of
/// 128 bytes).
#[inline(always)]
fn key_widths(l: usize, lanes: usize) -> (usize, usize) {
    let lp = l.div_ceil(lanes) * lanes;
    let ldk = if (lp / lanes).is_multiple_of(2) {
        lp + lanes
    } else {
        lp
    };
    (lp, ldk)
}

/// One (text, head) task.
struct Head<'a> {
    q: Projection<'a>,
    k: Projection<'a>,
    v: Projection<'a>,
    rows: Range<usize>,
    col0: usize,
    head_dim: usize,
    scale: f32,
    out: Out,
    ld_out: usize,
}

impl Head<'_> {
    /// The task with `R`-query blocks and tiles `NV` vectors wide.
    ///
    /// # Safety
    /// The CPU runs `V`; `self.out` is valid for the task's rows and columns.
    #[inline(always)]
    unsafe fn run<V: Simd, const R: usize, const NV: usize>(&self, scratch: &mut Vec<f32>) {
        let lanes = V::LANES;
        let (l, hd) = (self.rows.len(), self.head_dim);
        let (lp, ldk) = key_widths(l, lanes);
        let hdp = hd.div_ceil(lanes) * lanes;
        let need = l * hd + hd * ldk + l * hdp + R * lp + TRANSPOSE_BLOCK * hd;
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (qs, rest) = scratch.split_at_mut(l * hd);
        let (kt, rest) = rest.split_at_mut(hd * ldk);
        let (vp, rest) = rest.split_at_mut(l * hdp);
        let (s, rest) = rest.split_at_mut(R * lp);
        let kb = &mut rest[..TRANSPOSE_BLOCK * hd];
        // Keys are transposed a block of rows at a time (row-major into `kb`, then one short
        // contiguous stretch of `kt` per dimension), not one scattered store per value.
        for b0 in (0..l).step_by(TRANSPOSE_BLOCK) {
            let count = TRANSPOSE_BLOCK.min(l - b0);
            for t in 0..count {
                let (i, r) = (b0 + t, self.rows.start + b0 + t);
                let (row, bias) = self.q.row(r, self.col0, hd);
                let dst = &mut qs[i * hd..(i + 1) * hd];
                match bias {
                    Some(b) => {
                        for ((d, &x), &b) in dst.iter_mut().zip(row).zip(b) {
                            *d = (x + b) * self.scale;
                        }
                    }
                    None => {
                        for (d, &x) in dst.iter_mut().zip(row) {
                            *d = x * self.scale;
                        }
                    }
                }
                self.k.copy_row(r, self.col0, &mut kb[t * hd..(t + 1) * hd]);
                let dst = &mut vp[i * hdp..(i + 1) * hdp];
                self.v.copy_row(r, self.col0, &mut dst[..hd]);
                dst[hd..].fill(0.0);
            }
            for d in 0..hd {
                let dst = &mut kt[d * ldk + b0..d * ldk + b0 + count];
                for (t, v) in dst.iter_mut().enumerate() {
                    *v = kb[t * hd + d];
                }
            }
        }
        for d in 0..hd {
            kt[d * ldk + l..(d + 1) * ldk].fill(0.0);
        }
        let (qs, kt, vp, s) = (qs.as_ptr(), kt.as_ptr(), vp.as_ptr(), s.as_mut_ptr());
        let mut i0 = 0;
        while i0 < l {
            let block = R.min(l - i0);
            let out = self
                .out
                .0
                .add((self.rows.start + i0) * self.ld_out + self.col0);
            if block == R {
                self.block::<V, R, NV>(qs.add(i0 * hd), kt, vp, s, l, out);
            } else {
                for r in 0..block {
                    self.block::<V, 1, NV>(
                        qs.add((i0 + r) * hd),
                        kt,
                        vp,
                        s,
                        l,
                        out.add(r * self.ld_out),
                    );
                }
            }
            i0 += block;
        }
    }

    /// Queries `qs` (`RR` rows of `head_dim`) against the `l` keys: scores into `s`
    /// (`RR` rows of `lp`), softmax, product with the values into `out` (`RR` rows, leading
    /// dimension `ld_out`).
    #[inline(always)]
    unsafe fn block<V: Simd, const RR: usize, const NV: usize>(
        &self,
        qs: *const f32,
        kt: *const f32,
        vp: *const f32,
        s: *mut f32,
        l: usize,
        out: *mut f32,
    ) {
        let lanes = V::LANES;
        let hd = self.head_dim;
        let ((lp, ldk), hdp) = (key_widths(l, lanes), hd.div_ceil(lanes) * lanes);
        // Scores, NV vectors of keys at a time, then one.
        let nvec = lp / lanes;
        let mut c = 0;
        while c + NV <= nvec {
            scores_tile::<V, RR, NV>(qs, hd, kt.add(c * lanes), ldk, s.add(c * lanes), lp);
            c += NV;
        }
        while c < nvec {
            scores_tile::<V, RR, 1>(qs, hd, kt.add(c * lanes), ldk, s.add(c * lanes), lp);
            c += 1;
        }
        let mut inv = [0f32; RR];
        for (r, inv) in inv.iter_mut().enumerate() {
            *inv = softmax_unnormalised::<V>(s.add(r * lp), l);
        }
        // Values, NV vectors of the head's dimensions at a time, then one.
        let nvec = hdp / lanes;
        let mut c = 0;
        while c + NV <= nvec {
            self.values_tile::<V, RR, NV>(s, lp, l, vp.add(c * lanes), hdp, &inv, out, c * lanes);
            c += NV;
        }
        while c < nvec {
            self.values_tile::<V, RR, 1>(s, lp, l, vp.add(c * lanes), hdp, &inv, out, c * lanes);
            c += 1;
        }
    }

    /// `out[r][c0..] = inv[r] · Σ_j p[r][j] · vp[j][c0..]` for `NN` vectors of columns
    /// (columns past `head_dim` are not written).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn values_tile<V: Simd, const RR: usize, const NN: usize>(
        &self,
        p: *const f32,
        lp: usize,
        l: usize,
        vp: *const f32,
        hdp: usize,
        inv: &[f32; RR],
        out: *mut f32,
        c0: usize,
    ) {
        let lanes = V::LANES;
        let mut acc = [[V::splat(0.0); NN]; RR];
        for j in 0..l {
            let mut vv = [V::splat(0.0); NN];
            for (c, vv) in vv.iter_mut().enumerate() {
                *vv = V::load(vp.add(j * hdp + c * lanes));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = V::splat(*p.add(r * lp + j));
                for c in 0..NN {
                    acc[c] = a.mul_add(vv[c], acc[c]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let scale = V::splat(inv[r]);
            for (c, acc) in acc.iter().enumerate() {
                let col = c0 + c * lanes;
                let dst = out.add(r * self.ld_out + col);
                let value = acc.mul(scale);
                if col + lanes <= self.head_dim {
                    value.store(dst);
                } else {
                    let mut tmp = [0f32; 16];
                    value.store(tmp.as_mut_ptr());
                    let keep = self.head_dim.saturating_sub(col);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, keep);
                }
            }
        }
    }
}

/// `s[r][c0..c0 + NN · lanes] = Σ_d qs[r][d] · kt[d][c0..]` for `RR` rows (`kt` and `s`
/// already offset to `c0`; leading dimensions `ldk` and `lp`).
#[inline(always)]
unsafe fn scores_tile<V: Simd, const RR: usize, const NN: usize>(
    qs: *const f32,
    hd: usize,
    kt: *const f32,
    ldk: usize,
    s: *mut f32,
    lp: usize,
) {
    let lanes = V::LANES;
    let mut acc = [[V::splat(0.0); NN]; RR];
    for d in 0..hd {
        let mut kv = [V::splat(0.0); NN];
        for (c, kv) in kv.iter_mut().enumerate() {
            *kv = V::load(kt.add(d * ldk + c * lanes));
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = V::splat(*qs.add(r * hd + d));
            for c in 0..NN {
                acc[c] = a.mul_add(kv[c], acc[c]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (c, acc) in acc.iter().enumerate() {
            acc.store(s.add(r * lp + c * lanes));
        }
    }
}

/// Replaces the `l` scores of `row` by `e^(s - max)` and returns `1 / Σ e^(s - max)`.
#[inline(always)]
unsafe fn softmax_unnormalised<V: Simd>(row: *mut f32, l: usize) -> f32 {
    let lanes = V::LANES;
    let full = l / lanes;
    let mut mx = V::splat(f32::NEG_INFINITY);
    for c in 0..full {
        mx = mx.max(V::load(row.add(c * lanes)));
    }
    let mut max = mx.reduce_max();
    for j in full * lanes..l {
        max = max.max(*row.add(j));
    }
    let m = V::splat(max);
    let mut sum = V::splat(0.0);
    for c in 0..full {
        let e = V::load(row.add(c * lanes)).sub(m).exp();
        e.store(row.add(c * lanes));
        sum = sum.add(e);
    }
    let mut total = sum.reduce_sum();
    let tail = l - full * lanes;
    if tail > 0 {
        let mut tmp = [max; 16];
        std::ptr::copy_nonoverlapping(row.add(full * lanes), tmp.as_mut_ptr(), tail);
        V::load(tmp.as_ptr()).sub(m).exp().store(tmp.as_mut_ptr());
        for (j, &e) in tmp[..tail].iter().enumerate() {
            *row.add(full * lanes + j) = e;
            total += e;
        }
    }
    1.0 / total
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::test_data::values as random;

    /// The attention in f64, one text and head at a time, the plain way.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: Projection,
        k: Projection,
        v: Projection,
        starts: &[usize],
        heads: usize,
        hd: usize,
        scale: f32,
    ) -> Vec<f32> {
        let width = heads * hd;
        let n = *starts.last().unwrap();
        let at = |p: &Projection, r: usize, c: usize| {
            p.data[r * p.ld + c] as f64 + p.bias.get(c).map_or(0.0, |&b| b as f64)
        };
        let mut out = vec![0f32; n * width];
        for t in starts.windows(2) {
            for h in 0..heads {
                for i in t[0]..t[1] {
                    let scores: Vec<f64> = (t[0]..t[1])
                        .map(|j| {
                            (0..hd)
                                .map(|d| {
                                    let qv = (at(&q, i, h * hd + d) as f32 * scale) as f64;
                                    qv * at(&k, j, h * hd + d)
                                })
                                .sum()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for d in 0..hd {
                        let o: f64 = (t[0]..t[1])
                            .zip(&e)
                            .map(|(j, e)| e / sum * at(&v, j, h * hd + d))
                            .sum();
                        out[i * width + h * hd + d] = o as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_path_matches_the_plain_attention_on_odd_shapes() {
        let cases: &[(&[usize], usize, usize)] = &[
            (&[1], 1, 16),
            (&[1, 2, 3], 2, 8),
            (&[7, 16, 17, 33], 3, 20),
            (&[200, 5, 64], 2, 64),
            (&[13, 1, 31], 4, 5),
            (&[40], 1, 72),
        ];
        for (case, &(lengths, heads, hd)) in cases.iter().enumerate() {
            let mut starts = vec![0];
            for &l in lengths {
                starts.push(starts.last().unwrap() + l);
            }
            let n = *starts.last().unwrap();
            let width = heads * hd;
            // One fused [n, 3 · width + 3] buffer (a leading dimension wider than the
            // heads), and separate biases for queries and values only.
            let ld = 3 * width + 3;
            let data = random(n * ld, case as u64 + 1);
            let (bq, bv) = (random(width, 77), random(width, 78));
            let q = Projection {
                data: &data,
                ld,
                bias: &bq,
            };
            let k = Projection {
                data: &data[width..],
                ld,
                bias: &[],
            };
            let v = Projection {
                data: &data[2 * width + 1..],
                ld,
                bias: &bv,
            };
            let scale = 1.0 / (hd as f32).sqrt();
            let want = reference(q, k, v, &starts, heads, hd, scale);
            for path in F32Path::available() {
                let got = attention([q, k, v], &starts, heads, hd, scale, path);
                assert_eq!(got.len(), want.len());
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst < 2e-5,
                    "{} case {case}: max difference {worst}",
                    path.name()
                );
            }
        }
    }

    #[test]
    fn texts_attend_only_to_themselves() {
        // A text's output is the same alone and among others, bit for bit, on every path.
        let (heads, hd) = (2, 24);
        let width = heads * hd;
        let data = random(60 * width, 5);
        let p = |from: usize| Projection {
            data: &data[from * width..],
            ld: width,
            bias: &[],
        };
        for path in F32Path::available() {
            let all = attention([p(0), p(0), p(0)], &[0, 19, 41, 60], heads, hd, 0.2, path);
            let alone = attention([p(19), p(19), p(19)], &[0, 22], heads, hd, 0.2, path);
            assert_eq!(
                all[19 * width..41 * width]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{}",
                path.name()
            );
        }
        assert!(attention([p(0), p(0), p(0)], &[0], heads, hd, 0.2, F32Path::Portable).is_empty());
    }
}
