//! Quantization of weights (per output channel, packed into panels) and of activations (per
//! row, dynamic).

use rayon::prelude::*;

use super::activations::quantize_row;

/// Output channels per packed panel (one zmm register of i32 lanes).
pub const PANEL: usize = 16;
/// The largest quantized weight magnitude (7 bits: see the module doc on AVX2 saturation).
pub const WEIGHT_MAX: i32 = 127;
/// The largest quantized activation (u8).
pub const ACT_MAX: i32 = 127;

/// `k` rounded up to the 4-byte groups the kernels consume.
pub(crate) fn padded_k(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// An f32 weight matrix `[n, k]` (PyTorch's `[out, in]`) quantized per output channel and
/// packed for the kernels.
#[derive(Debug, Clone)]
pub struct QuantizedWeights {
    /// Output channels.
    pub n: usize,
    /// Input size.
    pub k: usize,
    /// `k` padded to a multiple of 4.
    pub k4: usize,
    /// `[n.div_ceil(PANEL)][k4 / 4][PANEL][4]` quantized weights (padding holds 0).
    pub(crate) packed: Vec<i8>,
    /// `[n]` per-channel scales: `w ≈ scale · q`.
    pub scales: Vec<f32>,
    /// `[n]` `Σ_k q[n][k]`, for the activations' zero points.
    pub col_sums: Vec<i32>,
}

impl QuantizedWeights {
    /// Quantizes `w` `[n, k]` row-major. Channels that are all zero get scale 1 (and zeros).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(
            w.len(),
            n * k,
            "weights of {} values are not [{n}, {k}]",
            w.len()
        );
        let k4 = padded_k(k);
        let panels = n.div_ceil(PANEL);
        let mut packed = vec![0i8; panels * k4 * PANEL];
        let mut scales = vec![1f32; n];
        let mut col_sums = vec![0i32; n];
        packed
            .par_chunks_mut(k4 * PANEL)
            .zip(scales.par_chunks_mut(PANEL))
            .zip(col_sums.par_chunks_mut(PANEL))
            .enumerate()
            .for_each(|(p, ((panel, scales), sums))| {
                for (lane, (scale, sum)) in scales.iter_mut().zip(sums.iter_mut()).enumerate() {
                    let row = &w[(p * PANEL + lane) * k..(p * PANEL + lane + 1) * k];
                    let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    if max > 0.0 {
                        *scale = max / WEIGHT_MAX as f32;
                    }
                    let inv = 1.0 / *scale;
                    let mut s = 0i32;
                    for (i, &v) in row.iter().enumerate() {
                        let q = (v * inv)
                            .round_ties_even()
                            .clamp(-WEIGHT_MAX as f32, WEIGHT_MAX as f32)
                            as i8;
                        panel[(i / 4) * PANEL * 4 + lane * 4 + i % 4] = q;
                        s += q as i32;
                    }
                    *sum = s;
                }
            });
        Self {
            n,
            k,
            k4,
            packed,
            scales,
            col_sums,
        }
    }

    /// Packed panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// The quantized weight `q[j][i]` (from the packed layout).
    pub fn q(&self, j: usize, i: usize) -> i8 {
        let (p, lane) = (j / PANEL, j % PANEL);
        self.packed[p * self.k4 * PANEL + (i / 4) * PANEL * 4 + lane * 4 + i % 4]
    }

    /// Row `j` dequantized: `scale[j] · q[j][..]`.
    pub fn dequantized_row(&self, j: usize) -> Vec<f32> {
        (0..self.k)
            .map(|i| self.scales[j] * self.q(j, i) as f32)
            .collect()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.packed.len() + 8 * self.n
    }
}

/// Activations `[m, k]` quantized per row to u8 with a zero point.
#[derive(Debug, Clone)]
pub struct QuantizedRows {
    /// Rows.
    pub m: usize,
    /// Input size.
    pub k: usize,
    /// `k` padded to a multiple of 4.
    pub k4: usize,
    /// `[m][k4]` quantized values (padding holds 0; the weights' padding is 0 too).
    pub data: Vec<u8>,
    /// `[m]` scales: `x ≈ scale · (q - zero)`; NaN for a row holding a NaN or an infinity, so
    /// every output of that row is NaN (and caught as the f32 path's would be).
    pub scales: Vec<f32>,
    /// `[m]` zero points in `[0, ACT_MAX]`.
    pub zeros: Vec<i32>,
}

