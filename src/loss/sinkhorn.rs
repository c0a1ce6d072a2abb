//! Entropic optimal transport in the log domain, written with burn tensor ops (losses.md §4).
//!
//! This is the reference that the fused kernel in `otclip-kernels` is checked against. It solves
//! a batch of problems at once: cost `[batch, n, m]`, marginals `[batch, n]` and `[batch, m]`.
//! With the potentials f, g and M₀ = C − ε log(a bᵀ), each iteration is
//! f ← φ(ε log a − ε LSE_j((g_j − M₀_ij)/ε)), then g ← φ(ε log b − ε LSE_i((f_i − M₀_ij)/ε)),
//! with φ = τ/(τ+ε) (unbalanced, KL marginal penalty τ) or 1 (balanced). Γ = exp((f ⊕ g − M₀)/ε).
//! It reproduces POT's `sinkhorn_unbalanced(method="sinkhorn_stabilized")` (f first) and
//! `sinkhorn_log` (balanced, g first) iteration for iteration.
//!
//! [`solve`] is what the losses call: the fused solver of `otclip-kernels` by default, this
//! reference when the config asks for it (`solver = "reference"`) or for `grad = "unroll"`.
//! Both read the one [`SinkhornConfig`] of `otclip-kernels`.

use burn::prelude::*;
use otclip_kernels::{sinkhorn_transport, Potential, SinkhornBackend};
pub use otclip_kernels::{GradMode, SinkhornConfig, SolverPath};

/// A solved batch: the plan Γ (not scaled by N), the potentials, and how the solve went.
#[derive(Debug, Clone)]
pub struct SinkhornOutput<B: Backend> {
    /// `[batch, n, m]`.
    pub plan: Tensor<B, 3>,
    /// `[batch, n]` and `[batch, m]`.
    pub f: Tensor<B, 2>,
    pub g: Tensor<B, 2>,
    pub log_a: Tensor<B, 2>,
    pub log_b: Tensor<B, 2>,
    /// The settings it was solved with.
    pub config: SinkhornConfig,
    pub iterations: usize,
}

