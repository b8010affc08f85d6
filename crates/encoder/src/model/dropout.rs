//! Training-time dropout, as the Hugging Face models apply it: inverted dropout (kept values
//! scaled by 1/(1-p)) on the embeddings, on the attention probabilities, and on the output of
//! each residual branch before its LayerNorm. Masks come from a seeded ChaCha8 stream, so a run
//! is reproducible (and resumable: the trainer derives one stream per step).

use std::sync::Mutex;

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::BackboneConfig;

/// Dropout probabilities and the random stream their masks are drawn from.
#[derive(Debug)]
pub struct Dropout {
    hidden: f32,
    attention: f32,
    rng: Mutex<ChaCha8Rng>,
}

impl Dropout {
    /// Dropout with probability `hidden` on hidden states and `attention` on attention
    /// probabilities (each clamped to [0, 1)), masks drawn from a stream seeded with `seed`.
    pub fn new(hidden: f64, attention: f64, seed: u64) -> Self {
        let clamp = |p: f64| p.clamp(0.0, 0.999_999) as f32;
        Self {
            hidden: clamp(hidden),
            attention: clamp(attention),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// The probabilities of a model's `config.json` (`hidden_dropout_prob` and
    /// `attention_probs_dropout_prob` for BERT, `dropout` and `attention_dropout` for DistilBERT).
    pub fn from_config(config: &BackboneConfig, seed: u64) -> Self {
        Self::new(config.hidden_dropout, config.attention_dropout, seed)
    }

    /// Whether every probability is zero (the masks would be all ones).
    pub fn is_noop(&self) -> bool {
        self.hidden == 0.0 && self.attention == 0.0
    }

    /// Dropout on hidden states.
    pub(crate) fn hidden(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(x, self.hidden)
    }

    /// Dropout on attention probabilities.
    pub(crate) fn attention(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(x, self.attention)
    }

    fn apply(&self, x: &Tensor, p: f32) -> candle_core::Result<Tensor> {
        if p == 0.0 {
            return Ok(x.clone());
        }
        let scale = 1.0 / (1.0 - p);
        let n = x.elem_count();
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("dropout random stream poisoned".into()))?;
            (0..n)
                .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        if x.dtype() == mask.dtype() {
            x * mask
        } else {
            // Scale in f32: 1/(1-p) rounded to bf16 would shrink the kept values.
            (x.to_dtype(mask.dtype())? * mask)?.to_dtype(x.dtype())
        }
    }
}

/// Applies hidden-state dropout when a [`Dropout`] is given.
pub(crate) fn hidden(dropout: Option<&Dropout>, x: Tensor) -> candle_core::Result<Tensor> {
    match dropout {
        Some(d) => d.hidden(&x),
        None => Ok(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn keeps_the_expected_fraction_scaled_up() {
        let x = Tensor::ones((100, 1000), candle_core::DType::F32, &Device::Cpu).unwrap();
        let d = Dropout::new(0.1, 0.0, 7);
        let y: Vec<f32> = d
            .hidden(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let zeros = y.iter().filter(|v| **v == 0.0).count() as f64 / y.len() as f64;
        assert!((zeros - 0.1).abs() < 0.01, "dropped fraction {zeros}");
        let kept: Vec<f32> = y.iter().copied().filter(|v| *v != 0.0).collect();
        assert!(kept.iter().all(|v| (v - 1.0 / 0.9).abs() < 1e-6));
        // The mean is preserved in expectation.
        let mean = y.iter().map(|v| *v as f64).sum::<f64>() / y.len() as f64;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        // Attention dropout 0 is the identity.
        let z: Vec<f32> = d
            .attention(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(z.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn same_seed_same_masks() {
        let x = Tensor::ones(500, candle_core::DType::F32, &Device::Cpu).unwrap();
        let a: Vec<f32> = Dropout::new(0.5, 0.5, 3)
            .hidden(&x)
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = Dropout::new(0.5, 0.5, 3)
            .hidden(&x)
            .unwrap()
            .to_vec1()
            .unwrap();
        let c: Vec<f32> = Dropout::new(0.5, 0.5, 4)
            .hidden(&x)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
