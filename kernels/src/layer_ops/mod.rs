//! Fused GELU, LayerNorm, softmax, linear layers and attention, as a backend extension with their
//! own backward.
//!
//! [`LayerOpsBackend`] holds the ops. `NdArray<f32>` implements them with one-pass CPU loops
//! (`crate::cpu::layer_ops`), and `Autodiff` of it adds their backward passes ([`autodiff`]).
//! The towers stay generic over `Backend`: [`gelu`], [`layer_norm`], [`softmax`], [`linear`] and
//! [`attention`] take any backend's tensors and use the fused ops only where the backend has them
//! (ndarray in f32, with or without autodiff), and burn's own ops everywhere else.

pub mod autodiff;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorPrimitive};

/// The fused ops. Shapes: `x` is `[..., width]`, the ops work along its last dimension.
pub trait LayerOpsBackend: Backend {
    /// The exact GELU, x·Φ(x).
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// ∂GELU: grad · (Φ(x) + x·φ(x)).
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
    /// (x − μ)/√(σ² + eps) · γ + β over the last dimension, and each row's (μ, 1/√(σ² + eps)) as
    /// `[rows, 2]` for the backward pass.
    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// The gradients for x, γ and β.
    fn fused_layer_norm_backward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, stats: FloatTensor<Self>, grad: FloatTensor<Self>) -> [FloatTensor<Self>; 3];
    /// Softmax over the last dimension.
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// ∂softmax from its output y: y · (grad − Σ grad·y).
    fn fused_softmax_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
    /// x·W + b for x `[rows, d_in]`, W `[d_in, d_out]` (burn's layout) and b `[d_out]`.
    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The gradients for x, W and b.
    fn fused_linear_backward(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>) -> [FloatTensor<Self>; 3];
    /// softmax(Q·Kᵀ/√d + mask) · V per head, for q, k, v `[batch, tokens, heads·head_dim]` and
    /// `mask_bias` `[batch, tokens]` (added to every query's score for each key). Returns the
    /// output, in q's layout, and the weights `[batch, heads, tokens, tokens]`.
    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, mask_bias: Option<FloatTensor<Self>>, heads: usize) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// The gradients for q, k and v (the mask gets none).
    fn fused_attention_backward(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, weights: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize) -> [FloatTensor<Self>; 3];
}

/// The backends with the fused ops, and a way into and out of their primitives.
#[cfg(feature = "ndarray")]
mod route {
    use std::any::{Any, TypeId};

    use burn::backend::Autodiff;
    use burn::tensor::backend::Backend;
    use burn::tensor::ops::FloatTensor;

    pub type Cpu = burn_ndarray::NdArray<f32>;
    pub type CpuAutodiff = Autodiff<Cpu>;

    /// `value` as `U`, when `T` is `U`.
    pub fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
        let boxed: Box<dyn Any> = Box::new(value);
        match boxed.downcast::<U>() {
            Ok(value) => Ok(*value),
            Err(boxed) => Err(*boxed.downcast::<T>().expect("the value's own type")),
        }
    }

    /// The backends with the fused ops.
    pub enum Fused {
        CpuAutodiff,
        Cpu,
    }

    /// Which fused backend `B` is, if any.
    pub fn which<B: Backend>() -> Option<Fused> {
        let id = TypeId::of::<B>();
        if id == TypeId::of::<CpuAutodiff>() {
            Some(Fused::CpuAutodiff)
        } else if id == TypeId::of::<Cpu>() {
            Some(Fused::Cpu)
        } else {
            None
        }
    }

    /// Runs `autodiff` or `plain` on `B`'s primitives, `B` being one of the fused backends.
    pub fn apply<B: Backend, const N: usize, const M: usize>(
        inputs: [FloatTensor<B>; N],
        autodiff: impl FnOnce([FloatTensor<CpuAutodiff>; N]) -> [FloatTensor<CpuAutodiff>; M],
        plain: impl FnOnce([FloatTensor<Cpu>; N]) -> [FloatTensor<Cpu>; M],
    ) -> [FloatTensor<B>; M] {
        let back = |outputs: [_; M]| outputs.map(|out| cast(out).unwrap_or_else(|_| unreachable!("B is the fused backend")));
        match which::<B>() {
            Some(Fused::CpuAutodiff) => back(autodiff(inputs.map(|t| cast(t).unwrap_or_else(|_| unreachable!("B is Autodiff<NdArray<f32>>"))))),
            Some(Fused::Cpu) => {
                let outputs = plain(inputs.map(|t| cast(t).unwrap_or_else(|_| unreachable!("B is NdArray<f32>"))));
                outputs.map(|out| cast(out).unwrap_or_else(|_| unreachable!("B is NdArray<f32>")))
            }
            None => unreachable!("callers check `fused::<B>` first"),
        }
    }
}

/// Whether `x` runs on a backend with the fused ops, in f32.
fn fused<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    #[cfg(feature = "ndarray")]
    {
        route::which::<B>().is_some() && x.dtype() == DType::F32
    }
    #[cfg(not(feature = "ndarray"))]
    {
        let _ = (x, DType::F32);
        false
    }
}

fn primitive<B: Backend, const D: usize>(x: Tensor<B, D>) -> FloatTensor<B> {
    x.into_primitive().tensor()
}

fn tensor<B: Backend, const D: usize>(x: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(x))
}

/// The exact GELU, x·Φ(x) (burn's `gelu`, with the fused op where the backend has it).
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if !fused(&x) {
        return burn::tensor::activation::gelu(x);
    }
    #[cfg(feature = "ndarray")]
    {
        let [y] = route::apply::<B, 1, 1>([primitive(x)], |[x]| [route::CpuAutodiff::fused_gelu(x)], |[x]| [route::Cpu::fused_gelu(x)]);
        tensor(y)
    }
    #[cfg(not(feature = "ndarray"))]
    unreachable!("no fused backend is compiled in")
}

