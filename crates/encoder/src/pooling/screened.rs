//! The exact screened vocabulary projection for max pooling (inference, CPU, f32 features).
//!
//! Max pooling keeps, per text and vocabulary entry, only the largest logit, and only when it
//! is positive after the bias; most of the `tokens × vocab` logits are negative and never
//! matter. So the logits are first computed approximately with the int8 kernels
//! ([`crate::quant`]), each with a rigorous error bound, and the exact f32 dot product is
//! computed only for the (token, entry) pairs that can still matter:
//!
//! - approximate logit `a = s_x s_w (Σ q_x q_w − z Σ q_w)`, the exact product of the
//!   quantized vectors `x̂ · ŵ` (up to f32 rounding);
//! - `x·w − x̂·ŵ = (x − x̂)·w + x̂·(w − ŵ)`, so by Cauchy–Schwarz
//!   `|x·w − x̂·ŵ| ≤ ‖x − x̂‖₂‖w‖₂ + ‖x̂‖₂‖w − ŵ‖₂`, with the norms measured per token and
//!   per entry (not the worst case of half a step);
//! - plus float slack `γ‖x‖₂‖w‖₂` with `γ = (k + 8)·2⁻²³`, which covers the rounding of any
//!   f32 dot product of length `k` in any summation order (the unscreened path's GEMM, this
//!   module's exact dot) and of the approximate logit itself; the whole bound is then widened
//!   by 1e-4 relative for its own rounding.
//!
//! A pair (t, j) survives when `a + e ≥ −b_j` (its logit can be positive after the bias) and
//! `a + e ≥ max_{t' in the text} (a' − e')` (it can be the text's maximum). The maximum over
//! the survivors' exact logits is then the maximum over all of the text's exact logits
//! whenever that maximum is positive after the bias, so the active entries are the same as
//! the unscreened path's, with values from an f32 dot product (within float rounding of the
//! GEMM's). Features that could overflow (or are not finite) take the unscreened path, which
//! reports them.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use splade_sparse::SparseVector;

use super::screen_row::{screen_row, EntryBounds, TokenBound};
use super::PoolingActivation;
use crate::model::fused::with_data;
use crate::model::MlmHead;
use crate::quant::{gemm_i32, Int8Path, QuantizedRows, QuantizedWeights, PANEL};

/// Panels (of 16 entries) of one vocabulary block (one task).
const PANEL_BLOCK: usize = 16;
/// Token rows per int8 product inside a block.
const ROW_BLOCK: usize = 192;
/// Features whose norm product with the head could overflow f32 take the unscreened path.
const OVERFLOW_GUARD: f64 = 1e30;

/// The quantized head and its per-entry norms, built once per loaded model.
pub struct HeadScreen {
    weights: QuantizedWeights,
    /// `‖w_j‖₂` per entry.
    norm: Vec<f32>,
    /// `‖w_j − ŵ_j‖₂` per entry.
    err: Vec<f32>,
    /// The largest `‖w_j‖₂`.
    max_norm: f64,
    path: Int8Path,
    logits: AtomicU64,
    positive: AtomicU64,
    exact: AtomicU64,
}

/// Counters of the screened projection since the model was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScreenStats {
    /// (token, entry) logits the unscreened path would compute.
    pub logits: u64,
    /// Those whose bound allowed a positive logit (after the bias).
    pub positive_possible: u64,
    /// Those computed exactly (could also be their text's maximum).
    pub exact: u64,
}

impl std::fmt::Debug for HeadScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadScreen")
            .field("entries", &self.weights.n)
            .field("path", &self.path)
            .finish()
    }
}

impl HeadScreen {
    /// Quantizes the head's decoder matrix (on the CPU) for screening on `path`.
    pub fn new(head: &MlmHead, path: Int8Path) -> candle_core::Result<Self> {
        let (n, k) = head.weight.dims2()?;
        let weight = head.weight.to_device(&Device::Cpu)?;
        let (weights, norm, err) = with_data(&weight, |w| {
            let weights = QuantizedWeights::quantize(w, n, k);
            let (norm, err): (Vec<f32>, Vec<f32>) = (0..n)
                .into_par_iter()
                .map(|j| {
                    let row = &w[j * k..(j + 1) * k];
                    let s = weights.scales[j] as f64;
                    let (mut nn, mut ee) = (0f64, 0f64);
                    for (i, &v) in row.iter().enumerate() {
                        let d = v as f64 - s * weights.q(j, i) as f64;
                        nn += (v as f64) * (v as f64);
                        ee += d * d;
                    }
                    (nn.sqrt() as f32, ee.sqrt() as f32)
                })
                .unzip();
            Ok((weights, norm, err))
        })?;
        let max_norm = norm.iter().fold(0f64, |m, &v| m.max(v as f64));
        Ok(Self {
            weights,
            norm,
            err,
            max_norm,
            path,
            logits: AtomicU64::new(0),
            positive: AtomicU64::new(0),
            exact: AtomicU64::new(0),
        })
    }

