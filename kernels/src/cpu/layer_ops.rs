//! The fused layer ops for `NdArray` in f32. GELU, LayerNorm and softmax are one pass over their
//! rows, with their own backward, in place of burn's chains of element-wise ops (one fresh buffer
//! per op, scalar libm calls, and a GELU backward that differentiates the tanh approximation
//! rather than the exact GELU). The loops are compiled twice, with and without AVX2 + FMA, and
//! chosen at run time. Linear layers and attention are strided products (`super::matmul`).

use std::borrow::Cow;

use burn_ndarray::NdArrayTensor;
use rayon::prelude::*;

use super::matmul::{self, Heads};
use super::real::{dims, rows_per_task, write, Real};
use crate::layer_ops::LayerOpsBackend;

type Nd = burn_ndarray::NdArray<f32>;

/// The tensor's f32 values, borrowed when its storage is contiguous.
fn slice(t: &NdArrayTensor) -> Cow<'_, [f32]> {
    match t {
        NdArrayTensor::F32(storage) => {
            let view = storage.view();
            match view.to_slice() {
                Some(slice) => Cow::Borrowed(slice),
                None => Cow::Owned(view.iter().copied().collect()),
            }
        }
        other => panic!("the fused layer ops take f32 tensors, not {:?}", burn::tensor::TensorMetadata::dtype(other)),
    }
}

/// Defines `$name` (dispatching to AVX2 + FMA where the CPU has it) around an `#[inline(always)]`
/// body `$body` with the same arguments.
macro_rules! vectorised {
    ($(#[$doc:meta])* $vis:vis fn $name:ident / $body:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { wide($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// Φ(x) and φ(x), the standard normal CDF and density. erfc(z) for z = |x|/√2 ≥ 0 is
/// Abramowitz–Stegun 7.1.26, t·P(t)·e^{−z²} with t = 1/(1 + 0.3275911 z) (absolute error below
/// 1.5e-7); Φ takes ½erfc directly for negative x, so small tails keep their relative accuracy.
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let z = x.abs() * FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let gauss = (-z * z).exp_fast();
    let half_erfc = 0.5 * poly * gauss;
    let cdf = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    (cdf, FRAC_1_SQRT_2PI * gauss)
}

#[inline(always)]
fn gelu_body(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x * normal_cdf_pdf(x).0;
    }
}

#[inline(always)]
fn gelu_backward_body(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((out, &x), &g) in out.iter_mut().zip(x).zip(grad) {
        let (cdf, pdf) = normal_cdf_pdf(x);
        *out = g * (cdf + x * pdf);
    }
}

/// Rows of `width`: y = (x − μ)/σ · γ + β, and (μ, 1/σ) per row into `stats`.
#[inline(always)]
fn layer_norm_body(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32], stats: &mut [f32]) {
    let width = gamma.len();
    for ((x, y), stats) in x.chunks_exact(width).zip(y.chunks_exact_mut(width)).zip(stats.chunks_exact_mut(2)) {
        let mean = x.iter().sum::<f32>() / width as f32;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
            *y = (x - mean) * rstd * g + b;
        }
        stats[0] = mean;
        stats[1] = rstd;
    }
}

/// Rows of `width`: dx = (ĝ − mean ĝ − x̂ · mean(ĝ x̂)) / σ with ĝ = g·γ, x̂ = (x − μ)/σ; adds
/// Σ g·x̂ to `dgamma` and Σ g to `dbeta`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_backward_body(x: &[f32], gamma: &[f32], stats: &[f32], grad: &[f32], dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32]) {
    let width = gamma.len();
    let rows = x.chunks_exact(width).zip(grad.chunks_exact(width)).zip(dx.chunks_exact_mut(width)).zip(stats.chunks_exact(2));
    for (((x, g), dx), stats) in rows {
        let (mean, rstd) = (stats[0], stats[1]);
        let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
        for (((&x, &g), &gamma), (dgamma, dbeta)) in x.iter().zip(g).zip(gamma).zip(dgamma.iter_mut().zip(dbeta.iter_mut())) {
            let normed = (x - mean) * rstd;
            let scaled = g * gamma;
            sum_g += scaled;
            sum_gx += scaled * normed;
            *dgamma += g * normed;
            *dbeta += g;
        }
        let (mean_g, mean_gx) = (sum_g / width as f32, sum_gx / width as f32);
        for (((dx, &x), &g), &gamma) in dx.iter_mut().zip(x).zip(g).zip(gamma) {
            *dx = rstd * (g * gamma - mean_g - (x - mean) * rstd * mean_gx);
        }
    }
}

