//! The fused GELU, LayerNorm and softmax (`otclip::kernels::layer_ops`) against burn's own ops
//! on the same backend: outputs and every input's gradient, on contiguous and on transposed
//! (strided) inputs. The GELU gradient is checked against the exact derivative Φ(x) + x·φ(x),
//! written with burn's `erf`, because burn's own GELU backward differentiates the tanh
//! approximation instead (and is checked to be off by more than the fused one).

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::ops::ModuleOps;
use burn::tensor::Distribution;
use otclip::kernels::layer_ops;
use otclip::model::norm::LayerNormConfig;

use crate::common::{max_rel_diff, to_f64};

type B = Autodiff<NdArray<f32>>;

/// `[3, 5, 37]` normal values with standard deviation `scale`, contiguous and as a transposed
/// (strided) view of another draw, so that both read paths run.
fn inputs(scale: f64) -> Vec<Tensor<B, 3>> {
    let device = Default::default();
    let plain = Tensor::<B, 3>::random([3, 5, 37], Distribution::Normal(0.0, scale), &device);
    let strided = Tensor::<B, 3>::random([3, 37, 5], Distribution::Normal(0.0, scale), &device).swap_dims(1, 2);
    vec![plain, strided]
}

fn weight_like(x: &Tensor<B, 3>) -> Tensor<B, 3> {
    Tensor::random(x.dims(), Distribution::Normal(0.0, 1.0), &x.device())
}

/// The output of `f` and the gradient of Σ weight·f(x) with respect to x.
fn output_and_grad(x: &Tensor<B, 3>, weight: &Tensor<B, 3>, f: impl Fn(Tensor<B, 3>) -> Tensor<B, 3>) -> (Vec<f64>, Vec<f64>) {
    let x = x.clone().detach().require_grad();
    let y = f(x.clone());
    let grads = (y.clone() * weight.clone()).sum().backward();
    (to_f64(y), to_f64(x.grad(&grads).expect("x is tracked")))
}

fn assert_close(what: &str, fused: &[f64], reference: &[f64], tolerance: f64) -> f64 {
    let error = max_rel_diff(fused, reference);
    assert!(error <= tolerance, "{what}: fused differs from the reference by {error:e} (relative), above {tolerance:e}");
    error
}

#[test]
fn fused_gelu_matches_the_exact_gelu_and_its_derivative() {
    for x in inputs(3.0) {
        let weight = weight_like(&x);
        let (fused, fused_grad) = output_and_grad(&x, &weight, layer_ops::gelu);
        let (reference, burn_grad) = output_and_grad(&x, &weight, activation::gelu);
        assert_close("GELU", &fused, &reference, 1e-6);
        let x = x.detach();
        let cdf = (x.clone() / std::f64::consts::SQRT_2).erf().add_scalar(1.0) * 0.5;
        let pdf = (x.clone().powi_scalar(2) * -0.5).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let exact = to_f64((cdf + x * pdf) * weight);
        let fused_error = assert_close("GELU gradient", &fused_grad, &exact, 1e-6);
        let burn_error = max_rel_diff(&burn_grad, &exact);
        assert!(burn_error > fused_error, "burn's GELU backward ({burn_error:e}) was expected to be the approximate one");
    }
}

#[test]
fn fused_softmax_matches_burn() {
    for x in inputs(4.0) {
        let weight = weight_like(&x);
        let (fused, fused_grad) = output_and_grad(&x, &weight, layer_ops::softmax);
        let (reference, reference_grad) = output_and_grad(&x, &weight, |x| activation::softmax(x, 2));
        assert_close("softmax", &fused, &reference, 1e-6);
        assert_close("softmax gradient", &fused_grad, &reference_grad, 1e-5);
    }
}

#[test]
fn fused_softmax_ignores_masked_entries() {
    let device = Default::default();
    let x = Tensor::<B, 2>::from_floats([[1.0, -1e9, 2.0, -1e9]], &device);
    let y = to_f64(layer_ops::softmax(x));
    let expected = [1.0 / (1.0 + std::f64::consts::E), 0.0, std::f64::consts::E / (1.0 + std::f64::consts::E), 0.0];
    assert_close("masked softmax", &y, &expected, 1e-6);
}

/// The fused LayerNorm against burn's `layer_norm` op (which autodiff differentiates op by op):
/// output, and the gradients of x, γ and β.
#[test]
fn fused_layer_norm_matches_burn() {
    let device = Default::default();
    for x in inputs(2.0) {
        let norm = LayerNormConfig::new(37).with_epsilon(1e-6).init::<B>(&device);
        // Non-trivial γ and β.
        let gamma = Tensor::<B, 1>::random([37], Distribution::Normal(1.0, 0.5), &device);
        let beta = Tensor::<B, 1>::random([37], Distribution::Normal(0.0, 0.5), &device);
        let weight = weight_like(&x);
        let run = |fused: bool| {
            let (x, gamma, beta) = (x.clone().detach().require_grad(), gamma.clone().require_grad(), beta.clone().require_grad());
            let y = if fused {
                layer_ops::layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), 1e-6)
            } else {
                let prim = |t: Tensor<B, 1>| t.into_primitive().tensor();
                Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(B::layer_norm(x.clone().into_primitive().tensor(), prim(gamma.clone()), Some(prim(beta.clone())), 1e-6)))
            };
            let grads = (y.clone() * weight.clone()).sum().backward();
            let grad = |t: &Tensor<B, 1>| to_f64(t.grad(&grads).expect("tracked"));
            (to_f64(y), to_f64(x.grad(&grads).expect("tracked")), grad(&gamma), grad(&beta))
        };
        let (fused, reference) = (run(true), run(false));
        assert_close("LayerNorm", &fused.0, &reference.0, 1e-5);
        assert_close("LayerNorm x gradient", &fused.1, &reference.1, 1e-4);
        assert_close("LayerNorm gamma gradient", &fused.2, &reference.2, 1e-5);
        assert_close("LayerNorm beta gradient", &fused.3, &reference.3, 1e-5);
        // The module takes the same path: γ = 1, β = 0 at init.
        let plain = to_f64(norm.forward(x.clone().detach()));
        let by_hand = to_f64(layer_ops::layer_norm(x.detach(), Tensor::ones([37], &device), None, 1e-6));
        assert_close("LayerNorm module", &plain, &by_hand, 0.0);
    }
}