impl QuantizedRows {
    /// Quantizes `x` `[m, k]` row-major, each row over its own `[min(x, 0), max(x, 0)]` range.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        assert_eq!(
            x.len(),
            m * k,
            "activations of {} values are not [{m}, {k}]",
            x.len()
        );
        let k4 = padded_k(k);
        let mut data = vec![0u8; m * k4];
        let mut scales = vec![1f32; m];
        let mut zeros = vec![0i32; m];
        let rows_per_task = (16384 / k.max(1)).max(1);
        data.par_chunks_mut(k4 * rows_per_task)
            .zip(scales.par_chunks_mut(rows_per_task))
            .zip(zeros.par_chunks_mut(rows_per_task))
            .enumerate()
            .for_each(|(t, ((data, scales), zeros))| {
                for (r, (out, (scale, zero))) in data
                    .chunks_mut(k4)
                    .zip(scales.iter_mut().zip(zeros.iter_mut()))
                    .enumerate()
                {
                    let row = &x[(t * rows_per_task + r) * k..(t * rows_per_task + r + 1) * k];
                    (*scale, *zero) = quantize_row(row, &mut out[..k]);
                }
            });
        Self {
            m,
            k,
            k4,
            data,
            scales,
            zeros,
        }
    }

    /// Row `r`'s quantized values (`k4` of them).
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.k4..(r + 1) * self.k4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Weights come back within half a step of their channel's scale; activations within half
    /// a step of their row's (plus clamping of the zero point, at most one step).
    #[test]
    fn round_trip_is_within_half_a_step() {
        let mut seed = 7;
        let (n, k) = (37, 13);
        let w: Vec<f32> = (0..n * k)
            .map(|i| lcg(&mut seed) * (1 + i % 5) as f32)
            .collect();
        let q = QuantizedWeights::quantize(&w, n, k);
        for j in 0..n {
            let deq = q.dequantized_row(j);
            let mut sum = 0;
            for i in 0..k {
                assert!((deq[i] - w[j * k + i]).abs() <= q.scales[j] * 0.5 * (1.0 + 1e-5));
                assert!((q.q(j, i) as i32).abs() <= WEIGHT_MAX);
                sum += q.q(j, i) as i32;
            }
            assert_eq!(sum, q.col_sums[j]);
            // The channel's largest weight maps to ±WEIGHT_MAX.
            assert!((0..k).any(|i| (q.q(j, i) as i32).abs() == WEIGHT_MAX));
        }
        // Padding channels and padding k hold zeros.
        for j in n..q.panels() * PANEL {
            assert!((0..q.k4).all(|i| q.q(j, i) == 0));
        }
        let (m, k) = (9, 30);
        let mut x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0 + 0.5).collect();
        x[k..2 * k].iter_mut().for_each(|v| *v = v.abs()); // row 1: all positive
        x[2 * k..3 * k].iter_mut().for_each(|v| *v = 0.0); // row 2: all zero
        let a = QuantizedRows::quantize(&x, m, k);
        for r in 0..m {
            let (s, z) = (a.scales[r], a.zeros[r]);
            for i in 0..k {
                let back = s * (a.row(r)[i] as i32 - z) as f32;
                assert!(
                    (back - x[r * k + i]).abs() <= s * 0.5 * (1.0 + 1e-4) + 1e-6,
                    "row {r} col {i}"
                );
            }
            assert!(a.row(r)[k..].iter().all(|&v| v == 0));
        }
        assert_eq!(a.zeros[1], 0);
        assert_eq!((a.scales[2], a.zeros[2]), (1.0, 0));
        // A NaN row gets a NaN scale.
        let mut bad = x.clone();
        bad[3 * k + 4] = f32::NAN;
        assert!(QuantizedRows::quantize(&bad, m, k).scales[3].is_nan());
    }
}