/// Softmax over the last dimension (burn's `softmax(x, D - 1)`, fused where the backend has it).
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if !fused(&x) {
        return burn::tensor::activation::softmax(x, D - 1);
    }
    #[cfg(feature = "ndarray")]
    {
        let [y] = route::apply::<B, 1, 1>([primitive(x)], |[x]| [route::CpuAutodiff::fused_softmax(x)], |[x]| [route::Cpu::fused_softmax(x)]);
        tensor(y)
    }
    #[cfg(not(feature = "ndarray"))]
    unreachable!("no fused backend is compiled in")
}

/// x·W + b for x `[rows, d_in]` and W `[d_in, d_out]`, as burn's `Linear` computes it (fused
/// where the backend has it, with a backward that copies no transposed operand).
pub fn linear<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 2> {
    let ([_, d_in], [rows_w, d_out]) = (x.dims(), weight.dims());
    assert_eq!(d_in, rows_w, "linear: x has {d_in} features, the weight takes {rows_w}");
    if let Some(bias) = &bias {
        assert_eq!(bias.dims(), [d_out], "linear: the bias must have the weight's {d_out} outputs");
    }
    if !fused(&x) || weight.dtype() != DType::F32 {
        return burn::tensor::module::linear(x, weight, bias);
    }
    #[cfg(feature = "ndarray")]
    {
        let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[1]], &weight.device()));
        let [y] = route::apply::<B, 3, 1>(
            [primitive(x), primitive(weight), primitive(bias)],
            |[x, weight, bias]| [route::CpuAutodiff::fused_linear(x, weight, bias)],
            |[x, weight, bias]| [route::Cpu::fused_linear(x, weight, bias)],
        );
        tensor(y)
    }
    #[cfg(not(feature = "ndarray"))]
    unreachable!("no fused backend is compiled in")
}

/// Multi-head attention, softmax(Q·Kᵀ/√d + mask) · V, on q, k, v `[batch, tokens, heads·head_dim]`
/// (the linear layers' outputs, heads not split) with an additive `mask_bias` `[batch, tokens]`
/// over the keys. `None` where the backend has no fused attention: the caller runs its tensor ops.
///
/// Panics unless q, k and v have one shape whose width is a multiple of `heads` (> 0).
pub fn attention<B: Backend>(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>, mask_bias: Option<Tensor<B, 2>>, heads: usize) -> Option<Tensor<B, 3>> {
    let [batch, tokens, width] = q.dims();
    assert!(heads > 0 && width % heads == 0, "attention: width {width} is not a multiple of {heads} heads");
    assert!(k.dims() == q.dims() && v.dims() == q.dims(), "attention: q, k and v must have one shape, not {:?}, {:?} and {:?}", q.dims(), k.dims(), v.dims());
    if let Some(mask) = &mask_bias {
        assert_eq!(mask.dims(), [batch, tokens], "attention: the mask bias must be [batch, tokens]");
    }
    if !fused(&q) || [&k, &v].iter().any(|t| t.dtype() != DType::F32) || mask_bias.as_ref().is_some_and(|m| m.dtype() != DType::F32) {
        return None;
    }
    #[cfg(feature = "ndarray")]
    {
        let [out] = match mask_bias {
            Some(mask) => route::apply::<B, 4, 1>(
                [primitive(q), primitive(k), primitive(v), primitive(mask)],
                |[q, k, v, mask]| [route::CpuAutodiff::fused_attention(q, k, v, Some(mask), heads).0],
                |[q, k, v, mask]| [route::Cpu::fused_attention(q, k, v, Some(mask), heads).0],
            ),
            None => route::apply::<B, 3, 1>(
                [primitive(q), primitive(k), primitive(v)],
                |[q, k, v]| [route::CpuAutodiff::fused_attention(q, k, v, None, heads).0],
                |[q, k, v]| [route::Cpu::fused_attention(q, k, v, None, heads).0],
            ),
        };
        Some(tensor(out))
    }
    #[cfg(not(feature = "ndarray"))]
    unreachable!("no fused backend is compiled in")
}

/// LayerNorm over the last dimension, (x − μ)/√(σ² + eps) · γ + β, as `burn::nn::LayerNorm`
/// computes it (fused where the backend has it). Without β, the shift is 0.
pub fn layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>, gamma: Tensor<B, 1>, beta: Option<Tensor<B, 1>>, eps: f64) -> Tensor<B, D> {
    let width = x.dims()[D - 1];
    assert!(gamma.dims() == [width] && beta.as_ref().is_none_or(|beta| beta.dims() == [width]), "layer_norm: γ and β must have the last dimension's {width} entries");
    if !fused(&x) || gamma.dtype() != DType::F32 {
        let beta = beta.map(primitive);
        return tensor(B::layer_norm(primitive(x), primitive(gamma), beta, eps));
    }
    #[cfg(feature = "ndarray")]
    {
        let beta = beta.unwrap_or_else(|| gamma.zeros_like());
        let [y] = route::apply::<B, 3, 1>(
            [primitive(x), primitive(gamma), primitive(beta)],
            |[x, gamma, beta]| [route::CpuAutodiff::fused_layer_norm(x, gamma, beta, eps).0],
            |[x, gamma, beta]| [route::Cpu::fused_layer_norm(x, gamma, beta, eps).0],
        );
        tensor(y)
    }
    #[cfg(not(feature = "ndarray"))]
    unreachable!("no fused backend is compiled in")
}
