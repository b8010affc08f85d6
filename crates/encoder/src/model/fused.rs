//! Fused CPU kernels, with their backward passes, for the transformer's element-wise chains.
//!
//! candle builds LayerNorm, GELU and a masked softmax out of 5-10 element-wise ops, each of
//! which writes a new tensor forward and several more backward. Each op here reads its inputs
//! once and writes its output once, forward and backward:
//! - [`layer_norm`]: `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension;
//!   backward gives the input, weight and bias gradients in one pass over the rows.
//! - [`bias_gelu`]: `gelu_erf(x + bias)` (the exact GELU of BERT and DistilBERT).
//! - [`masked_softmax`]: `softmax(scores + mask_bias)` over the last dimension, with the
//!   `[batch, 1, 1, keys]` additive mask broadcast over heads and queries.
//!
//! They take contiguous f32 tensors on the CPU ([`supported`]); callers fall back to candle's
//! composite ops elsewhere. The values match the composite versions up to float rounding (the
//! tests compare both, forward and backward).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use std::ops::Range;

/// Rows handed to one parallel task.
const ROWS_PER_TASK: usize = 8;

/// Whether the fused kernels apply to `x`: an f32 tensor on the CPU.
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The contiguous f32 data of a CPU storage under `layout`.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused kernel: input is not contiguous"),
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor.
pub(crate) fn with_data<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => f(slice(cpu, layout)?),
        _ => candle_core::bail!("fused kernel: tensor is not on the CPU"),
    }
}

/// A pointer to an output buffer that row blocks write disjoint parts of.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every parallel task writes only its own rows (see `rows_mut`).
unsafe impl Sync for Out {}
unsafe impl Send for Out {}

impl Out {
    /// Rows `rows` of width `width`.
    ///
    /// # Safety
    /// No two live slices may overlap, and the buffer must hold `rows.end * width` values.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows_mut(&self, rows: &Range<usize>, width: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(rows.start * width), rows.len() * width)
    }
}

/// Runs `f` on blocks of `ROWS_PER_TASK` rows of `0..n_rows`, in parallel on candle's CPU
/// thread pool (the one its own ops use, so the two never compete for cores). `f` gets the
/// block number and its row range.
fn for_row_blocks(n_rows: usize, f: impl Fn(usize, Range<usize>) + Sync) {
    let blocks = n_rows.div_ceil(ROWS_PER_TASK);
    candle_core::utils::barrier_pool().execute_chunked(blocks, |range| {
        for block in range {
            let start = block * ROWS_PER_TASK;
            f(block, start..n_rows.min(start + ROWS_PER_TASK));
        }
    });
}

/// A new `n_rows × width` buffer whose row blocks `fill(rows, out)` writes in parallel
/// (`out` holds exactly rows `rows`).
fn map_rows(
    n_rows: usize,
    width: usize,
    fill: impl Fn(Range<usize>, &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; n_rows * width];
    let writer = Out(out.as_mut_ptr());
    for_row_blocks(n_rows, |_, rows| {
        // SAFETY: blocks are disjoint row ranges of `out`, which holds `n_rows` rows.
        let block = unsafe { writer.rows_mut(&rows, width) };
        fill(rows, block);
    });
    out
}

/// Per-block partial sums of `width` columns, added in block order (deterministic).
struct Partials {
    width: usize,
    data: Vec<f32>,
}

impl Partials {
    fn new(n_rows: usize, width: usize) -> Self {
        Self {
            width,
            data: vec![0.0; n_rows.div_ceil(ROWS_PER_TASK) * width],
        }
    }

    fn writer(&mut self) -> Out {
        Out(self.data.as_mut_ptr())
    }