#[inline(always)]
fn softmax_body(x: &[f32], width: usize, y: &mut [f32]) {
    for (x, y) in x.chunks_exact(width).zip(y.chunks_exact_mut(width)) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0;
        for (y, &x) in y.iter_mut().zip(x) {
            *y = (x - max).exp_fast();
            sum += *y;
        }
        let inv = 1.0 / sum;
        y.iter_mut().for_each(|y| *y *= inv);
    }
}

#[inline(always)]
fn softmax_backward_body(y: &[f32], grad: &[f32], width: usize, dx: &mut [f32]) {
    for ((y, g), dx) in y.chunks_exact(width).zip(grad.chunks_exact(width)).zip(dx.chunks_exact_mut(width)) {
        let dot: f32 = y.iter().zip(g).map(|(&y, &g)| y * g).sum();
        for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(g) {
            *dx = y * (g - dot);
        }
    }
}

vectorised!(fn gelu_rows / gelu_body(x: &[f32], y: &mut [f32]));
vectorised!(fn gelu_backward_rows / gelu_backward_body(x: &[f32], grad: &[f32], out: &mut [f32]));
vectorised!(fn layer_norm_rows / layer_norm_body(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32], stats: &mut [f32]));
vectorised!(fn layer_norm_backward_rows / layer_norm_backward_body(x: &[f32], gamma: &[f32], stats: &[f32], grad: &[f32], dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32]));
vectorised!(pub(super) fn softmax_rows / softmax_body(x: &[f32], width: usize, y: &mut [f32]));
vectorised!(pub(super) fn softmax_backward_rows / softmax_backward_body(y: &[f32], grad: &[f32], width: usize, dx: &mut [f32]));

/// Runs `rows_fn` over parallel blocks of whole rows of `width`, for element-wise and row-wise ops.
fn by_rows(len: usize, width: usize, rows_fn: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    let rows = len / width.max(1);
    let task = rows_per_task(rows) * width.max(1);
    out.par_chunks_mut(task.max(1)).enumerate().for_each(|(index, out)| {
        let start = index * task;
        rows_fn(start..start + out.len(), out);
    });
    out
}

impl LayerOpsBackend for Nd {
    fn fused_gelu(x: NdArrayTensor) -> NdArrayTensor {
        let (values, shape) = (slice(&x), dims(&x));
        let width = *shape.last().unwrap_or(&1);
        write(by_rows(values.len(), width, |range, out| gelu_rows(&values[range], out)), shape)
    }

    fn fused_gelu_backward(x: NdArrayTensor, grad: NdArrayTensor) -> NdArrayTensor {
        let (values, grad, shape) = (slice(&x), slice(&grad), dims(&x));
        let width = *shape.last().unwrap_or(&1);
        write(by_rows(values.len(), width, |range, out| gelu_backward_rows(&values[range.clone()], &grad[range], out)), shape)
    }

    fn fused_layer_norm(x: NdArrayTensor, gamma: NdArrayTensor, beta: NdArrayTensor, eps: f64) -> (NdArrayTensor, NdArrayTensor) {
        let (values, gamma, beta, shape) = (slice(&x), slice(&gamma), slice(&beta), dims(&x));
        let width = gamma.len();
        let rows = values.len() / width;
        let mut stats = vec![0.0f32; 2 * rows];
        let mut y = vec![0.0f32; values.len()];
        let task = rows_per_task(rows);
        y.par_chunks_mut(task * width).zip(stats.par_chunks_mut(task * 2)).enumerate().for_each(|(index, (y, stats))| {
            let start = index * task * width;
            layer_norm_rows(&values[start..start + y.len()], &gamma, &beta, eps as f32, y, stats);
        });
        (write(y, shape), write(stats, vec![rows, 2]))
    }

