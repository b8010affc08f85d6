//! Building blocks shared by the BERT-family backbones: linear layers, LayerNorm, activations
//! and multi-head self-attention, each usable on the fast inference path or on the
//! differentiable path (every op there has a backward in candle).

use candle_core::{DType, Module, Tensor, D};
use candle_nn::VarBuilder;

use super::attention_kernel;
use super::dense_cpu;
use super::dropout::Dropout;
use super::fused;
use super::packing::Packing;
use super::simd::F32Path;
use crate::config::HiddenAct;

/// Whether a forward pass must stay differentiable (training) or may use fused kernels that
/// detach the autograd graph (inference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    /// Fused kernels (candle's `layer_norm`, `softmax_last_dim`): fastest, no gradients.
    Inference,
    /// Composite ops only, so gradients reach every parameter.
    Differentiable,
}

/// Reads the first of several alternative tensor names (e.g. `weight` / `gamma`).
pub(crate) fn get_any(
    vb: &VarBuilder,
    shape: &[usize],
    names: &[&str],
) -> candle_core::Result<Tensor> {
    for name in names {
        if vb.contains_tensor(name) {
            return vb.get(shape, name);
        }
    }
    Err(candle_core::Error::Msg(format!(
        "tensor '{}' not found (also looked for {:?})",
        if vb.prefix().is_empty() {
            names[0].to_string()
        } else {
            format!("{}.{}", vb.prefix(), names[0])
        },
        &names[1..]
    )))
}

/// `t` in `dtype` (a differentiable cast when it differs: gradients come back in `t`'s dtype,
/// so f32 master weights train through bf16 activations).
pub fn as_dtype(t: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t.clone())
    } else {
        t.to_dtype(dtype)
    }
}

/// A dense layer `y = x Wᵀ + b` with PyTorch's weight layout `[out, in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// The int8 copy used by inference on the CPU (`--quantize int8`), and its kernel.
    int8: Option<(
        std::sync::Arc<crate::quant::QuantizedLinear>,
        crate::quant::Int8Path,
    )>,
}

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize) -> candle_core::Result<Self> {
        Self::load_with_bias(vb, in_dim, out_dim, true)
    }

    /// Loads `weight` `[out, in]`, and `bias` `[out]` when `bias` (a layer without one adds
    /// nothing).
    pub fn load_with_bias(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get((out_dim, in_dim), "weight")?,
            bias: if bias {
                Some(vb.get(out_dim, "bias")?)
            } else {
                None
            },
            int8: None,
        })
    }

    /// Makes inference on the CPU use int8 weights (per output channel) with dynamically
    /// quantized activations, on the kernel `path` (`--quantize int8`). The f32 weights stay
    /// (other devices and the differentiable path use them).
    pub fn quantize_int8(&mut self, path: crate::quant::Int8Path) -> candle_core::Result<()> {
        let (out_dim, in_dim) = self.weight.dims2()?;
        let weight = self.weight.to_device(&candle_core::Device::Cpu)?;
        let bias = match &self.bias {
            Some(b) => Some(b.to_device(&candle_core::Device::Cpu)?.to_vec1::<f32>()?),
            None => None,
        };
        let q = fused::with_data(&weight, |w| {
            Ok(crate::quant::QuantizedLinear::new(w, out_dim, in_dim, bias))
        })?;
        self.int8 = Some((std::sync::Arc::new(q), path));
        Ok(())
    }

    /// The int8 product for `x` when the layer is quantized and `x` is f32 on the CPU.
    fn forward_int8(&self, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        self.forward_int8_then(x, |_| {})
    }

    /// [`Self::forward_int8`] with the elementwise `post` applied to each output tile as
    /// soon as it is written (see [`crate::quant::QuantizedLinear::forward_then`]).
    fn forward_int8_then(
        &self,
        x: &Tensor,
        post: impl Fn(&mut [f32]) + Sync,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some((q, path)) = &self.int8 else {
            return Ok(None);
        };
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            return Ok(None);
        }
        let mut dims = x.dims().to_vec();
        let in_dim = dims.last().copied().unwrap_or(0);
        let rows = x.elem_count() / in_dim.max(1);
        let y = fused::with_data(x, |data| Ok(q.forward_then(data, rows, *path, post)))?;
        if let Some(last) = dims.last_mut() {
            *last = q.out_dim();
        }
        Ok(Some(Tensor::from_vec(y, dims, x.device())?))
    }

    /// Applies the layer to `[..., in]` (leading dimensions are flattened into one matmul), in
    /// the dtype of `x` (the weights are cast when they differ).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(y) = self.forward_int8(x)? {
            return Ok(y);
        }
        let mut dims = x.dims().to_vec();
        let in_dim = dims.last().copied().unwrap_or(0);
        let rows = x.elem_count() / in_dim.max(1);
        let mut y = x
            .reshape((rows, in_dim))?
            .matmul(&as_dtype(&self.weight, x.dtype())?.t()?)?;
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(&as_dtype(bias, x.dtype())?)?;
        }
        if let Some(last) = dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        y.reshape(dims)
    }

    /// `act(x Wᵀ + b)`; on the CPU the bias and the exact GELU are one fused op (forward and
    /// backward).
    pub fn forward_activated(&self, x: &Tensor, act: HiddenAct) -> candle_core::Result<Tensor> {
        if act == HiddenAct::GeluErf {
            // The int8 product already holds the bias: the exact GELU (vectorized, f64 erf)
            // on each output tile while it is in cache.
            if let Some(y) = self.forward_int8_then(x, super::vector_gelu::gelu_in_place)? {
                return Ok(y);
            }
        } else if let Some(y) = self.forward_int8(x)? {
            return activate(&y, act);
        }
        let Some(bias) = self.bias.as_ref().filter(|_| act == HiddenAct::GeluErf) else {
            return activate(&self.forward(x)?, act);
        };
        if !fused::supported(x) {
            return activate(&self.forward(x)?, act);
        }
        let mut dims = x.dims().to_vec();
        let in_dim = dims.last().copied().unwrap_or(0);
        let rows = x.elem_count() / in_dim.max(1);
        let y = fused::bias_gelu(
            &x.reshape((rows, in_dim))?
                .matmul(&as_dtype(&self.weight, x.dtype())?.t()?)?,
            &as_dtype(bias, x.dtype())?,
        )?;
        if let Some(last) = dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        y.reshape(dims)
    }
}

