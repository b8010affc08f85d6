//! The f32 dense layers of inference on the CPU, without candle's extra passes: the product
//! `x Wᵀ` by the `gemm` crate (the call candle makes, minus the zeroing of the output), then
//! one fused pass per row for what follows it in the model:
//! - [`bias_gelu_rows`]: `gelu(y + b)` (the exact GELU, [`super::vector_gelu`]);
//! - [`add_layer_norm_rows`]: `LayerNorm((y + b) + residual)` (BERT's and DistilBERT's
//!   post-attention and post-feed-forward normalisations);
//! - [`add_bias_rows`]: `y + b`.
//!
//! The LayerNorm is written once over [`Simd`] and compiled per [`F32Path`].

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::simd::{F32Path, Scalar, Simd};

/// Rows per parallel task of the row passes.
const ROWS_PER_TASK: usize = 8;

/// A pointer to rows that tasks write disjoint blocks of.
#[derive(Clone, Copy)]
struct Rows(*mut f32);
// SAFETY: every task touches only its own block of rows.
unsafe impl Sync for Rows {}
unsafe impl Send for Rows {}

impl Rows {
    /// `count` rows of `width` from row `first`.
    ///
    /// # Safety
    /// The rows lie inside the buffer and no other live slice overlaps them.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, first: usize, count: usize, width: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(first * width), count * width)
    }
}

/// Runs `f(first_row, block)` on blocks of [`ROWS_PER_TASK`] rows of `y` (`width` values
/// each) on candle's CPU thread pool.
fn for_row_blocks(y: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = y.len() / width.max(1);
    let ptr = Rows(y.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(rows.div_ceil(ROWS_PER_TASK), |blocks| {
        for block in blocks {
            let first = block * ROWS_PER_TASK;
            let count = ROWS_PER_TASK.min(rows - first);
            // SAFETY: blocks are disjoint row ranges inside `y`.
            let rows = unsafe { ptr.rows(first, count, width) };
            f(first, rows);
        }
    });
}

/// `x Wᵀ` for `x` `[m, k]` and `w` `[n, k]`, both row-major: `[m, n]`, on candle's number of
/// threads (the same `gemm` call as candle's matmul, so the same values).
pub(crate) fn matmul_nt(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    assert!(
        x.len() >= m * k && w.len() >= n * k,
        "matmul_nt: short inputs"
    );
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: `y` has room for `m · n` values, all of which the product writes (and never
    // reads).
    unsafe {
        matmul_nt_raw(x, m, k, w, n, y.as_mut_ptr());
        y.set_len(m * n);
    }
    y
}

/// [`matmul_nt`] into `out` (`m · n` values, overwritten).
pub(crate) fn matmul_nt_into(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(
        x.len() >= m * k && w.len() >= n * k,
        "matmul_nt: short inputs"
    );
    assert_eq!(out.len(), m * n, "matmul_nt: output size");
    // SAFETY: `out` holds the `m · n` values written.
    unsafe { matmul_nt_raw(x, m, k, w, n, out.as_mut_ptr()) }
}

/// # Safety
/// `x` and `w` hold `m · k` and `n · k` values; `out` is valid for `m · n` writes.
unsafe fn matmul_nt_raw(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: *mut f32) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        std::ptr::write_bytes(out, 0, m * n);
        return;
    }
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // `read_dst` false: the product never reads `out`.
    gemm::gemm(
        m,
        n,
        k,
        out,
        1,
        n as isize,
        false,
        x.as_ptr(),
        1,
        k as isize,
        w.as_ptr(),
        k as isize,
        1,
        0.0f32,
        1.0f32,
        false,
        false,
        false,
        parallelism,
    );
}

/// `y[r] += bias` for every row of `y` (`bias.len()` values each).
pub(crate) fn add_bias_rows(y: &mut [f32], bias: &[f32]) {
    let width = bias.len();
    for_row_blocks(y, width, |_, rows| {
        for row in rows.chunks_mut(width) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    });
}

