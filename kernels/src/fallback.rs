//! The Sinkhorn ops written with burn tensor ops: the default bodies of [`SinkhornBackend`], so
//! that any backend has them. It is also the plainest statement of the backward pass, which the
//! CPU loop and the CubeCL kernels repeat in fused form.
//!
//! [`SinkhornBackend`]: crate::SinkhornBackend

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};

use crate::{BackwardInputs, Potential, Potentials, SinkhornConfig, SolveRecord};

pub(crate) fn tensor<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

pub(crate) fn primitive<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
    tensor.into_primitive().tensor()
}

/// log Σ exp along `dim`, the maximum subtracted first.
fn log_sum_exp<B: Backend>(x: Tensor<B, 3>, dim: usize) -> Tensor<B, 3> {
    let max = x.clone().max_dim(dim);
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

// ANCHOR: tensor_op
/// α_i ← log a_i − φ LSE_j(β_j − C_ij/ε), with `neg_cost` = −C/ε.
fn update_alpha<B: Backend>(neg_cost: &Tensor<B, 3>, beta: Tensor<B, 2>, log_a: &Tensor<B, 2>, phi: f64) -> Tensor<B, 2> {
    let [batch, n, m] = neg_cost.dims();
    let lse = log_sum_exp(neg_cost.clone() + beta.reshape([batch, 1, m]), 2).reshape([batch, n]);
    log_a.clone() - lse.mul_scalar(phi)
}
// ANCHOR_END: tensor_op

/// β_j ← log b_j − φ LSE_i(α_i − C_ij/ε).
fn update_beta<B: Backend>(neg_cost: &Tensor<B, 3>, alpha: Tensor<B, 2>, log_b: &Tensor<B, 2>, phi: f64) -> Tensor<B, 2> {
    let [batch, n, m] = neg_cost.dims();
    let lse = log_sum_exp(neg_cost.clone() + alpha.reshape([batch, n, 1]), 1).reshape([batch, m]);
    log_b.clone() - lse.mul_scalar(phi)
}

/// Stacks the per-iteration potentials into `[iters + 1, batch, len]`, zeros past an early stop.
fn stack_history<B: Backend>(slots: Vec<Tensor<B, 2>>, iters: usize) -> Tensor<B, 3> {
    let [batch, len] = slots[0].dims();
    let device = slots[0].device();
    let run = slots.len();
    let mut stacked = Tensor::stack::<3>(slots, 0);
    if run < iters + 1 {
        stacked = Tensor::cat(vec![stacked, Tensor::zeros([iters + 1 - run, batch, len], &device)], 0);
    }
    stacked
}

pub fn solve<B: Backend>(cost: FloatTensor<B>, log_a: FloatTensor<B>, log_b: FloatTensor<B>, config: &SinkhornConfig) -> Potentials<B> {
    let neg_cost = tensor::<B, 3>(cost).div_scalar(-config.eps);
    let (log_a, log_b) = (tensor::<B, 2>(log_a), tensor::<B, 2>(log_b));
    let device = neg_cost.device();
    let (mut alpha, mut beta) = (log_a.clone(), log_b.clone());
    let (mut alphas, mut betas) = (vec![alpha.clone()], vec![beta.clone()]);
    let mut run = 0;
    for iteration in 0..config.iterations {
        let previous = alpha.clone();
        if config.first_update() == Potential::Alpha {
            alpha = update_alpha(&neg_cost, beta, &log_a, config.phi());
            beta = update_beta(&neg_cost, alpha.clone(), &log_b, config.phi());
        } else {
            beta = update_beta(&neg_cost, alpha, &log_b, config.phi());
            alpha = update_alpha(&neg_cost, beta.clone(), &log_a, config.phi());
        }
        alphas.push(alpha.clone());
        betas.push(beta.clone());
        run = iteration + 1;
        if config.checks_convergence_after(iteration + 1) {
            let change: f64 = (alpha.clone() - previous).abs().max().into_scalar().elem();
            if change < config.tolerance {
                break;
            }
        }
    }
    Potentials {
        alpha: primitive(alpha),
        beta: primitive(beta),
        alpha_history: primitive(stack_history(alphas, config.iterations)),
        beta_history: primitive(stack_history(betas, config.iterations)),
        iterations: primitive(Tensor::<B, 1>::from_floats([run as f32], &device)),
    }
}

pub fn plan<B: Backend>(cost: FloatTensor<B>, alpha: FloatTensor<B>, beta: FloatTensor<B>, eps: f64) -> FloatTensor<B> {
    let cost = tensor::<B, 3>(cost);
    let [batch, n, m] = cost.dims();
    let exponent = tensor::<B, 2>(alpha).reshape([batch, n, 1]) + tensor::<B, 2>(beta).reshape([batch, 1, m]) - cost.div_scalar(eps);
    primitive(exponent.exp())
}

/// The reverse of one half-step `out_r = log_out_r − φ LSE_k(in_k − C_rk/ε)` (rows r along
/// `reduce_dim`'s other axis): returns the adjoint of `in` and adds to `cost_grad`.
/// `row_dim` is the axis of `out` in the `[batch, n, m]` cost (2 when `out` is α, 1 when β).
#[allow(clippy::too_many_arguments)]
fn reverse_half_step<B: Backend>(
    neg_cost: &Tensor<B, 3>,
    input: Tensor<B, 2>,
    output: Tensor<B, 2>,
    log_out: &Tensor<B, 2>,
    output_adjoint: Tensor<B, 2>,
    out_is_alpha: bool,
    config: &SinkhornConfig,
    cost_grad: &mut Tensor<B, 3>,
) -> Tensor<B, 2> {
    let [batch, n, m] = neg_cost.dims();
    let (out_shape, in_shape, reduce_dim) = if out_is_alpha { ([batch, n, 1], [batch, 1, m], 1) } else { ([batch, 1, m], [batch, n, 1], 2) };
    // The row's LSE from the forward, recovered from its output: L = (log_out − out)/φ.
    let lse = (log_out.clone() - output).div_scalar(config.phi()).reshape(out_shape);
    let softmax = (neg_cost.clone() + input.reshape(in_shape) - lse).exp();
    let weighted = softmax * output_adjoint.reshape(out_shape);
    *cost_grad = cost_grad.clone() + weighted.clone().mul_scalar(config.phi() / config.eps);
    let in_len = if out_is_alpha { m } else { n };
    weighted.sum_dim(reduce_dim).reshape([batch, in_len]).mul_scalar(-config.phi())
}

pub fn backward<B: Backend>(inputs: BackwardInputs<B>, config: &SinkhornConfig) -> FloatTensor<B> {
    let BackwardInputs { record: SolveRecord { cost, log_a, log_b, alpha_history, beta_history, iterations }, alpha_adjoint, beta_adjoint } = inputs;
    let neg_cost = tensor::<B, 3>(cost).div_scalar(-config.eps);
    let [batch, n, m] = neg_cost.dims();
    let (log_a, log_b) = (tensor::<B, 2>(log_a), tensor::<B, 2>(log_b));
    let (alphas, betas) = (tensor::<B, 3>(alpha_history), tensor::<B, 3>(beta_history));
    let slot = |history: &Tensor<B, 3>, t: usize, len: usize| history.clone().slice([t..t + 1]).reshape([batch, len]);
    let mut cost_grad = neg_cost.zeros_like();
    let (mut alpha_bar, mut beta_bar) = (tensor::<B, 2>(alpha_adjoint), tensor::<B, 2>(beta_adjoint));
    for t in (1..=iterations).rev() {
        let alpha_t = slot(&alphas, t, n);
        let beta_t = slot(&betas, t, m);
        if config.first_update() == Potential::Alpha {
            // α_t = A(β_{t−1}), then β_t = B(α_t).
            alpha_bar = alpha_bar + reverse_half_step(&neg_cost, alpha_t.clone(), beta_t, &log_b, beta_bar, false, config, &mut cost_grad);
            beta_bar = reverse_half_step(&neg_cost, slot(&betas, t - 1, m), alpha_t, &log_a, alpha_bar, true, config, &mut cost_grad);
            alpha_bar = Tensor::zeros([batch, n], &neg_cost.device());
        } else {
            // β_t = B(α_{t−1}), then α_t = A(β_t).
            beta_bar = beta_bar + reverse_half_step(&neg_cost, beta_t.clone(), alpha_t, &log_a, alpha_bar, true, config, &mut cost_grad);
            alpha_bar = reverse_half_step(&neg_cost, slot(&alphas, t - 1, n), beta_t, &log_b, beta_bar, false, config, &mut cost_grad);
            beta_bar = Tensor::zeros([batch, m], &neg_cost.device());
        }
    }
    primitive(cost_grad)
}