impl Linear {
    /// For inference on the CPU: the product of `x` `[..., in]` (f32) as a row-major
    /// `[rows, out]` buffer, and the bias still to add (empty when there is none). f32
    /// weights: `x Wᵀ` by [`dense_cpu::matmul_nt`] (no bias); int8 weights: the int8 product
    /// with its bias already in and `post_int8` applied to its tiles. `None` when `x` or the
    /// weights are not f32 on the CPU.
    fn product_cpu(
        &self,
        x: &Tensor,
        post_int8: impl Fn(&mut [f32]) + Sync,
    ) -> candle_core::Result<Option<(Vec<f32>, Vec<f32>)>> {
        if !fused::supported(x) {
            return Ok(None);
        }
        if let Some(y) = self.forward_int8_then(x, post_int8)? {
            return Ok(Some((y.flatten_all()?.to_vec1::<f32>()?, Vec::new())));
        }
        if !fused::supported(&self.weight) {
            return Ok(None);
        }
        let (out_dim, in_dim) = self.weight.dims2()?;
        if x.dims().last() != Some(&in_dim) {
            candle_core::bail!("linear: input {:?} does not end in [{in_dim}]", x.dims());
        }
        let rows = x.elem_count() / in_dim.max(1);
        let y = fused::with_data(x, |xs| {
            fused::with_data(&self.weight, |w| {
                Ok(dense_cpu::matmul_nt(xs, rows, in_dim, w, out_dim))
            })
        })?;
        let bias = match &self.bias {
            Some(b) if fused::supported(b) => b.to_vec1::<f32>()?,
            Some(_) => return Ok(None),
            None => Vec::new(),
        };
        Ok(Some((y, bias)))
    }

    /// The shape of `x Wᵀ`: `x`'s with the last dimension `out`.
    fn out_dims(&self, x: &Tensor) -> candle_core::Result<Vec<usize>> {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        Ok(dims)
    }