#[test]
fn fused_linear_matches_burn() {
    let device = Default::default();
    let x = Tensor::<B, 2>::random([50, 24], Distribution::Normal(0.0, 1.0), &device);
    let weight = Tensor::<B, 2>::random([24, 40], Distribution::Normal(0.0, 0.3), &device);
    let bias = Tensor::<B, 1>::random([40], Distribution::Normal(0.0, 0.3), &device);
    let upstream = Tensor::<B, 2>::random([50, 40], Distribution::Normal(0.0, 1.0), &device);
    for with_bias in [true, false] {
        let run = |fused: bool| {
            let (x, weight, bias) = (x.clone().require_grad(), weight.clone().require_grad(), bias.clone().require_grad());
            let b = with_bias.then(|| bias.clone());
            let y = if fused { layer_ops::linear(x.clone(), weight.clone(), b) } else { burn::tensor::module::linear(x.clone(), weight.clone(), b) };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let bias_grad = with_bias.then(|| to_f64(bias.grad(&grads).expect("tracked")));
            (to_f64(y), to_f64(x.grad(&grads).expect("tracked")), to_f64(weight.grad(&grads).expect("tracked")), bias_grad)
        };
        let (fused, reference) = (run(true), run(false));
        assert_close("linear", &fused.0, &reference.0, 1e-6);
        assert_close("linear x gradient", &fused.1, &reference.1, 1e-6);
        assert_close("linear weight gradient", &fused.2, &reference.2, 1e-6);
        if let (Some(fused), Some(reference)) = (fused.3, reference.3) {
            assert_close("linear bias gradient", &fused, &reference, 1e-6);
        }
    }
}

/// Multi-head attention with a padding mask, against the same math in burn's tensor ops:
/// output and the gradients of q, k and v.
#[test]
fn fused_attention_matches_tensor_ops() {
    let device = Default::default();
    let (batch, tokens, heads, head_dim) = (3, 7, 2, 8);
    let width = heads * head_dim;
    let draw = || Tensor::<B, 3>::random([batch, tokens, width], Distribution::Normal(0.0, 1.0), &device);
    let (q, k, v, upstream) = (draw(), draw(), draw(), draw());
    // The last two tokens of the second sequence are padding.
    let mut keep = vec![1.0f32; batch * tokens];
    keep[tokens + tokens - 2..2 * tokens].fill(0.0);
    let mask = otclip::model::attention::mask_bias(Tensor::<B, 1>::from_floats(keep.as_slice(), &device).reshape([batch, tokens]));
    let reference_attention = |q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>| {
        let split = |t: Tensor<B, 3>| t.reshape([batch, tokens, heads, head_dim]).swap_dims(1, 2);
        let scores = split(q).matmul(split(k).swap_dims(2, 3)).div_scalar((head_dim as f64).sqrt()) + mask.clone().reshape([batch, 1, 1, tokens]);
        activation::softmax(scores, 3).matmul(split(v)).swap_dims(1, 2).reshape([batch, tokens, width])
    };
    let run = |fused: bool| {
        let (q, k, v) = (q.clone().require_grad(), k.clone().require_grad(), v.clone().require_grad());
        let out = if fused {
            layer_ops::attention(q.clone(), k.clone(), v.clone(), Some(mask.clone()), heads).expect("ndarray f32 has the fused attention")
        } else {
            reference_attention(q.clone(), k.clone(), v.clone())
        };
        let grads = (out.clone() * upstream.clone()).sum().backward();
        let grad = |t: &Tensor<B, 3>| to_f64(t.grad(&grads).expect("tracked"));
        (to_f64(out), grad(&q), grad(&k), grad(&v))
    };
    // Both sides are f32; the gradients of q and k pass through softmax's backward, whose
    // dS = P ∘ (dP − Σ dP∘P) cancels, so they get a looser bound than the output.
    let (fused, reference) = (run(true), run(false));
    let errors = [
        assert_close("attention", &fused.0, &reference.0, 1e-5),
        assert_close("attention q gradient", &fused.1, &reference.1, 1e-4),
        assert_close("attention k gradient", &fused.2, &reference.2, 1e-4),
        assert_close("attention v gradient", &fused.3, &reference.3, 1e-5),
    ];
    eprintln!("fused attention against tensor ops (relative): output, dq, dk, dv = {errors:?}");
}