    /// Vocabulary entries.
    pub fn entries(&self) -> usize {
        self.weights.n
    }

    /// The counters since loading.
    pub fn stats(&self) -> ScreenStats {
        ScreenStats {
            logits: self.logits.load(Ordering::Relaxed),
            positive_possible: self.positive.load(Ordering::Relaxed),
            exact: self.exact.load(Ordering::Relaxed),
        }
    }

    /// Bytes held by the quantized copy.
    pub fn bytes(&self) -> usize {
        self.weights.bytes() + 8 * self.norm.len()
    }
}

/// One vocabulary block's `(text, entry, max logit)` maxima and its pair counts.
type BlockResult = (Vec<(u32, u32, f32)>, u64, u64);

/// Per-token quantities of the bound.
struct TokenSide {
    a: QuantizedRows,
    /// `‖x − x̂‖₂ + γ‖x‖₂`, widened.
    alpha: Vec<f32>,
    /// `‖x̂‖₂`, widened.
    beta: Vec<f32>,
    /// The text of each token row.
    text: Vec<u32>,
}

/// Max-pooled sparse vectors of packed features `[n, hidden]` (text `r` is rows
/// `starts[r]..starts[r + 1]`), or `None` when the features must take the unscreened path
/// (not finite, or large enough to overflow).
pub(crate) fn pool_max_screened(
    tokens: &Tensor,
    starts: &[usize],
    head: &MlmHead,
    screen: &HeadScreen,
    activation: PoolingActivation,
) -> candle_core::Result<Option<Vec<SparseVector>>> {
    let (n, k) = tokens.dims2()?;
    let vocab = screen.weights.n;
    if head.weight.dims2()? != (vocab, k) || !tokens.device().is_cpu() {
        candle_core::bail!("screened projection: the head does not match the features");
    }
    let batch = starts.len() - 1;
    let bias = head.bias.to_device(&Device::Cpu)?.to_vec1::<f32>()?;
    let weight = head.weight.to_device(&Device::Cpu)?;
    let found = with_data(tokens, |x| {
        let Some(side) = token_side(x, n, k, starts, screen.max_norm) else {
            return Ok(None);
        };
        with_data(&weight, |w| {
            let blocks = screen.weights.panels().div_ceil(PANEL_BLOCK);
            let per_block: Vec<BlockResult> = (0..blocks)
                .into_par_iter()
                .map(|blk| screen_block(blk, x, w, k, &side, screen, &bias, batch))
                .collect();
            Ok(Some(per_block))
        })
    })?;
    let Some(per_block) = found else {
        return Ok(None);
    };
    let (mut positive, mut exact) = (0, 0);
    let mut per_text: Vec<Vec<(u32, f32)>> = vec![Vec::new(); batch];
    for (maxima, p, e) in per_block {
        positive += p;
        exact += e;
        for (r, j, logit) in maxima {
            let v = activation.weight(logit + bias[j as usize]);
            if v > 0.0 {
                per_text[r as usize].push((j, v));
            }
        }
    }
    screen
        .logits
        .fetch_add((n * vocab) as u64, Ordering::Relaxed);
    screen.positive.fetch_add(positive, Ordering::Relaxed);
    screen.exact.fetch_add(exact, Ordering::Relaxed);
    per_text
        .into_iter()
        .map(|entries| {
            // Blocks come in vocabulary order and each block's entries in order.
            let (indices, values): (Vec<u32>, Vec<f32>) = entries.into_iter().unzip();
            SparseVector::new(indices, values).map_err(|e| candle_core::Error::Msg(e.to_string()))
        })
        .collect::<candle_core::Result<Vec<_>>>()
        .map(Some)
}

