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
    let phi = config.phi();
    let neg_cost = tensor::<B, 3>(cost).div_scalar(-config.eps);
    let (log_a, log_b) = (tensor::<B, 2>(log_a), tensor::<B, 2>(log_b));
    let device = neg_cost.device();
    let (mut alpha, mut beta) = (log_a.clone(), log_b.clone());
    let (mut alphas, mut betas) = (vec![alpha.clone()], vec![beta.clone()]);
    for step in config.half_steps(config.iterations) {
        match step.writes {
            Potential::Alpha => alpha = update_alpha(&neg_cost, beta.clone(), &log_a, phi),
            Potential::Beta => beta = update_beta(&neg_cost, alpha.clone(), &log_b, phi),
        }
        if step.completes_iteration() {
            alphas.push(alpha.clone());
            betas.push(beta.clone());
            if config.checks_convergence_after(step.iteration) {
                let change: f64 = (alpha.clone() - alphas[step.iteration - 1].clone()).abs().max().into_scalar().elem();
                if change < config.tolerance {
                    break;
                }
            }
        }
    }
    let run = alphas.len() - 1;
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

/// The reverse of the half-step that wrote `writes`, out_r = log_out_r − φ LSE_k(in_k − C_rk/ε)
/// (r over the rows of C for α, over its columns for β): adds the step's share of ∂L/∂C to
/// `cost_grad` and returns the adjoint it passes to its input.
#[allow(clippy::too_many_arguments)]
fn reverse_half_step<B: Backend>(
    neg_cost: &Tensor<B, 3>,
    writes: Potential,
    input: Tensor<B, 2>,
    output: Tensor<B, 2>,
    log_out: &Tensor<B, 2>,
    output_adjoint: Tensor<B, 2>,
    config: &SinkhornConfig,
    cost_grad: &mut Tensor<B, 3>,
) -> Tensor<B, 2> {
    let phi = config.phi();
    let [batch, n, m] = neg_cost.dims();
    // The shapes that broadcast the output and the input over C, and the axis the input's rows sum over.
    let (out_shape, in_shape, reduce_dim, in_len) = match writes {
        Potential::Alpha => ([batch, n, 1], [batch, 1, m], 1, m),
        Potential::Beta => ([batch, 1, m], [batch, n, 1], 2, n),
    };
    // The row's LSE from the forward, recovered from its output: L = (log_out − out)/φ.
    let lse = (log_out.clone() - output).div_scalar(phi).reshape(out_shape);
    let softmax = (neg_cost.clone() + input.reshape(in_shape) - lse).exp();
    let weighted = softmax * output_adjoint.reshape(out_shape);
    *cost_grad = cost_grad.clone() + weighted.clone().mul_scalar(phi / config.eps);
    weighted.sum_dim(reduce_dim).reshape([batch, in_len]).mul_scalar(-phi)
}

pub fn backward<B: Backend>(inputs: BackwardInputs<B>, config: &SinkhornConfig) -> FloatTensor<B> {
    let BackwardInputs { record: SolveRecord { cost, log_a, log_b, alpha_history, beta_history, iterations }, alpha_adjoint, beta_adjoint } = inputs;
    let neg_cost = tensor::<B, 3>(cost).div_scalar(-config.eps);
    let [batch, n, m] = neg_cost.dims();
    let (log_a, log_b) = (tensor::<B, 2>(log_a), tensor::<B, 2>(log_b));
    let (alphas, betas) = (tensor::<B, 3>(alpha_history), tensor::<B, 3>(beta_history));
    let slot = |history: &Tensor<B, 3>, t: usize, len: usize| history.clone().slice([t..t + 1]).reshape([batch, len]);
    let zeros = |len: usize| Tensor::<B, 2>::zeros([batch, len], &neg_cost.device());
    let mut cost_grad = neg_cost.zeros_like();
    let (mut alpha_bar, mut beta_bar) = (tensor::<B, 2>(alpha_adjoint), tensor::<B, 2>(beta_adjoint));
    // Each step's input gains what flowed into its output; the output's adjoint is then spent.
    for step in config.half_steps(iterations).rev() {
        let (t, s) = (step.iteration, step.reads_slot);
        match step.writes {
            Potential::Alpha => {
                let (input, output) = (slot(&betas, s, m), slot(&alphas, t, n));
                beta_bar = beta_bar + reverse_half_step(&neg_cost, step.writes, input, output, &log_a, alpha_bar, config, &mut cost_grad);
                alpha_bar = zeros(n);
            }
            Potential::Beta => {
                let (input, output) = (slot(&alphas, s, n), slot(&betas, t, m));
                alpha_bar = alpha_bar + reverse_half_step(&neg_cost, step.writes, input, output, &log_b, beta_bar, config, &mut cost_grad);
                beta_bar = zeros(m);
            }
        }
    }
    primitive(cost_grad)
}
