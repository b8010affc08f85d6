//! A dense layer `y = x Wᵀ + b` on int8 weights with dynamically quantized activations.

use rayon::prelude::*;

use super::gemm::{gemm_dequant_raw, Dequant, Int8Path};
use super::pack::{QuantizedRows, QuantizedWeights, PANEL};

/// Rows of one task (a multiple of both kernels' row counts).
const ROW_BLOCK: usize = 96;
/// Panels (of 16 channels) of one task.
const PANEL_BLOCK: usize = 16;

/// A quantized dense layer (weights `[out, in]` as PyTorch stores them).
#[derive(Debug, Clone)]
pub struct QuantizedLinear {
    /// The quantized, packed weights.
    pub weights: QuantizedWeights,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Vec<f32>>,
    /// The weights' scales, padded with zeros to whole panels (for the fused epilogue).
    col_scales: Vec<f32>,
    /// The weights' channel sums, padded to whole panels.
    col_sums: Vec<i32>,
    /// The bias (zeros without one), padded to whole panels.
    col_bias: Vec<f32>,
}

/// A raw output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every task writes a disjoint set of output elements (its own tile).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl QuantizedLinear {
    /// Quantizes `weight` `[out, in]` (row-major) per output channel.
    pub fn new(weight: &[f32], out_dim: usize, in_dim: usize, bias: Option<Vec<f32>>) -> Self {
        if let Some(b) = &bias {
            assert_eq!(
                b.len(),
                out_dim,
                "bias of {} values for {out_dim} outputs",
                b.len()
            );
        }
        let weights = QuantizedWeights::quantize(weight, out_dim, in_dim);
        let padded = weights.panels() * PANEL;
        let pad_f32 = |v: &[f32]| {
            let mut p = v.to_vec();
            p.resize(padded, 0.0);
            p
        };
        let mut col_sums = weights.col_sums.clone();
        col_sums.resize(padded, 0);
        Self {
            col_scales: pad_f32(&weights.scales),
            col_sums,
            col_bias: pad_f32(bias.as_deref().unwrap_or(&[])),
            weights,
            bias,
        }
    }

    /// Output size.
    pub fn out_dim(&self) -> usize {
        self.weights.n
    }

    /// Input size.
    pub fn in_dim(&self) -> usize {
        self.weights.k
    }

    /// `x Wᵀ + b` for `x` `[m, in]` row-major: `[m, out]`, on `path`, on rayon's threads.
    /// Each output is [`Dequant::apply`] of its exact int8 sum.
    pub fn forward(&self, x: &[f32], m: usize, path: Int8Path) -> Vec<f32> {
        self.forward_then(x, m, path, |_| {})
    }

    /// [`Self::forward`], then `post` on every stretch of a row that a task wrote, right
    /// after it wrote it (still in cache): an elementwise activation fused into the layer.
    /// `post` must treat every value on its own (the stretches' bounds are the tiles').
    pub fn forward_then(
        &self,
        x: &[f32],
        m: usize,
        path: Int8Path,
        post: impl Fn(&mut [f32]) + Sync,
    ) -> Vec<f32> {
        let (n, k) = (self.weights.n, self.weights.k);
        let a = QuantizedRows::quantize(x, m, k);
        let deq = Dequant {
            row_scales: &a.scales,
            row_zeros: &a.zeros,
            col_scales: &self.col_scales,
            col_sums: &self.col_sums,
            bias: &self.col_bias,
        };
        let mut y: Vec<f32> = Vec::with_capacity(m * n);
        let out = SharedOut(y.as_mut_ptr());
        let panels = self.weights.panels();
        let tiles: Vec<(usize, usize)> = (0..m.div_ceil(ROW_BLOCK))
            .flat_map(|rb| (0..panels.div_ceil(PANEL_BLOCK)).map(move |cb| (rb, cb)))
            .collect();
        tiles.into_par_iter().for_each(|(rb, cb)| {
            let rows = rb * ROW_BLOCK..(m.min((rb + 1) * ROW_BLOCK));
            let ps = cb * PANEL_BLOCK..panels.min((cb + 1) * PANEL_BLOCK);
            let c0 = ps.start * PANEL;
            // SAFETY: the tile (rows `rows`, columns `c0..c0 + cols`, leading dimension
            // `n`) lies inside the allocation of `m · n` values and no other task touches
            // it: every element of `y` belongs to exactly one tile.
            unsafe {
                gemm_dequant_raw(
                    path,
                    &a,
                    rows.clone(),
                    &self.weights,
                    ps.clone(),
                    &deq,
                    out.get().add(rows.start * n + c0),
                    n,
                )
            };
            let cols = n.min(ps.end * PANEL) - c0;
            for r in rows {
                // SAFETY: the tile's own, now initialized, elements of row `r` (as above).
                post(unsafe { std::slice::from_raw_parts_mut(out.get().add(r * n + c0), cols) });
            }
        });
        // SAFETY: `gemm_dequant_raw` wrote every element of every tile, so all `m · n`.
        unsafe { y.set_len(m * n) };
        y
    }
}
