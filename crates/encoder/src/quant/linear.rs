//! A dense layer `y = x Wᵀ + b` on int8 weights with dynamically quantized activations.

use rayon::prelude::*;

use super::gemm::{gemm_i32, Int8Path};
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
        Self {
            weights: QuantizedWeights::quantize(weight, out_dim, in_dim),
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
    pub fn forward(&self, x: &[f32], m: usize, path: Int8Path) -> Vec<f32> {
        let (n, k) = (self.weights.n, self.weights.k);
        let a = QuantizedRows::quantize(x, m, k);
        let mut y = vec![0f32; m * n];
        let out = SharedOut(y.as_mut_ptr());
        let panels = self.weights.panels();
        let tiles: Vec<(usize, usize)> = (0..m.div_ceil(ROW_BLOCK))
            .flat_map(|rb| (0..panels.div_ceil(PANEL_BLOCK)).map(move |cb| (rb, cb)))
            .collect();
        tiles
            .into_par_iter()
            .for_each_init(Vec::new, |buf, (rb, cb)| {
                let rows = rb * ROW_BLOCK..(m.min((rb + 1) * ROW_BLOCK));
                let ps = cb * PANEL_BLOCK..panels.min((cb + 1) * PANEL_BLOCK);
                let ldc = ps.len() * PANEL;
                buf.resize(rows.len() * ldc, 0i32);
                gemm_i32(path, &a, rows.clone(), &self.weights, ps.clone(), buf, ldc);
                let c0 = ps.start * PANEL;
                let c1 = n.min(ps.end * PANEL);
                for (i, r) in rows.enumerate() {
                    let (sx, zx) = (a.scales[r], a.zeros[r]);
                    // SAFETY: row r, columns c0..c1 belong to this tile only; r < m, c1 ≤ n.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(out.get().add(r * n + c0), c1 - c0)
                    };
                    let acc = &buf[i * ldc..i * ldc + (c1 - c0)];
                    let scales = &self.weights.scales[c0..c1];
                    let sums = &self.weights.col_sums[c0..c1];
                    for (j, d) in dst.iter_mut().enumerate() {
                        let v = sx * scales[j] * (acc[j] - zx * sums[j]) as f32;
                        *d = match &self.bias {
                            Some(b) => v + b[c0 + j],
                            None => v,
                        };
                    }
                }
            });
        y
    }
}