/// Quantizes the tokens and measures their side of the bound; `None` when a row is not
/// finite or could overflow.
fn token_side(
    x: &[f32],
    n: usize,
    k: usize,
    starts: &[usize],
    max_w_norm: f64,
) -> Option<TokenSide> {
    let a = QuantizedRows::quantize(x, n, k);
    let gamma = (k as f64 + 8.0) * f64::powi(2.0, -23);
    let widen = 1.0 + 1e-4;
    let sides: Vec<Option<(f32, f32)>> = (0..n)
        .into_par_iter()
        .map(|t| {
            let row = &x[t * k..(t + 1) * k];
            let (s, z) = (a.scales[t] as f64, a.zeros[t] as f64);
            if !s.is_finite() {
                return None;
            }
            let q = a.row(t);
            let (mut nx, mut nh, mut ne) = (0f64, 0f64, 0f64);
            for (&v, &qv) in row.iter().zip(q) {
                let h = s * (qv as f64 - z);
                let v = v as f64;
                nx += v * v;
                nh += h * h;
                ne += (v - h) * (v - h);
            }
            let nx = nx.sqrt();
            if nx * max_w_norm > OVERFLOW_GUARD {
                return None;
            }
            let alpha = (ne.sqrt() + gamma * nx) * widen;
            let beta = nh.sqrt() * widen;
            Some((alpha as f32 * (1.0 + 1e-6), beta as f32 * (1.0 + 1e-6)))
        })
        .collect();
    let mut alpha = Vec::with_capacity(n);
    let mut beta = Vec::with_capacity(n);
    for s in sides {
        let (al, be) = s?;
        alpha.push(al);
        beta.push(be);
    }
    let mut text = vec![0u32; n];
    for r in 0..starts.len() - 1 {
        text[starts[r]..starts[r + 1]].fill(r as u32);
    }
    Some(TokenSide {
        a,
        alpha,
        beta,
        text,
    })
}

/// One vocabulary block: the approximate logits of every token, the survivors, their exact
/// logits; returns `(text, entry, max logit)` for the entries that can be active, and the
/// counts of positive-possible and exactly computed pairs.
#[allow(clippy::too_many_arguments)]
fn screen_block(
    blk: usize,
    x: &[f32],
    w: &[f32],
    k: usize,
    side: &TokenSide,
    screen: &HeadScreen,
    bias: &[f32],
    batch: usize,
) -> BlockResult {
    let q = &screen.weights;
    let panels = blk * PANEL_BLOCK..q.panels().min((blk + 1) * PANEL_BLOCK);
    let c0 = panels.start * PANEL;
    let c1 = q.n.min(panels.end * PANEL);
    let width = c1 - c0;
    let ldc = panels.len() * PANEL;
    let n = side.a.m;
    // The best lower bound per (text, entry) and the pairs that can be positive.
    let mut lower = vec![f32::NEG_INFINITY; batch * width];
    let mut candidates: Vec<(u32, u32, f32)> = Vec::new();
    let mut acc = vec![0i32; ROW_BLOCK.min(n) * ldc];
    let neg_bias: Vec<f32> = bias[c0..c1].iter().map(|b| -b).collect();
    let entries = EntryBounds {
        scales: &q.scales[c0..c1],
        sums: &q.col_sums[c0..c1],
        norm: &screen.norm[c0..c1],
        err: &screen.err[c0..c1],
        neg_bias: &neg_bias,
    };
    let mut t0 = 0;
    while t0 < n {
        let rows = t0..n.min(t0 + ROW_BLOCK);
        gemm_i32(
            screen.path,
            &side.a,
            rows.clone(),
            q,
            panels.clone(),
            &mut acc,
            ldc,
        );
        for (i, t) in rows.enumerate() {
            let token = TokenBound {
                scale: side.a.scales[t],
                zero: side.a.zeros[t],
                alpha: side.alpha[t],
                beta: side.beta[t],
            };
            let r = side.text[t] as usize;
            screen_row(
                &acc[i * ldc..i * ldc + width],
                token,
                &entries,
                &mut lower[r * width..(r + 1) * width],
                &mut |j, hi| candidates.push((t as u32, j as u32, hi)),
            );
        }
        t0 += ROW_BLOCK;
    }
    let positive = candidates.len() as u64;
    // Exact logits of the candidates that can also be their text's maximum.
    let mut best = vec![f32::NEG_INFINITY; batch * width];
    let mut touched: Vec<u32> = Vec::new();
    let mut exact = 0u64;
    for &(t, j, hi) in &candidates {
        let (t, j) = (t as usize, j as usize);
        let slot = side.text[t] as usize * width + j;
        if hi < lower[slot] {
            continue;
        }
        exact += 1;
        let logit = dot(&x[t * k..(t + 1) * k], &w[(c0 + j) * k..(c0 + j + 1) * k]);
        if best[slot] == f32::NEG_INFINITY {
            touched.push(slot as u32);
        }
        if logit > best[slot] {
            best[slot] = logit;
        }
    }
    touched.sort_unstable();
    let maxima = touched
        .into_iter()
        .map(|slot| {
            let slot = slot as usize;
            (
                (slot / width) as u32,
                (c0 + slot % width) as u32,
                best[slot],
            )
        })
        .collect::<Vec<_>>();
    // Per text in vocabulary order: sort by (text, entry).
    let mut maxima = maxima;
    maxima.sort_unstable_by_key(|&(r, j, _)| (r, j));
    (maxima, positive, exact)
}

/// An f32 dot product in a fixed order (16 lanes, then a fixed tree), the same on every CPU.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { dot_avx2(a, b) };
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0]
}
