//! Deterministic test data for the model kernels' tests: seeded xorshift values and the
//! largest difference between two tensors.

use candle_core::{Device, Tensor};

/// `len` values uniform in [-1, 1), the same sequence for the same `seed`.
pub(crate) fn uniform(len: usize, seed: u64) -> impl Iterator<Item = f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// `len` values uniform in [-2, 2).
pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
    uniform(len, seed).map(|u| 2.0 * u).collect()
}

/// A CPU tensor of `shape` with values `offset + scale * u`, `u` uniform in [-1, 1).
pub(crate) fn tensor(shape: &[usize], seed: u64, scale: f32, offset: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = uniform(n, seed).map(|u| offset + scale * u).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// The largest absolute difference between two tensors of the same shape.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}
