//! AdamW with decoupled weight decay, fused: one pass over each parameter's values instead of
//! a dozen whole-tensor temporaries (candle-nn's version). Same update as `torch.optim.AdamW`:
//! θ ← θ·(1 − lr·λ) − lr · m̂ / (√v̂ + ε), with bias-corrected moments.

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

/// AdamW hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay (0.9).
    pub beta1: f64,
    /// Second-moment decay (0.999).
    pub beta2: f64,
    /// Denominator epsilon (1e-8).
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 2e-5,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct Slot {
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// A fused AdamW over a set of f32 CPU variables.
pub struct AdamW {
    slots: Vec<Slot>,
    config: AdamWConfig,
    step: i32,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()
}

impl AdamW {
    /// Optimises `vars` (moments start at zero).
    pub fn new(vars: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                Slot {
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        Ok(Self {
            slots,
            config,
            step: 0,
        })
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    /// Saves the moments (`m.NAME`, `v.NAME`, by the variables' names in `names`, in the
    /// order the variables were given) to a safetensors file; the step count is returned for
    /// the caller to store.
    pub fn save_state(&self, names: &[String], path: &std::path::Path) -> Result<i32> {
        let mut tensors = std::collections::HashMap::new();
        for (slot, name) in self.slots.iter().zip(names) {
            let shape = slot.var.shape().clone();
            tensors.insert(
                format!("m.{name}"),
                Tensor::from_slice(&slot.m, shape.clone(), &Device::Cpu)?,
            );
            tensors.insert(
                format!("v.{name}"),
                Tensor::from_slice(&slot.v, shape, &Device::Cpu)?,
            );
        }
        candle_core::safetensors::save(&tensors, path)?;
        Ok(self.step)
    }

    /// Restores moments saved by [`Self::save_state`] and the step count.
    pub fn load_state(
        &mut self,
        names: &[String],
        path: &std::path::Path,
        step: i32,
    ) -> Result<()> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        for (slot, name) in self.slots.iter_mut().zip(names) {
            for (key, target) in [
                (format!("m.{name}"), &mut slot.m),
                (format!("v.{name}"), &mut slot.v),
            ] {
                let t = tensors.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("{}: no tensor '{key}'", path.display()))
                })?;
                let values = to_vec(t)?;
                if values.len() != target.len() {
                    candle_core::bail!(
                        "{}: '{key}' has {} values, expected {}",
                        path.display(),
                        values.len(),
                        target.len()
                    );
                }
                *target = values;
            }
        }
        self.step = step;
        Ok(())
    }

    /// One update from `grads`; variables without a gradient are left untouched (their
    /// moments too), as PyTorch skips parameters whose `.grad` is `None`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step);
        let bias2 = 1.0 - c.beta2.powi(self.step);
        let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        let step_size = (c.lr / bias1) as f32;
        let bias2_sqrt = bias2.sqrt() as f32;
        let eps = c.eps as f32;
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let g = to_vec(g)?;
            let mut theta = to_vec(slot.var.as_tensor())?;
            for (((t, m), v), &g) in theta.iter_mut().zip(&mut slot.m).zip(&mut slot.v).zip(&g) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                let denom = v.sqrt() / bias2_sqrt + eps;
                *t = *t * decay - step_size * *m / denom;
            }
            let shape = slot.var.shape().clone();
            slot.var
                .set(&Tensor::from_vec(theta, shape, slot.var.device())?)?;
        }
        Ok(())
    }
}