    fn fused_layer_norm_backward(x: NdArrayTensor, gamma: NdArrayTensor, stats: NdArrayTensor, grad: NdArrayTensor) -> [NdArrayTensor; 3] {
        let (values, gamma, stats, grad, shape) = (slice(&x), slice(&gamma), slice(&stats), slice(&grad), dims(&x));
        let width = gamma.len();
        let rows = values.len() / width;
        let mut dx = vec![0.0f32; values.len()];
        let task = rows_per_task(rows);
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(task * width)
            .enumerate()
            .map(|(index, dx)| {
                let (start, first_row) = (index * task * width, index * task);
                let end_row = first_row + dx.len() / width;
                let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
                let range = start..start + dx.len();
                layer_norm_backward_rows(&values[range.clone()], &gamma, &stats[2 * first_row..2 * end_row], &grad[range], dx, &mut dgamma, &mut dbeta);
                (dgamma, dbeta)
            })
            .collect();
        let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
        for (g, b) in partials {
            dgamma.iter_mut().zip(g).for_each(|(sum, v)| *sum += v);
            dbeta.iter_mut().zip(b).for_each(|(sum, v)| *sum += v);
        }
        [write(dx, shape), write(dgamma, vec![width]), write(dbeta, vec![width])]
    }

    fn fused_softmax(x: NdArrayTensor) -> NdArrayTensor {
        let (values, shape) = (slice(&x), dims(&x));
        let width = *shape.last().unwrap_or(&1);
        write(by_rows(values.len(), width, |range, out| softmax_rows(&values[range], width, out)), shape)
    }

    fn fused_softmax_backward(y: NdArrayTensor, grad: NdArrayTensor) -> NdArrayTensor {
        let (values, grad, shape) = (slice(&y), slice(&grad), dims(&y));
        let width = *shape.last().unwrap_or(&1);
        write(by_rows(values.len(), width, |range, out| softmax_backward_rows(&values[range.clone()], &grad[range], width, out)), shape)
    }

    fn fused_linear(x: NdArrayTensor, weight: NdArrayTensor, bias: NdArrayTensor) -> NdArrayTensor {
        let [rows, d_in] = dims(&x)[..] else { panic!("fused_linear takes a [rows, d_in] input") };
        let d_out = dims(&weight)[1];
        write(matmul::linear(&slice(&x), &slice(&weight), Some(&slice(&bias)), d_in, d_out), vec![rows, d_out])
    }

    fn fused_linear_backward(x: NdArrayTensor, weight: NdArrayTensor, grad: NdArrayTensor) -> [NdArrayTensor; 3] {
        let (x_shape, w_shape) = (dims(&x), dims(&weight));
        let [dx, dw, db] = matmul::linear_backward(&slice(&x), &slice(&weight), &slice(&grad), w_shape[0], w_shape[1]);
        [write(dx, x_shape), write(dw, w_shape.clone()), write(db, vec![w_shape[1]])]
    }

    fn fused_attention(q: NdArrayTensor, k: NdArrayTensor, v: NdArrayTensor, mask_bias: Option<NdArrayTensor>, heads: usize) -> (NdArrayTensor, NdArrayTensor) {
        let [batch, tokens, width] = dims(&q)[..] else { panic!("fused_attention takes [batch, tokens, width] inputs") };
        let heads_shape = Heads { batch, tokens, heads, head_dim: width / heads };
        let mask = mask_bias.as_ref().map(slice);
        let (out, weights) = matmul::attention(&slice(&q), &slice(&k), &slice(&v), mask.as_deref(), heads_shape);
        (write(out, vec![batch, tokens, width]), write(weights, vec![batch, heads, tokens, tokens]))
    }

    fn fused_attention_backward(q: NdArrayTensor, k: NdArrayTensor, v: NdArrayTensor, weights: NdArrayTensor, grad: NdArrayTensor, heads: usize) -> [NdArrayTensor; 3] {
        let shape = dims(&q);
        let heads_shape = Heads { batch: shape[0], tokens: shape[1], heads, head_dim: shape[2] / heads };
        let gradients = matmul::attention_backward(&slice(&q), &slice(&k), &slice(&v), &slice(&weights), &slice(&grad), heads_shape);
        gradients.map(|gradient| write(gradient, shape.clone()))
    }
}
