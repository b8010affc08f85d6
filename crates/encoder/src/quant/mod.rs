//! Int8 inference kernels: per-output-channel symmetric int8 weights, dynamic per-row (per
//! token) asymmetric u8 activations, and a u8 × i8 → i32 matrix product with AMX-INT8
//! (`tdpbusd` on tiles), AVX-512-VNNI (`vpdpbusd`), AVX-VNNI (`vpdpbusd` on ymm), AVX2
//! (`vpmaddubsw` + `vpmaddwd`) and portable paths chosen at run time. The dequantization (and the layer's bias) is fused into
//! the kernels' stores.
//!
//! The quantization scheme (one for every path, so every path gives the same i32 results and
//! a model encodes to the same vectors on every machine):
//! - weights `w[n][k] ≈ s_w[n] · q_w[n][k]` with `q_w ∈ [-127, 127]` (symmetric per output
//!   channel, [`WEIGHT_MAX`]);
//! - activations `x[m][k] ≈ s_x[m] · (q_x[m][k] - z[m])` with `q_x ∈ [0, 127]` (7 bits,
//!   [`ACT_MAX`]) and a zero point `z[m]` per row (asymmetric: post-GELU and LayerNorm
//!   outputs are skewed);
//! - `y[m][n] = s_x[m] · s_w[n] · (Σ_k q_x·q_w - z[m] · Σ_k q_w[n][k])`.
//!
//! Why 7-bit activations: AVX2's `vpmaddubsw` adds two u8 × i8 products into a *saturating*
//! i16; `127 · 127 · 2 = 32258` always fits, where full-range u8 (`255 · 127 · 2`) could
//! saturate and make the AVX2 result differ from VNNI's (which accumulates in i32).
//! onnxruntime's AVX2 configuration ("reduce range") takes the bit from the weights instead;
//! on splade-tiny (the fixture texts, every layer quantized) 8-bit weights with 7-bit
//! activations kept a mean active-set Jaccard vs f32 of 0.956, 7-bit weights with 8-bit
//! activations 0.939.
//!
//! The packed weight layout serves every path: panels of 16 output channels, and inside a
//! panel groups of 4 consecutive `k` per channel (`[k / 4][16][4]` bytes), which is what one
//! `vpdpbusd` on a zmm register consumes (16 i32 lanes × 4 byte pairs), two
//! `vpmaddubsw`/`vpmaddwd` pairs on ymm registers, and, 16 groups at a time, one AMX weight
//! tile (16 rows of 64 bytes).

mod activations;
#[cfg(target_arch = "x86_64")]
mod amx;
mod gemm;
mod linear;
mod pack;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use gemm::{gemm_dequant, gemm_i32, Dequant, Int8Path};
pub use linear::QuantizedLinear;
pub use pack::{QuantizedRows, QuantizedWeights, ACT_MAX, PANEL, WEIGHT_MAX};