    /// For the fused attention: `x Wᵀ` as `[rows, out]` and the bias still to add (empty
    /// when none is left), or `None` off the CPU / f32 (see [`Self::product_cpu`]).
    pub(crate) fn project_cpu(
        &self,
        x: &Tensor,
    ) -> candle_core::Result<Option<(Vec<f32>, Vec<f32>)>> {
        self.product_cpu(x, |_| {})
    }

    /// Inference on the CPU: `act(x Wᵀ + b)` with the bias and the activation in one pass
    /// over the product (the exact GELU vectorised); `None` off the CPU / f32.
    pub(crate) fn forward_activated_cpu(
        &self,
        x: &Tensor,
        act: HiddenAct,
    ) -> candle_core::Result<Option<Tensor>> {
        let gelu = act == HiddenAct::GeluErf;
        let post = |tile: &mut [f32]| {
            if gelu {
                super::vector_gelu::gelu_in_place(tile)
            }
        };
        let Some((mut y, bias)) = self.product_cpu(x, post)? else {
            return Ok(None);
        };
        let out = self.weight.dim(0)?;
        let y = if gelu {
            if !bias.is_empty() {
                dense_cpu::bias_gelu_rows(&mut y, out, Some(&bias));
            }
            // The int8 product (no bias left) had the GELU on its tiles already.
            Tensor::from_vec(y, self.out_dims(x)?, x.device())?
        } else {
            if !bias.is_empty() {
                dense_cpu::add_bias_rows(&mut y, &bias);
            }
            activate(&Tensor::from_vec(y, self.out_dims(x)?, x.device())?, act)?
        };
        Ok(Some(y))
    }

    /// Inference on the CPU: `norm((x Wᵀ + b) + residual)` with the bias, the residual and
    /// the LayerNorm in one pass over the product; `None` off the CPU / f32.
    pub(crate) fn forward_residual_norm_cpu(
        &self,
        x: &Tensor,
        residual: &Tensor,
        norm: &LayerNorm,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(params) = norm.cpu_params()? else {
            return Ok(None);
        };
        if !fused::supported(residual) {
            return Ok(None);
        }
        let Some((mut y, bias)) = self.product_cpu(x, |_| {})? else {
            return Ok(None);
        };
        let dims = self.out_dims(x)?;
        if residual.dims() != dims.as_slice() {
            candle_core::bail!(
                "linear: residual {:?} does not match the output {dims:?}",
                residual.dims()
            );
        }
        let path = F32Path::selected().map_err(candle_core::Error::Msg)?;
        fused::with_data(residual, |res| {
            let (w, b, eps) = &params;
            let norm = dense_cpu::Norm {
                weight: w,
                bias: b,
                eps: *eps,
            };
            let bias = (!bias.is_empty()).then_some(&bias[..]);
            dense_cpu::add_layer_norm_rows(&mut y, bias, Some(res), norm, path);
            Ok(())
        })?;
        Ok(Some(Tensor::from_vec(y, dims, x.device())?))
    }
}

impl Linear {
    /// The f32 weights `[out, in]` and bias on the CPU (`None` when the layer is int8 or its
    /// parameters are not f32 on the CPU), for the slice path of [`encoder_layer_cpu`].
    fn f32_cpu(&self) -> candle_core::Result<Option<Vec<f32>>> {
        if self.int8.is_some() || !fused::supported(&self.weight) {
            return Ok(None);
        }
        match &self.bias {
            Some(b) if fused::supported(b) => Ok(Some(b.to_vec1::<f32>()?)),
            Some(_) => Ok(None),
            None => Ok(Some(Vec::new())),
        }
    }

    /// `x Wᵀ` into `out` for `x` `[rows, in]` (f32 weights on the CPU, see [`Self::f32_cpu`]).
    fn product_into(&self, x: &[f32], rows: usize, out: &mut [f32]) -> candle_core::Result<()> {
        let (out_dim, in_dim) = self.weight.dims2()?;
        fused::with_data(&self.weight, |w| {
            dense_cpu::matmul_nt_into(x, rows, in_dim, w, out_dim, out);
            Ok(())
        })
    }
}