/// log Σ exp along `dim`, stable: the maximum is subtracted first (and held constant).
pub fn log_sum_exp<B: Backend>(x: Tensor<B, 3>, dim: usize) -> Tensor<B, 3> {
    let max = x.clone().max_dim(dim).detach();
    let max = max.clone().mask_fill(max.clone().is_inf(), 0.0);
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

/// Uniform log marginals, log(1/n), for `batch` problems.
pub fn uniform_log_marginal<B: Backend>(batch: usize, n: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::full([batch, n], -(n as f64).ln(), device)
}

/// Solves a batch of entropic OT problems on the path the config names: the fused solver, or the
/// reference for `solver = "reference"` and for `grad = "unroll"`. On the fused path only the
/// plan carries a gradient; the potentials are constants.
pub fn solve<B: SinkhornBackend>(
    cost: Tensor<B, 3>,
    log_a: Option<Tensor<B, 2>>,
    log_b: Option<Tensor<B, 2>>,
    config: &SinkhornConfig,
) -> SinkhornOutput<B> {
    if config.solver == SolverPath::Reference || config.grad == GradMode::Unroll {
        return sinkhorn(cost, log_a, log_b, config);
    }
    let [batch, n, m] = cost.dims();
    let device = cost.device();
    let log_a = log_a.unwrap_or_else(|| uniform_log_marginal(batch, n, &device));
    let log_b = log_b.unwrap_or_else(|| uniform_log_marginal(batch, m, &device));
    let solved = sinkhorn_transport(cost, log_a.clone(), log_b.clone(), config);
    // f = ε(α − log a), g = ε(β − log b).
    let f = (solved.alpha - log_a.clone()).mul_scalar(config.eps);
    let g = (solved.beta - log_b.clone()).mul_scalar(config.eps);
    SinkhornOutput { plan: solved.plan, f, g, log_a, log_b, config: *config, iterations: solved.iterations }
}

/// Solves a batch of entropic OT problems with tensor ops (the reference). `log_a`/`log_b`
/// default to uniform marginals.
///
/// Panics when `config` is out of range (see [`SinkhornConfig::validate`]).
pub fn sinkhorn<B: Backend>(
    cost: Tensor<B, 3>,
    log_a: Option<Tensor<B, 2>>,
    log_b: Option<Tensor<B, 2>>,
    config: &SinkhornConfig,
) -> SinkhornOutput<B> {
    if let Err(error) = config.validate() {
        panic!("Sinkhorn: {error}");
    }
    let [batch, n, m] = cost.dims();
    let device = cost.device();
    let log_a = log_a.unwrap_or_else(|| uniform_log_marginal(batch, n, &device));
    let log_b = log_b.unwrap_or_else(|| uniform_log_marginal(batch, m, &device));
    let eps = config.eps;
    let phi = config.phi();
    let tracked_cost = match config.grad {
        GradMode::Unroll | GradMode::Implicit => cost.clone(),
        GradMode::Envelope | GradMode::Detach => cost.clone().detach(),
    };
    // M₀/ε = C/ε − log a_i − log b_j.
    let scaled = tracked_cost.div_scalar(eps)
        - log_a.clone().reshape([batch, n, 1])
        - log_b.clone().reshape([batch, 1, m]);
    let mut f = Tensor::<B, 2>::zeros([batch, n], &device);
    let mut g = Tensor::<B, 2>::zeros([batch, m], &device);
    let mut iterations = 0;
    // f before an iteration that ends with a convergence check.
    let mut previous = None;
    // ANCHOR: iteration
    let update_f = |g: Tensor<B, 2>| {
        let row = log_sum_exp(g.div_scalar(eps).reshape([batch, 1, m]) - scaled.clone(), 2).reshape([batch, n]);
        (log_a.clone() - row).mul_scalar(eps * phi)
    };
    let update_g = |f: Tensor<B, 2>| {
        let col = log_sum_exp(f.div_scalar(eps).reshape([batch, n, 1]) - scaled.clone(), 1).reshape([batch, m]);
        (log_b.clone() - col).mul_scalar(eps * phi)
    };
    // f first when unbalanced, g first when balanced, as POT does (see `SinkhornConfig::first_update`).
    for step in config.half_steps(config.iterations) {
        if !step.completes_iteration() && config.checks_convergence_after(step.iteration) {
            previous = Some(f.clone());
        }
        match step.writes {
            Potential::Alpha => f = update_f(g.clone()),
            Potential::Beta => g = update_g(f.clone()),
        }
        if !step.completes_iteration() {
            continue;
        }
        iterations = step.iteration;
        if let Some(previous) = previous.take() {
            let change: f64 = (f.clone() - previous).abs().max().div_scalar(eps).into_scalar().elem();
            if change < config.tolerance {
                break;
            }
        }
    }
    // ANCHOR_END: iteration
    let (f, g, plan_cost) = match config.grad {
        GradMode::Unroll | GradMode::Implicit => (f, g, scaled),
        GradMode::Detach => (f.detach(), g.detach(), scaled.detach()),
        // Potentials constant, the explicit cost tracked.
        GradMode::Envelope => {
            let explicit = cost.div_scalar(eps) - log_a.clone().reshape([batch, n, 1]) - log_b.clone().reshape([batch, 1, m]);
            (f.detach(), g.detach(), explicit)
        }
    };
    let plan = (f.clone().div_scalar(eps).reshape([batch, n, 1]) + g.clone().div_scalar(eps).reshape([batch, 1, m]) - plan_cost).exp();
    SinkhornOutput { plan, f, g, log_a, log_b, config: *config, iterations }
}

impl<B: Backend> SinkhornOutput<B> {
    /// The dual objective, `[batch]`: the entropic (unbalanced) OT value at these potentials.
    /// Its gradient with respect to the cost is the plan (Danskin), which `envelope` reproduces.
    pub fn value(&self) -> Tensor<B, 1> {
        let [batch, _, _] = self.plan.dims();
        let (a, b) = (self.log_a.clone().exp(), self.log_b.clone().exp());
        let mass_term = (self.plan.clone().sum_dim(2).sum_dim(1).reshape([batch])
            - a.clone().sum_dim(1).reshape([batch]) * b.clone().sum_dim(1).reshape([batch]))
        .mul_scalar(self.config.eps);
        let marginal_term = |potential: Tensor<B, 2>, weights: Tensor<B, 2>| -> Tensor<B, 1> {
            match self.config.tau {
                Some(tau) => {
                    ((potential.div_scalar(-tau).exp() - 1.0) * weights).sum_dim(1).reshape([batch]).mul_scalar(-tau)
                }
                _ => (potential * weights).sum_dim(1).reshape([batch]),
            }
        };
        marginal_term(self.f.clone(), a) + marginal_term(self.g.clone(), b) - mass_term
    }

    /// The largest deviation of the plan's marginals from a and b (for unbalanced OT this is
    /// not zero at the optimum; it shows how far the penalty let the mass move).
    pub fn marginal_error(&self) -> f64 {
        let rows = (self.plan.clone().sum_dim(2).squeeze_dim::<2>(2) - self.log_a.clone().exp()).abs().max();
        let cols = (self.plan.clone().sum_dim(1).squeeze_dim::<2>(1) - self.log_b.clone().exp()).abs().max();
        let rows: f64 = rows.into_scalar().elem();
        let cols: f64 = cols.into_scalar().elem();
        rows.max(cols)
    }
}
