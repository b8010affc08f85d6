//! AdamW with decoupled weight decay. Same update as `torch.optim.AdamW`:
//! θ ← θ·(1 − lr·λ) − lr · m̂ / (√v̂ + ε), with bias-corrected moments.
//!
//! On the CPU it is fused: one pass over each parameter's values, moments in host memory,
//! instead of a dozen whole-tensor temporaries (candle-nn's version). On other devices (CUDA)
//! the moments are device tensors and the update is a short chain of candle ops, so nothing
//! leaves the device.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use rayon::prelude::*;

/// Values per parallel task of the host update.
const PARALLEL_CHUNK: usize = 1 << 16;

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

/// A variable's first and second moments.
enum Moments {
    /// In host memory, updated by the fused loop (CPU variables).
    Host { m: Vec<f32>, v: Vec<f32> },
    /// On the variable's device, updated with tensor ops.
    Device { m: Tensor, v: Tensor },
}

struct Slot {
    var: Var,
    moments: Moments,
    /// Whether weight decay applies to this variable.
    decay: bool,
    /// This variable's learning rate over the optimiser's (a `learning_rate_mapping` group).
    lr_scale: f64,
}

/// AdamW over a set of f32 variables (see the module docs for the CPU and device paths).
pub struct AdamW {
    slots: Vec<Slot>,
    config: AdamWConfig,
    step: i32,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()
}

impl AdamW {
    /// Optimises `vars` (moments start at zero): the fused host loop for CPU variables, tensor
    /// ops on the variables' device otherwise.
    /// Weight decay applies to every variable, as `torch.optim.AdamW(model.parameters())`.
    pub fn new(vars: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let decay = vec![true; vars.len()];
        Self::build(vars, decay, config, false)
    }

    /// Optimises named variables, with weight decay only on those `decays(name)` accepts (see
    /// [`decays_like_hf_trainer`], the grouping sentence-transformers' trainer uses).
    pub fn with_decay_filter(
        vars: &[(String, Var)],
        config: AdamWConfig,
        decays: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let decay = vars.iter().map(|(name, _)| decays(name)).collect();
        Self::build(
            vars.iter().map(|(_, v)| v.clone()).collect(),
            decay,
            config,
            false,
        )
    }

    /// [`Self::new`] with the device (tensor-op) path for every variable, CPU ones included:
    /// the path GPU training takes, runnable and testable on the CPU.
    pub fn with_device_moments(vars: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let decay = vec![true; vars.len()];
        Self::build(vars, decay, config, true)
    }