/// Rows of the feed-forward block computed at a time by [`encoder_layer_cpu`]: its
/// `[rows, intermediate]` buffer stays small (and reused), not `[n, intermediate]`.
const FFN_ROWS: usize = 4096;

/// Buffers of [`encoder_layer_cpu`], kept per thread and reused from layer to layer and
/// batch to batch: fresh multi-megabyte buffers for every product cost page faults (the
/// allocator maps and unmaps them) that showed as ~4 % of an f32 encode.
#[derive(Default)]
struct Workspace {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    a: Vec<f32>,
    h: Vec<f32>,
}

thread_local! {
    static WORKSPACE: std::cell::RefCell<Workspace> = std::cell::RefCell::new(Workspace::default());
}

/// `b`, or `None` when it is empty (a layer without a bias).
fn bias(b: &[f32]) -> Option<&[f32]> {
    (!b.is_empty()).then_some(b)
}

/// The first `len` values of `v`, grown (zero-filled) when it is shorter.
fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// The parts of a post-norm encoder layer (BERT, DistilBERT): attention, its output
/// projection and LayerNorm, the feed-forward block and its LayerNorm.
pub(crate) struct LayerParts<'a> {
    pub attention: &'a SelfAttention,
    pub attention_out: &'a Linear,
    pub attention_norm: &'a LayerNorm,
    pub ffn_in: &'a Linear,
    pub act: HiddenAct,
    pub ffn_out: &'a Linear,
    pub output_norm: &'a LayerNorm,
}

impl LayerParts<'_> {
    /// Inference of the layer on the CPU in f32 activations: [`encoder_layer_cpu`] on
    /// reused buffers, else the attention and then each dense layer with what follows it
    /// (bias, residual and LayerNorm; bias and activation) in one pass over its product.
    /// `None` (the caller takes the general path) when `x` is not f32 on the CPU.
    pub(crate) fn forward_cpu(
        &self,
        x: &Tensor,
        packing: &Packing,
        bias: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        if !fused::supported(x) {
            return Ok(None);
        }
        if let Some(y) = encoder_layer_cpu(self, x, packing)? {
            return Ok(Some(y));
        }
        let a = self
            .attention
            .forward(x, packing, bias, ForwardMode::Inference, None)?;
        let Some(x) = self
            .attention_out
            .forward_residual_norm_cpu(&a, x, self.attention_norm)?
        else {
            return Ok(None);
        };
        let Some(h) = self.ffn_in.forward_activated_cpu(&x, self.act)? else {
            return Ok(None);
        };
        self.ffn_out
            .forward_residual_norm_cpu(&h, &x, self.output_norm)
    }
}