/// `y[r] = gelu(y[r] + bias)` (exact GELU) for every row of `y`; no bias when `bias` is
/// `None` (rows of `width` values).
pub(crate) fn bias_gelu_rows(y: &mut [f32], width: usize, bias: Option<&[f32]>) {
    for_row_blocks(y, width, |_, rows| match bias {
        // Row by row, so the GELU reads what the bias pass just wrote from L1.
        Some(bias) => {
            for row in rows.chunks_mut(width) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
                super::vector_gelu::gelu_in_place(row);
            }
        }
        None => super::vector_gelu::gelu_in_place(rows),
    });
}

/// The LayerNorm's parameters.
#[derive(Clone, Copy)]
pub(crate) struct Norm<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub eps: f32,
}

/// `y[r] = LayerNorm((y[r] + bias) + residual[r])` for every row (rows of `norm.weight.len()`
/// values; no bias or residual when `None`), on `path`.
pub(crate) fn add_layer_norm_rows(
    y: &mut [f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    norm: Norm,
    path: F32Path,
) {
    let width = norm.weight.len();
    assert!(
        norm.bias.len() == width
            && bias.is_none_or(|b| b.len() == width)
            && residual.is_none_or(|r| r.len() == y.len())
            && y.len().is_multiple_of(width.max(1)),
        "add_layer_norm_rows: mismatched sizes"
    );
    for_row_blocks(y, width, |first, rows| {
        for (i, row) in rows.chunks_mut(width).enumerate() {
            let res = residual.map(|r| &r[(first + i) * width..(first + i + 1) * width]);
            match path {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the path was checked available when selected.
                F32Path::Avx512 => unsafe { norm_row_avx512(row, bias, res, &norm) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                F32Path::Avx2 => unsafe { norm_row_avx2(row, bias, res, &norm) },
                // SAFETY: plain Rust.
                _ => unsafe { norm_row::<Scalar>(row, bias, res, &norm) },
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn norm_row_avx512(row: &mut [f32], bias: Option<&[f32]>, res: Option<&[f32]>, n: &Norm) {
    norm_row::<Avx512>(row, bias, res, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn norm_row_avx2(row: &mut [f32], bias: Option<&[f32]>, res: Option<&[f32]>, n: &Norm) {
    norm_row::<Avx2>(row, bias, res, n)
}

/// One row: `t = (row + bias) + res`, then `(t - mean) / sqrt(var + eps) · weight + bias`
/// (mean and variance in two passes, f32 lanes).
#[inline(always)]
unsafe fn norm_row<V: Simd>(row: &mut [f32], bias: Option<&[f32]>, res: Option<&[f32]>, n: &Norm) {
    let lanes = V::LANES;
    let h = row.len();
    let full = h / lanes * lanes;
    let p = row.as_mut_ptr();
    let mut sum = V::splat(0.0);
    let mut j = 0;
    while j < full {
        let mut t = V::load(p.add(j));
        if let Some(b) = bias {
            t = t.add(V::load(b.as_ptr().add(j)));
        }
        if let Some(r) = res {
            t = t.add(V::load(r.as_ptr().add(j)));
        }
        t.store(p.add(j));
        sum = sum.add(t);
        j += lanes;
    }
    let mut total = sum.reduce_sum();
    for (j, v) in row.iter_mut().enumerate().skip(full) {
        let mut t = *v;
        if let Some(b) = bias {
            t += b[j];
        }
        if let Some(r) = res {
            t += r[j];
        }
        *v = t;
        total += t;
    }
    let mean = total / h as f32;
    let m = V::splat(mean);
    let mut sq = V::splat(0.0);
    let mut j = 0;
    while j < full {
        let d = V::load(p.add(j)).sub(m);
        sq = d.mul_add(d, sq);
        j += lanes;
    }
    let mut var = sq.reduce_sum();
    for &t in &row[full..] {
        var += (t - mean) * (t - mean);
    }
    let rstd = 1.0 / (var / h as f32 + n.eps).sqrt();
    let r = V::splat(rstd);
    let (w, b) = (n.weight.as_ptr(), n.bias.as_ptr());
    let mut j = 0;
    while j < full {
        let x = V::load(p.add(j)).sub(m).mul(r);
        x.mul_add(V::load(w.add(j)), V::load(b.add(j)))
            .store(p.add(j));
        j += lanes;
    }
    for ((v, w), b) in row.iter_mut().zip(n.weight).zip(n.bias).skip(full) {
        *v = (*v - mean) * rstd * w + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::test_data::values as random;

    #[test]
    fn matmul_matches_the_plain_product() {
        for (m, k, n) in [(1, 1, 1), (3, 7, 5), (17, 33, 19), (70, 64, 48), (2, 0, 3)] {
            let (x, w) = (random(m * k, 1), random(n * k, 2));
            let y = matmul_nt(&x, m, k, &w, n);
            assert_eq!(y.len(), m * n);
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                        .sum();
                    assert!((y[r * n + c] as f64 - want).abs() < 1e-4, "{m}x{k}x{n}");
                }
            }
        }
        assert!(matmul_nt(&[], 0, 4, &[0.0; 8], 2).is_empty());
        let (x, w) = (random(5 * 9, 3), random(4 * 9, 4));
        let mut into = vec![f32::NAN; 5 * 4];
        matmul_nt_into(&x, 5, 9, &w, 4, &mut into);
        assert_eq!(into, matmul_nt(&x, 5, 9, &w, 4));
        matmul_nt_into(&x, 5, 0, &w, 4, &mut into);
        assert!(into.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn bias_and_gelu_rows_match_the_plain_formula() {
        let (m, width) = (19, 37);
        let (y, bias) = (random(m * width, 3), random(width, 4));
        let mut got = y.clone();
        bias_gelu_rows(&mut got, width, Some(&bias));
        let mut plain = y.clone();
        add_bias_rows(&mut plain, &bias);
        for (i, (&g, &p)) in got.iter().zip(&plain).enumerate() {
            assert_eq!(p, y[i] + bias[i % width]);
            let u = p as f64;
            let want = 0.5 * u * (1.0 + libm::erf(u / std::f64::consts::SQRT_2));
            assert!((g as f64 - want).abs() < 3e-7, "{u}");
        }
    }

    #[test]
    fn layer_norm_rows_match_the_plain_formula_on_every_path() {
        for (m, width) in [(1, 1), (3, 5), (9, 16), (17, 37), (11, 768)] {
            let y = random(m * width, 5);
            let (bias, res) = (random(width, 6), random(m * width, 7));
            let (w, b) = (random(width, 8), random(width, 9));
            let norm = Norm {
                weight: &w,
                bias: &b,
                eps: 1e-12,
            };
            for (use_bias, use_res) in [(true, true), (false, true), (false, false)] {
                let bias = use_bias.then_some(&bias[..]);
                let res = use_res.then_some(&res[..]);
                let mut want = vec![0f32; m * width];
                for r in 0..m {
                    let t: Vec<f64> = (0..width)
                        .map(|j| {
                            let v = y[r * width + j] + bias.map_or(0.0, |b| b[j]);
                            (v + res.map_or(0.0, |x| x[r * width + j])) as f64
                        })
                        .collect();
                    let mean = t.iter().sum::<f64>() / width as f64;
                    let var = t.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / width as f64;
                    for j in 0..width {
                        want[r * width + j] = ((t[j] - mean) / (var + 1e-12).sqrt() * w[j] as f64
                            + b[j] as f64) as f32;
                    }
                }
                for path in F32Path::available() {
                    let mut got = y.clone();
                    add_layer_norm_rows(&mut got, bias, res, norm, path);
                    let worst = got
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    // A one-value row normalises to its bias exactly; the others to float
                    // rounding (values of a few units).
                    assert!(worst < 5e-6, "{} {m}x{width}: {worst}", path.name());
                }
            }
        }
    }
}