    fn build(
        vars: Vec<Var>,
        decay: Vec<bool>,
        config: AdamWConfig,
        device_moments: bool,
    ) -> Result<Self> {
        let slots = vars
            .into_iter()
            .zip(decay)
            .map(|(var, decay)| {
                if var.dtype() != DType::F32 {
                    candle_core::bail!(
                        "AdamW optimises f32 variables (master weights); got a {:?} one",
                        var.dtype()
                    );
                }
                let moments = if var.device().is_cpu() && !device_moments {
                    let n = var.elem_count();
                    Moments::Host {
                        m: vec![0.0; n],
                        v: vec![0.0; n],
                    }
                } else {
                    let zeros = || Tensor::zeros(var.shape(), DType::F32, var.device());
                    Moments::Device {
                        m: zeros()?,
                        v: zeros()?,
                    }
                };
                Ok(Slot {
                    var,
                    moments,
                    decay,
                    lr_scale: 1.0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            config,
            step: 0,
        })
    }

    /// Gives variable `index` (in the order given to the constructor) the learning rate
    /// `scale` × the optimiser's, at every step: a parameter group of its own whose initial
    /// learning rate follows the same schedule, as a Hugging Face scheduler scales every
    /// group's initial rate.
    pub fn set_lr_scale(&mut self, index: usize, scale: f64) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.lr_scale = scale;
        }
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
            let (m, v) = match &slot.moments {
                Moments::Host { m, v } => (
                    Tensor::from_slice(m, shape.clone(), &Device::Cpu)?,
                    Tensor::from_slice(v, shape, &Device::Cpu)?,
                ),
                Moments::Device { m, v } => {
                    (m.to_device(&Device::Cpu)?, v.to_device(&Device::Cpu)?)
                }
            };
            tensors.insert(format!("m.{name}"), m);
            tensors.insert(format!("v.{name}"), v);
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
            let read = |key: String| -> Result<Vec<f32>> {
                let t = tensors.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("{}: no tensor '{key}'", path.display()))
                })?;
                let values = to_vec(t)?;
                if values.len() != slot.var.elem_count() {
                    candle_core::bail!(
                        "{}: '{key}' has {} values, expected {}",
                        path.display(),
                        values.len(),
                        slot.var.elem_count()
                    );
                }
                Ok(values)
            };
            let (m, v) = (read(format!("m.{name}"))?, read(format!("v.{name}"))?);
            slot.moments = match slot.moments {
                Moments::Host { .. } => Moments::Host { m, v },
                Moments::Device { .. } => {
                    let (shape, dev) = (slot.var.shape().clone(), slot.var.device().clone());
                    Moments::Device {
                        m: Tensor::from_vec(m, shape.clone(), &dev)?,
                        v: Tensor::from_vec(v, shape, &dev)?,
                    }
                }
            };
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
        let bias2_sqrt = bias2.sqrt() as f32;
        let eps = c.eps as f32;
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let lr = c.lr * slot.lr_scale;
            let step_size = (lr / bias1) as f32;
            let decay_factor = if slot.decay {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            let decay = decay_factor as f32;
            match &mut slot.moments {
                Moments::Host { m, v } => {
                    let g = to_vec(g)?;
                    let mut theta = to_vec(slot.var.as_tensor())?;
                    // Element-wise, so splitting the work over threads changes no value.
                    theta
                        .par_chunks_mut(PARALLEL_CHUNK)
                        .zip(m.par_chunks_mut(PARALLEL_CHUNK))
                        .zip(v.par_chunks_mut(PARALLEL_CHUNK))
                        .zip(g.par_chunks(PARALLEL_CHUNK))
                        .for_each(|(((theta, m), v), g)| {
                            for (((t, m), v), &g) in theta.iter_mut().zip(m).zip(v).zip(g) {
                                *m = b1 * *m + (1.0 - b1) * g;
                                *v = b2 * *v + (1.0 - b2) * g * g;
                                let denom = v.sqrt() / bias2_sqrt + eps;
                                *t = *t * decay - step_size * *m / denom;
                            }
                        });
                    let shape = slot.var.shape().clone();
                    slot.var
                        .set(&Tensor::from_vec(theta, shape, slot.var.device())?)?;
                }
                Moments::Device { m, v } => {
                    let g = g.to_dtype(DType::F32)?.detach();
                    let (b1, b2) = (c.beta1, c.beta2);
                    *m = (m.affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
                    *v = (v.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
                    let denom = v.sqrt()?.affine(1.0 / bias2.sqrt(), c.eps)?;
                    let update = (&*m / denom)?.affine(lr / bias1, 0.0)?;
                    let theta =
                        (slot.var.as_tensor().detach().affine(decay_factor, 0.0)? - update)?;
                    slot.var.set(&theta)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether sentence-transformers' trainer (the Hugging Face `Trainer`) applies weight decay to
/// a parameter: every parameter except biases and LayerNorm weights (by checkpoint name:
/// `*.bias`, `*LayerNorm*`, `*layer_norm*`, and the older `gamma`/`beta` names).
pub fn decays_like_hf_trainer(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(lower.contains("bias")
        || lower.contains("layernorm")
        || lower.contains("layer_norm")
        || lower.ends_with(".gamma")
        || lower.ends_with(".beta"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::backprop::GradStore;

    fn var(values: &[f32]) -> Var {
        Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
    }

    /// Three steps of both paths on the same variables and gradients.
    #[test]
    fn device_path_matches_the_fused_host_loop() {
        let config = AdamWConfig {
            lr: 0.01,
            weight_decay: 0.01,
            ..AdamWConfig::default()
        };
        let init = [0.5f32, -1.0, 2.0, 0.0, 1e-3];
        let (a, b) = (var(&init), var(&init));
        let mut host = AdamW::new(vec![a.clone()], config).unwrap();
        let mut device = AdamW::with_device_moments(vec![b.clone()], config).unwrap();
        // A `learning_rate_mapping` group of its own (both paths scale the rate alike); the
        // check below that the paths agree and that the weights moved covers it.
        host.set_lr_scale(0, 3.0);
        device.set_lr_scale(0, 3.0);
        for step in 0..3 {
            // A gradient that depends on the weights, like a real one: 2·θ + step.
            let grad = |v: &Var| -> GradStore {
                let loss = (v.as_tensor().sqr().unwrap()
                    + v.as_tensor().affine(step as f64, 0.0).unwrap())
                .unwrap()
                .sum_all()
                .unwrap();
                loss.backward().unwrap()
            };
            host.step(&grad(&a)).unwrap();
            device.step(&grad(&b)).unwrap();
        }
        let (x, y): (Vec<f32>, Vec<f32>) = (
            a.as_tensor().to_vec1().unwrap(),
            b.as_tensor().to_vec1().unwrap(),
        );
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-6, "{x:?} vs {y:?}");
        }
        assert!(x.iter().zip(&init).all(|(p, q)| p != q), "weights moved");
        // Adam's first step moves each weight by about lr × scale: 0.03 for 0.5 (2·θ + 0 > 0).
        let mut single = AdamW::new(vec![var(&[0.5])], config).unwrap();
        single.set_lr_scale(0, 3.0);
        let v = single.slots[0].var.clone();
        let g = v
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        single.step(&g).unwrap();
        let moved = 0.5 - v.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((moved - (0.03 + 0.03 * 0.01 * 0.5)).abs() < 1e-6, "{moved}");
    }

    #[test]
    fn weight_decay_skips_biases_and_layer_norms_as_the_hf_trainer_does() {
        for name in [
            "distilbert.transformer.layer.0.ffn.lin1.bias",
            "distilbert.transformer.layer.0.sa_layer_norm.weight",
            "bert.embeddings.LayerNorm.gamma",
            "vocab_layer_norm.bias",
            "vocab_projector.bias",
        ] {
            assert!(!decays_like_hf_trainer(name), "{name}");
        }
        for name in [
            "distilbert.transformer.layer.0.ffn.lin1.weight",
            "distilbert.embeddings.word_embeddings.weight",
            "vocab_transform.weight",
        ] {
            assert!(decays_like_hf_trainer(name), "{name}");
        }
        // Same gradient (1) for both; only the weight also decays: Adam's first step moves each
        // by lr, and decay takes lr·λ·θ off the weight.
        let config = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..AdamWConfig::default()
        };
        let vars = vec![
            ("w.weight".to_string(), var(&[1.0])),
            ("w.bias".to_string(), var(&[1.0])),
        ];
        let mut opt = AdamW::with_decay_filter(&vars, config, decays_like_hf_trainer).unwrap();
        let loss = (vars[0].1.as_tensor().sum_all().unwrap()
            + vars[1].1.as_tensor().sum_all().unwrap())
        .unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let w: Vec<f32> = vars[0].1.as_tensor().to_vec1().unwrap();
        let b: Vec<f32> = vars[1].1.as_tensor().to_vec1().unwrap();
        assert!((w[0] - 0.85).abs() < 1e-6, "{w:?}");
        assert!((b[0] - 0.9).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn device_moments_save_and_restore() {
        let config = AdamWConfig::default();
        let v = var(&[1.0, 2.0, 3.0]);
        let mut opt = AdamW::with_device_moments(vec![v.clone()], config).unwrap();
        let loss = v.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        let names = vec!["w".to_string()];
        let step = opt.save_state(&names, &path).unwrap();
        let mut fresh = AdamW::new(vec![var(&[1.0, 2.0, 3.0])], config).unwrap();
        fresh.load_state(&names, &path, step).unwrap();
        let Moments::Host { m, .. } = &fresh.slots[0].moments else {
            panic!("a CPU variable gets host moments")
        };
        // m after one step = (1 - β1)·g with g = 2θ.
        assert!((m[2] - 0.1 * 6.0).abs() < 1e-6, "{m:?}");
    }
}