/// Inference of one post-norm encoder layer on the CPU with f32 weights and activations,
/// on reused buffers: the projections, the fused attention
/// ([`attention_kernel::attention_into`]), `norm1(x Wₒᵀ + bₒ + x)`, then the feed-forward
/// block [`FFN_ROWS`] rows at a time (`gelu(x W₁ᵀ + b₁)`, `· W₂ᵀ`), `norm2(… + b₂ + x₁)`.
/// `None` (the caller takes the general path) unless every part is f32 on the CPU and the
/// activation is the exact GELU.
pub(crate) fn encoder_layer_cpu(
    p: &LayerParts,
    x: &Tensor,
    packing: &Packing,
) -> candle_core::Result<Option<Tensor>> {
    if !fused::supported(x) || p.act != HiddenAct::GeluErf {
        return Ok(None);
    }
    let att = p.attention;
    let (Some(bq), Some(bk), Some(bv), Some(bo), Some(b1), Some(b2)) = (
        att.query.f32_cpu()?,
        att.key.f32_cpu()?,
        att.value.f32_cpu()?,
        p.attention_out.f32_cpu()?,
        p.ffn_in.f32_cpu()?,
        p.ffn_out.f32_cpu()?,
    ) else {
        return Ok(None);
    };
    let (Some((w1n, b1n, e1)), Some((w2n, b2n, e2))) =
        (p.attention_norm.cpu_params()?, p.output_norm.cpu_params()?)
    else {
        return Ok(None);
    };
    let n = packing.tokens();
    let width = att.num_heads * att.head_dim;
    let hidden = p.attention_out.weight.dim(0)?;
    let ff = p.ffn_in.weight.dim(0)?;
    if x.dims() != [n, hidden] || width != hidden || p.ffn_out.weight.dim(0)? != hidden {
        candle_core::bail!(
            "encoder layer: input {:?} does not match {n} tokens of {hidden} (heads {width}, \
             feed-forward {ff})",
            x.dims()
        );
    }
    let path = F32Path::selected().map_err(candle_core::Error::Msg)?;
    let scale = (1.0 / (att.head_dim as f64).sqrt()) as f32;
    let mut out = vec![0f32; n * hidden];
    fused::with_data(x, |xs| {
        WORKSPACE.with(|ws| {
            let ws = &mut *ws.borrow_mut();
            att.query.product_into(xs, n, sized(&mut ws.q, n * width))?;
            att.key.product_into(xs, n, sized(&mut ws.k, n * width))?;
            att.value.product_into(xs, n, sized(&mut ws.v, n * width))?;
            let projection = |data, bias| attention_kernel::Projection {
                data,
                ld: width,
                bias,
            };
            attention_kernel::attention_into(
                [
                    projection(&ws.q[..n * width], &bq),
                    projection(&ws.k[..n * width], &bk),
                    projection(&ws.v[..n * width], &bv),
                ],
                packing.starts(),
                att.num_heads,
                att.head_dim,
                scale,
                path,
                sized(&mut ws.ctx, n * width),
            );
            let a = sized(&mut ws.a, n * hidden);
            p.attention_out.product_into(&ws.ctx[..n * width], n, a)?;
            let norm1 = dense_cpu::Norm {
                weight: &w1n,
                bias: &b1n,
                eps: e1,
            };
            dense_cpu::add_layer_norm_rows(a, bias(&bo), Some(xs), norm1, path);
            let a = &ws.a[..n * hidden];
            for r0 in (0..n).step_by(FFN_ROWS) {
                let rows = FFN_ROWS.min(n - r0);
                let h = sized(&mut ws.h, rows * ff);
                p.ffn_in
                    .product_into(&a[r0 * hidden..(r0 + rows) * hidden], rows, h)?;
                dense_cpu::bias_gelu_rows(h, ff, bias(&b1));
                p.ffn_out
                    .product_into(h, rows, &mut out[r0 * hidden..(r0 + rows) * hidden])?;
            }
            let norm2 = dense_cpu::Norm {
                weight: &w2n,
                bias: &b2n,
                eps: e2,
            };
            dense_cpu::add_layer_norm_rows(&mut out, bias(&b2), Some(a), norm2, path);
            Ok(())
        })
    })?;
    Ok(Some(Tensor::from_vec(out, (n, hidden), x.device())?))
}

/// LayerNorm over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight`/`bias`, or the older `gamma`/`beta` names.
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            weight: get_any(&vb, &[size], &["weight", "gamma"])?,
            bias: get_any(&vb, &[size], &["bias", "beta"])?,
            eps,
        })
    }

    /// Loads `weight`, and `bias` when `bias` (otherwise the bias is zero, as PyTorch's
    /// `LayerNorm(bias=False)`).
    pub fn load_with_bias(
        vb: VarBuilder,
        size: usize,
        eps: f64,
        bias: bool,
    ) -> candle_core::Result<Self> {
        if bias {
            return Self::load(vb, size, eps);
        }
        let weight = vb.get(size, "weight")?;
        Ok(Self {
            bias: weight.zeros_like()?,
            weight,
            eps,
        })
    }

    /// Normalises `x` over its last dimension. Lower-precision activations (bf16) are
    /// normalised in the weights' precision (f32) and cast back, so the residual stream stays
    /// bf16 (unlike PyTorch autocast, which keeps LayerNorm outputs in f32).
    pub fn forward(&self, x: &Tensor, mode: ForwardMode) -> candle_core::Result<Tensor> {
        if x.dtype() != self.weight.dtype() {
            let y = self.forward(&x.to_dtype(self.weight.dtype())?, mode)?;
            return y.to_dtype(x.dtype());
        }
        match mode {
            ForwardMode::Inference => {
                if fused::supported(x) {
                    if let Some((w, b, eps)) = self.cpu_params()? {
                        let path = F32Path::selected().map_err(candle_core::Error::Msg)?;
                        let mut y = fused::with_data(x, |v| Ok(v.to_vec()))?;
                        let norm = dense_cpu::Norm {
                            weight: &w,
                            bias: &b,
                            eps,
                        };
                        dense_cpu::add_layer_norm_rows(&mut y, None, None, norm, path);
                        return Tensor::from_vec(y, x.dims(), x.device());
                    }
                }
                candle_nn::ops::layer_norm(
                    &x.contiguous()?,
                    &self.weight,
                    &self.bias,
                    self.eps as f32,
                )
            }
            ForwardMode::Differentiable if fused::supported(x) => {
                fused::layer_norm(x, &self.weight, &self.bias, self.eps)
            }
            ForwardMode::Differentiable => {
                let mean = x.mean_keepdim(D::Minus1)?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
                let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
                normed
                    .broadcast_mul(&self.weight)?
                    .broadcast_add(&self.bias)
            }
        }
    }
}