    fn total(&self) -> Vec<f32> {
        let mut sum = vec![0f32; self.width];
        for block in self.data.chunks(self.width.max(1)) {
            sum.iter_mut().zip(block).for_each(|(s, v)| *s += v);
        }
        sum
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

struct LayerNormOp {
    eps: f32,
}

/// Mean and 1/sqrt(var + eps) of one row (accumulated in f64).
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row
        .iter()
        .map(|&v| {
            let d = v as f64 - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "splade-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, b) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let h = w.len();
        let out = map_rows(x.len() / h.max(1), h, |rows, out| {
            let x = &x[rows.start * h..rows.end * h];
            for (o, row) in out.chunks_mut(h).zip(x.chunks(h)) {
                let (mean, rstd) = row_stats(row, self.eps);
                for j in 0..h {
                    o[j] = (row[j] - mean) * rstd * w[j] + b[j];
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let h = w.elem_count();
        let (dx, dw, db) = with_data(x, |x| {
            with_data(w, |w| {
                with_data(grad, |g| {
                    let n_rows = x.len() / h.max(1);
                    let mut dx = vec![0f32; x.len()];
                    let mut dw = Partials::new(n_rows, h);
                    let mut db = Partials::new(n_rows, h);
                    let (dx_out, dw_out, db_out) = (Out(dx.as_mut_ptr()), dw.writer(), db.writer());
                    for_row_blocks(n_rows, |block, rows| {
                        // SAFETY: blocks are disjoint row ranges of `dx` and own one
                        // partial row each in `dw` and `db`.
                        let (dx, dw, db) = unsafe {
                            (
                                dx_out.rows_mut(&rows, h),
                                dw_out.rows_mut(&(block..block + 1), h),
                                db_out.rows_mut(&(block..block + 1), h),
                            )
                        };
                        let x = &x[rows.start * h..rows.end * h];
                        let g = &g[rows.start * h..rows.end * h];
                        let mut xhat = vec![0f32; h];
                        for ((dx, row), g) in dx.chunks_mut(h).zip(x.chunks(h)).zip(g.chunks(h)) {
                            let (mean, rstd) = row_stats(row, self.eps);
                            let (mut sum_dy, mut sum_dy_xhat) = (0f32, 0f32);
                            for j in 0..h {
                                xhat[j] = (row[j] - mean) * rstd;
                                let dy = g[j] * w[j];
                                sum_dy += dy;
                                sum_dy_xhat += dy * xhat[j];
                                dw[j] += g[j] * xhat[j];
                                db[j] += g[j];
                            }
                            let (mean_dy, mean_dy_xhat) =
                                (sum_dy / h as f32, sum_dy_xhat / h as f32);
                            for j in 0..h {
                                dx[j] = rstd * (g[j] * w[j] - mean_dy - xhat[j] * mean_dy_xhat);
                            }
                        }
                    });
                    let (dw, db) = (dw.total(), db.total());
                    Ok((dx, dw, db))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, w.shape(), dev)?),
        ))
    }
}

/// LayerNorm over the last dimension of a CPU f32 tensor, differentiable in all three inputs.
pub fn layer_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let h = weight.elem_count();
    if x.dims().last() != Some(&h) || bias.elem_count() != h {
        candle_core::bail!(
            "layer_norm: input {:?} does not match weight [{h}] and bias [{}]",
            x.dims(),
            bias.elem_count()
        );
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}

// ---------------------------------------------------------------------------------------------
// Bias + exact GELU

struct BiasGeluOp;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2π).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[inline]
fn gelu(u: f32) -> f32 {
    0.5 * u * (1.0 + libm::erff(u * FRAC_1_SQRT_2))
}

/// d gelu(u) / du = Φ(u) + u φ(u).
#[inline]
fn gelu_derivative(u: f32) -> f32 {
    0.5 * (1.0 + libm::erff(u * FRAC_1_SQRT_2)) + u * FRAC_1_SQRT_2PI * (-0.5 * u * u).exp()
}

impl CustomOp2 for BiasGeluOp {
    fn name(&self) -> &'static str {
        "splade-bias-gelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, b) = (slice(s1, l1)?, slice(s2, l2)?);
        let f = b.len();
        let out = map_rows(x.len() / f.max(1), f, |rows, out| {
            let x = &x[rows.start * f..rows.end * f];
            for (o, row) in out.chunks_mut(f).zip(x.chunks(f)) {
                for j in 0..f {
                    o[j] = gelu(row[j] + b[j]);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let f = b.elem_count();
        let (dx, db) = with_data(x, |x| {
            with_data(b, |b| {
                with_data(grad, |g| {
                    let n_rows = x.len() / f.max(1);
                    let mut dx = vec![0f32; x.len()];
                    let mut db = Partials::new(n_rows, f);
                    let (dx_out, db_out) = (Out(dx.as_mut_ptr()), db.writer());
                    for_row_blocks(n_rows, |block, rows| {
                        // SAFETY: blocks are disjoint row ranges of `dx` and own one partial
                        // row of `db`.
                        let (dx, db) = unsafe {
                            (
                                dx_out.rows_mut(&rows, f),
                                db_out.rows_mut(&(block..block + 1), f),
                            )
                        };
                        let x = &x[rows.start * f..rows.end * f];
                        let g = &g[rows.start * f..rows.end * f];
                        for ((dx, row), g) in dx.chunks_mut(f).zip(x.chunks(f)).zip(g.chunks(f)) {
                            for j in 0..f {
                                let d = g[j] * gelu_derivative(row[j] + b[j]);
                                dx[j] = d;
                                db[j] += d;
                            }
                        }
                    });
                    let db = db.total();
                    Ok((dx, db))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

/// `gelu_erf(x + bias)` with `bias` broadcast over the rows of `x` `[..., features]`,
/// differentiable in both.
pub fn bias_gelu(x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    let f = bias.elem_count();
    if x.dims().last() != Some(&f) {
        candle_core::bail!("bias_gelu: input {:?} does not end in [{f}]", x.dims());
    }
    x.contiguous()?.apply_op2(&bias.contiguous()?, BiasGeluOp)
}

// ---------------------------------------------------------------------------------------------
// Masked softmax

struct MaskedSoftmaxOp {
    /// Rows (queries) per mask row: heads × queries.
    rows_per_mask: usize,
}

impl CustomOp2 for MaskedSoftmaxOp {
    fn name(&self) -> &'static str {
        "splade-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, mask) = (slice(s1, l1)?, slice(s2, l2)?);
        let keys = l1.dims().last().copied().unwrap_or(1).max(1);
        let per_mask = self.rows_per_mask;
        let out = map_rows(x.len() / keys, keys, |rows, out| {
            let x = &x[rows.start * keys..rows.end * keys];
            for (i, (o, row)) in out.chunks_mut(keys).zip(x.chunks(keys)).enumerate() {
                let m = (rows.start + i) / per_mask;
                super::softmax_row::softmax_row(row, &mask[m * keys..(m + 1) * keys], o);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let keys = x.dims().last().copied().unwrap_or(1).max(1);
        let dx = with_data(res, |p| {
            with_data(grad, |g| {
                let dx = map_rows(p.len() / keys, keys, |rows, dx| {
                    let p = &p[rows.start * keys..rows.end * keys];
                    let g = &g[rows.start * keys..rows.end * keys];
                    for ((dx, p), g) in dx.chunks_mut(keys).zip(p.chunks(keys)).zip(g.chunks(keys))
                    {
                        let dot: f32 = p.iter().zip(g).map(|(a, b)| a * b).sum();
                        for j in 0..keys {
                            dx[j] = p[j] * (g[j] - dot);
                        }
                    }
                });
                Ok(dx)
            })
        })?;
        Ok((Some(Tensor::from_vec(dx, x.shape(), x.device())?), None))
    }
}

/// `softmax(scores + mask_bias)` over the last dimension: `scores` `[batch, heads, queries,
/// keys]`, `mask_bias` `[batch, 1, 1, keys]` (0 for real keys, a large negative value for
/// padding). Differentiable in `scores`.
pub fn masked_softmax(scores: &Tensor, mask_bias: &Tensor) -> candle_core::Result<Tensor> {
    let (b, heads, queries, keys) = scores.dims4()?;
    if mask_bias.dims() != [b, 1, 1, keys] {
        candle_core::bail!(
            "masked_softmax: mask {:?} does not match scores {:?}",
            mask_bias.dims(),
            scores.dims()
        );
    }
    scores.contiguous()?.apply_op2(
        &mask_bias.contiguous()?,
        MaskedSoftmaxOp {
            rows_per_mask: heads * queries,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp, Var, D};

    use crate::model::test_data::max_diff;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        crate::model::test_data::tensor(shape, seed, 2.0, 0.0)
    }

    /// A fixed random linear functional of `y`, so every output element gets its own gradient.
    fn functional(y: &Tensor, seed: u64) -> Tensor {
        (y * random(y.dims(), seed)).unwrap().sum_all().unwrap()
    }

    #[test]
    fn layer_norm_matches_the_composite_ops_forward_and_backward() {
        let x = Var::from_tensor(&random(&[37, 48], 1)).unwrap();
        let w = Var::from_tensor(&random(&[48], 2)).unwrap();
        let b = Var::from_tensor(&random(&[48], 3)).unwrap();
        let eps = 1e-12;
        let fused = layer_norm(&x, &w, &b, eps).unwrap();
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let centered = x.broadcast_sub(&mean).unwrap();
        let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let composite = centered
            .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&w)
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert!(max_diff(&fused, &composite) < 1e-5);
        let gf = functional(&fused, 9).backward().unwrap();
        let gc = functional(&composite, 9).backward().unwrap();
        for v in [&x, &w, &b] {
            let d = max_diff(gf.get(v).unwrap(), gc.get(v).unwrap());
            assert!(d < 1e-4, "gradient differs by {d}");
        }
    }

    #[test]
    fn bias_gelu_matches_the_composite_ops_forward_and_backward() {
        let x = Var::from_tensor(&random(&[2, 19, 40], 4)).unwrap();
        let b = Var::from_tensor(&random(&[40], 5)).unwrap();
        let fused = bias_gelu(&x, &b).unwrap();
        let composite = x.broadcast_add(&b).unwrap().gelu_erf().unwrap();
        assert!(max_diff(&fused, &composite) < 1e-5);
        let gf = functional(&fused, 8).backward().unwrap();
        let gc = functional(&composite, 8).backward().unwrap();
        for v in [&x, &b] {
            let d = max_diff(gf.get(v).unwrap(), gc.get(v).unwrap());
            assert!(d < 1e-4, "gradient differs by {d}");
        }
    }

    #[test]
    fn masked_softmax_matches_the_composite_ops_forward_and_backward() {
        let scores = Var::from_tensor(&random(&[3, 2, 5, 5], 6)).unwrap();
        // Text 0 has 5 real keys, text 1 three, text 2 one.
        let mask: Vec<f32> = [5usize, 3, 1]
            .iter()
            .flat_map(|&len| (0..5).map(move |j| if j < len { 0.0 } else { f32::MIN }))
            .collect();
        let mask = Tensor::from_vec(mask, (3, 1, 1, 5), &Device::Cpu).unwrap();
        let fused = masked_softmax(&scores, &mask).unwrap();
        let composite =
            candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
        assert!(max_diff(&fused, &composite) < 1e-6);
        // Masked keys get exactly zero probability.
        let p: Vec<f32> = fused.i((2, 1, 4)).unwrap().to_vec1().unwrap();
        assert!(p[1..].iter().all(|&v| v == 0.0), "{p:?}");
        assert!((p[0] - 1.0).abs() < 1e-6);
        let gf = functional(&fused, 7).backward().unwrap();
        let gc = functional(&composite, 7).backward().unwrap();
        let d = max_diff(gf.get(&scores).unwrap(), gc.get(&scores).unwrap());
        assert!(d < 1e-5, "gradient differs by {d}");
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let x = random(&[4, 8], 1);
        assert!(layer_norm(&x, &random(&[7], 2), &random(&[7], 3), 1e-5).is_err());
        assert!(bias_gelu(&x, &random(&[3], 2)).is_err());
        assert!(masked_softmax(&random(&[1, 1, 2, 3], 1), &random(&[1, 1, 1, 2], 2)).is_err());
    }
}