/// A LayerNorm's weight, bias and epsilon as f32 values.
type NormParams = (Vec<f32>, Vec<f32>, f32);

impl LayerNorm {
    /// The weight, bias and epsilon as f32 values for the CPU kernels (`None` when the
    /// parameters are not f32 on the CPU).
    fn cpu_params(&self) -> candle_core::Result<Option<NormParams>> {
        if !fused::supported(&self.weight) || !fused::supported(&self.bias) {
            return Ok(None);
        }
        Ok(Some((
            self.weight.to_vec1::<f32>()?,
            self.bias.to_vec1::<f32>()?,
            self.eps as f32,
        )))
    }
}

/// Applies a configured activation.
pub fn activate(x: &Tensor, act: HiddenAct) -> candle_core::Result<Tensor> {
    match act {
        HiddenAct::GeluErf => x.gelu_erf(),
        HiddenAct::GeluTanh => x.gelu(),
        HiddenAct::Relu => x.relu(),
    }
}

/// Multi-head scaled dot-product self-attention with an additive key mask.
#[derive(Debug, Clone)]
pub struct SelfAttention {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) num_heads: usize,
    pub(crate) head_dim: usize,
}

impl SelfAttention {
    /// Attends over the packed tokens `x` `[n, hidden]` of the batch `packing` describes;
    /// `mask_bias` is `[batch, 1, 1, seq]` with 0 for real tokens and a large negative value for
    /// padding. Queries, keys and values are projected on the real tokens only and padded for
    /// the attention product. `dropout` (training only) drops attention probabilities.
    /// Returns `[n, hidden]`.
    pub fn forward(
        &self,
        x: &Tensor,
        packing: &Packing,
        mask_bias: &Tensor,
        mode: ForwardMode,
        dropout: Option<&Dropout>,
    ) -> candle_core::Result<Tensor> {
        if mode == ForwardMode::Inference && dropout.is_none() {
            if let Some(y) = self.forward_fused_cpu(x, packing)? {
                return Ok(y);
            }
        }
        if mode == ForwardMode::Inference && packing.is_padded() {
            return self.forward_by_length(x, packing);
        }
        let (b, t) = (packing.batch(), packing.seq());
        let split = |y: Tensor| -> candle_core::Result<Tensor> {
            packing
                .pad(&y)?
                .reshape((b, t, self.num_heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = split((self.query.forward(x)? * scale)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        // Scores and probabilities in f32 whatever the activations' precision (the mask bias
        // is f32); the products with q, k and v run in the activations' dtype.
        let scores = as_dtype(&q.matmul(&k.t()?)?, DType::F32)?;
        let probs = if fused::supported(&scores) {
            fused::masked_softmax(&scores, mask_bias)?
        } else {
            let scores = scores.broadcast_add(mask_bias)?;
            match mode {
                ForwardMode::Inference => candle_nn::ops::softmax_last_dim(&scores)?,
                ForwardMode::Differentiable => candle_nn::ops::softmax(&scores, D::Minus1)?,
            }
        };
        let probs = match dropout {
            Some(d) => d.attention(&probs)?,
            None => probs,
        };
        packing.pack(
            &as_dtype(&probs, v.dtype())?
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, t, self.num_heads * self.head_dim))?,
        )
    }
}

impl SelfAttention {
    /// Inference on the CPU in f32 activations: the projections (their biases folded into
    /// the attention's packing), then [`attention_kernel::attention`] per text and head on
    /// the packed tokens (no padding, no mask; a text's result does not depend on its
    /// batch). `None` when `x` is not f32 on the CPU.
    fn forward_fused_cpu(
        &self,
        x: &Tensor,
        packing: &Packing,
    ) -> candle_core::Result<Option<Tensor>> {
        if !fused::supported(x) {
            return Ok(None);
        }
        let path = F32Path::selected().map_err(candle_core::Error::Msg)?;
        let Some((q, bq)) = self.query.project_cpu(x)? else {
            return Ok(None);
        };
        let Some((k, bk)) = self.key.project_cpu(x)? else {
            return Ok(None);
        };
        let Some((v, bv)) = self.value.project_cpu(x)? else {
            return Ok(None);
        };
        let width = self.num_heads * self.head_dim;
        let n = packing.tokens();
        if q.len() != n * width || k.len() != n * width || v.len() != n * width {
            candle_core::bail!("attention: projections of {n} tokens are not {width} wide");
        }
        let scale = (1.0 / (self.head_dim as f64).sqrt()) as f32;
        let out = attention_kernel::attention(
            [
                attention_kernel::Projection {
                    data: &q,
                    ld: width,
                    bias: &bq,
                },
                attention_kernel::Projection {
                    data: &k,
                    ld: width,
                    bias: &bk,
                },
                attention_kernel::Projection {
                    data: &v,
                    ld: width,
                    bias: &bv,
                },
            ],
            packing.starts(),
            self.num_heads,
            self.head_dim,
            scale,
            path,
        );
        Ok(Some(Tensor::from_vec(out, (n, width), x.device())?))
    }
}

impl SelfAttention {
    /// Inference over a padded batch: the texts of each length attend together, unpadded, so
    /// every text's result is bit for bit what it gets when encoded alone (or among texts of
    /// its own length). Padding would change the width of the probabilities x values product
    /// and the order of its float sums, so a text's vector would depend, in its last bits, on
    /// the other texts of its batch: a server batching requests dynamically could then not
    /// answer exactly what offline encoding gives.
    fn forward_by_length(&self, x: &Tensor, packing: &Packing) -> candle_core::Result<Tensor> {
        let device = x.device();
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q_all = (self.query.forward(x)? * scale)?;
        let k_all = self.key.forward(x)?;
        let v_all = self.value.forward(x)?;
        let starts = packing.starts();
        let mut by_length: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for r in 0..packing.batch() {
            by_length
                .entry(starts[r + 1] - starts[r])
                .or_default()
                .push(r);
        }
        let n = packing.tokens();
        let mut outputs = Vec::with_capacity(by_length.len());
        let mut order: Vec<u32> = Vec::with_capacity(n);
        for (len, texts) in by_length {
            let rows: Vec<u32> = texts
                .iter()
                .flat_map(|&r| (starts[r]..starts[r + 1]).map(|i| i as u32))
                .collect();
            let g = texts.len();
            let index = Tensor::from_vec(rows.clone(), rows.len(), device)?;
            let split = |y: &Tensor| -> candle_core::Result<Tensor> {
                y.index_select(&index, 0)?
                    .reshape((g, len, self.num_heads, self.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (split(&q_all)?, split(&k_all)?, split(&v_all)?);
            let scores = as_dtype(&q.matmul(&k.t()?)?, DType::F32)?;
            // The same ops as an unpadded batch (whose mask bias is all zeros).
            let bias = Tensor::zeros((g, 1, 1, len), DType::F32, device)?;
            let probs = if fused::supported(&scores) {
                fused::masked_softmax(&scores, &bias)?
            } else {
                candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&bias)?)?
            };
            outputs.push(
                as_dtype(&probs, v.dtype())?
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .reshape((g * len, self.num_heads * self.head_dim))?,
            );
            order.extend(rows);
        }
        // Back to packed order: packed row i is row inverse[i] of the concatenation.
        let mut inverse = vec![0u32; n];
        for (position, &row) in order.iter().enumerate() {
            inverse[row as usize] = position as u32;
        }
        Tensor::cat(&outputs, 0)?.index_select(&Tensor::from_vec(inverse, n, device)?, 0)
    }
}

/// Turns a `[batch, seq]` 0/1 attention mask into the additive bias `[batch, 1, 1, seq]`.
pub fn attention_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let mask = mask.to_dtype(DType::F32)?;
    // (1 - mask) * min: real tokens add 0, padding adds the most negative f32, as Hugging Face does.
    ((mask.ones_like()? - mask)? * f32::MIN as f64)?.reshape((b, 1, 1, t))
}

/// Embedding lookup: the rows of `table` at `ids` (any shape of u32 ids).
pub fn embed(table: &Tensor, ids: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::Embedding::new(table.clone(), table.dim(1)?).forward(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    use crate::model::test_data::{max_diff, tensor as random};

    fn linear(out: usize, inp: usize, seed: u64) -> Linear {
        Linear {
            weight: random(&[out, inp], seed, 0.4, 0.0),
            bias: Some(random(&[out], seed + 100, 0.2, 0.0)),
            int8: None,
        }
    }

    fn norm(h: usize, seed: u64) -> LayerNorm {
        LayerNorm {
            weight: random(&[h], seed, 0.1, 1.0),
            bias: random(&[h], seed + 100, 0.1, 0.0),
            eps: 1e-12,
        }
    }

    #[test]
    fn the_cpu_layer_matches_the_differentiable_ops() {
        // Odd sizes (head_dim 5), texts of 1 to 64 tokens, and more tokens than FFN_ROWS so
        // the feed-forward block runs in several chunks.
        let (hidden, heads, ff) = (20, 4, 36);
        let attention = SelfAttention {
            query: linear(hidden, hidden, 1),
            key: linear(hidden, hidden, 2),
            value: linear(hidden, hidden, 3),
            num_heads: heads,
            head_dim: hidden / heads,
        };
        let (out, lin1, lin2) = (
            linear(hidden, hidden, 4),
            linear(ff, hidden, 5),
            linear(hidden, ff, 6),
        );
        let (n1, n2) = (norm(hidden, 7), norm(hidden, 8));
        let lengths: Vec<usize> = (0..140).map(|i| (i * 37) % 64 + 1).collect();
        let seq = *lengths.iter().max().unwrap();
        let n: usize = lengths.iter().sum();
        assert!(n > FFN_ROWS);
        let dev = Device::Cpu;
        let packing = Packing::new(&lengths, seq, &dev).unwrap();
        let mask: Vec<f32> = lengths
            .iter()
            .flat_map(|&l| (0..seq).map(move |j| if j < l { 1.0 } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (lengths.len(), seq), &dev).unwrap();
        let bias = attention_bias(&mask).unwrap();
        let x = random(&[n, hidden], 9, 1.0, 0.0);
        let mode = ForwardMode::Differentiable;
        let a = attention.forward(&x, &packing, &bias, mode, None).unwrap();
        let x1 = n1
            .forward(&(out.forward(&a).unwrap() + &x).unwrap(), mode)
            .unwrap();
        let h = lin1.forward_activated(&x1, HiddenAct::GeluErf).unwrap();
        let want = n2
            .forward(&(lin2.forward(&h).unwrap() + &x1).unwrap(), mode)
            .unwrap();
        let parts = LayerParts {
            attention: &attention,
            attention_out: &out,
            attention_norm: &n1,
            ffn_in: &lin1,
            act: HiddenAct::GeluErf,
            ffn_out: &lin2,
            output_norm: &n2,
        };
        let got = encoder_layer_cpu(&parts, &x, &packing).unwrap().unwrap();
        let worst = max_diff(&got, &want);
        assert!(worst < 2e-5, "max difference {worst}");
        // Another activation takes the general path.
        let relu = LayerParts {
            act: HiddenAct::Relu,
            ..parts
        };
        assert!(encoder_layer_cpu(&relu, &x, &packing).unwrap().is_none());
    }
}
