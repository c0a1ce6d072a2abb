//! otclip-kernels: the fused Sinkhorn solver of otclip, as a burn backend extension.
//!
//! The solver works on log-scalings α = f/ε + log a and β = g/ε + log b. With the cost C
//! (`[batch, n, m]`) and φ = τ/(τ+ε) (1 when balanced) one iteration is
//!
//! α_i ← log a_i − φ · LSE_j(β_j − C_ij/ε),    β_j ← log b_j − φ · LSE_i(α_i − C_ij/ε),
//!
//! and the plan is Γ_ij = exp(α_i + β_j − C_ij/ε). This is the update of `otclip::loss::sinkhorn`
//! (the tensor-op reference) rewritten so that each half-iteration is one row-wise log-sum-exp.
//!
//! - [`SinkhornBackend`] holds the primitive ops. Its default bodies are tensor-op versions
//!   ([`fallback`]), so any backend can implement it; `NdArray` overrides them with a rayon loop
//!   ([`cpu`]), `CubeBackend` (wgpu, CUDA) with CubeCL kernels (`cube`), `Fusion` forwards to
//!   the fused backend as custom operations (`fusion`), and `Autodiff` adds a backward pass
//!   (`autodiff`) that reverses the stored iterations: its state is O(n + m) per iteration.
//! - [`sinkhorn_transport`] is the tensor-level entry point.

pub mod autodiff;
#[cfg(feature = "ndarray")]
pub mod cpu;
#[cfg(feature = "cubecl")]
mod cube;
pub mod fallback;
#[cfg(feature = "fusion")]
mod fusion;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};

/// The numbers that define a solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveParams {
    /// Entropic regularisation ε.
    pub eps: f64,
    /// φ = τ/(τ+ε) for the unbalanced problem, 1 for the balanced one.
    pub phi: f64,
    /// The most iterations to run.
    pub iters: usize,
    /// Stop once max |Δα| over one iteration falls below this (checked every 10 iterations, on
    /// the whole batch, as the reference does); 0 runs every iteration.
    pub tol: f64,
}

impl SolveParams {
    /// POT's unbalanced solver updates α (u) first; its balanced `sinkhorn_log` updates β first.
    pub fn alpha_first(&self) -> bool {
        self.phi < 1.0
    }

    /// Whether this iteration (0-based) ends with a convergence check.
    pub fn checks_after(&self, iteration: usize) -> bool {
        self.tol > 0.0 && iteration % 10 == 9
    }
}

/// What flows back from the plan into the cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelGrad {
    /// The exact gradient of the plan after the iterations run: a reverse pass over the stored
    /// potentials. It equals autodiff through every iteration (`unroll`).
    Implicit,
    /// The potentials held constant (Danskin): exact for the OT value, not for a loss on the plan.
    Envelope,
    /// No gradient.
    Detach,
}

/// The potentials after a solve, and after every iteration for the backward pass.
#[derive(Debug, Clone)]
pub struct Potentials<B: Backend> {
    /// `[batch, n]` and `[batch, m]`.
    pub alpha: FloatTensor<B>,
    pub beta: FloatTensor<B>,
    /// `[iters + 1, batch, n]` and `[iters + 1, batch, m]`; slot 0 holds the start (log a, log b)
    /// and slot t the potentials after iteration t. Slots past an early stop are not written.
    pub alpha_history: FloatTensor<B>,
    pub beta_history: FloatTensor<B>,
    /// The number of iterations run, as a `[1]` tensor, so that no backend has to wait for it.
    pub iterations: FloatTensor<B>,
}

/// A solved batch at the tensor level.
#[derive(Debug, Clone)]
pub struct Transport<B: Backend> {
    /// Γ, `[batch, n, m]` (not scaled by n).
    pub plan: FloatTensor<B>,
    pub alpha: FloatTensor<B>,
    pub beta: FloatTensor<B>,
    pub iterations: usize,
}

/// The Sinkhorn ops a backend provides. Every default is the tensor-op version in [`fallback`].
pub trait SinkhornBackend: Backend {
    /// Runs the iterations. `cost` is `[batch, n, m]`, `log_a` `[batch, n]`, `log_b` `[batch, m]`.
    fn sinkhorn_solve(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, params: SolveParams) -> Potentials<Self> {
        fallback::solve::<Self>(cost, log_a, log_b, params)
    }

    /// Γ = exp(α ⊕ β − C/ε).
    fn sinkhorn_plan(cost: FloatTensor<Self>, alpha: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        fallback::plan::<Self>(cost, alpha, beta, eps)
    }

    /// The gradient with respect to the cost that comes through the `iterations` iterations,
    /// given the adjoints of the final α and β. The plan's explicit dependence on the cost is
    /// added by the caller.
    #[allow(clippy::too_many_arguments)]
    fn sinkhorn_backward(
        cost: FloatTensor<Self>,
        log_a: FloatTensor<Self>,
        log_b: FloatTensor<Self>,
        alpha_history: FloatTensor<Self>,
        beta_history: FloatTensor<Self>,
        iterations: usize,
        alpha_adjoint: FloatTensor<Self>,
        beta_adjoint: FloatTensor<Self>,
        params: SolveParams,
    ) -> FloatTensor<Self> {
        fallback::backward::<Self>(cost, log_a, log_b, alpha_history, beta_history, iterations, alpha_adjoint, beta_adjoint, params)
    }

    /// Solve and plan. `Autodiff` overrides this to record the backward pass chosen by `grad`.
    fn sinkhorn_transport(
        cost: FloatTensor<Self>,
        log_a: FloatTensor<Self>,
        log_b: FloatTensor<Self>,
        params: SolveParams,
        _grad: KernelGrad,
    ) -> Transport<Self> {
        let solved = Self::sinkhorn_solve(cost.clone(), log_a, log_b, params);
        let iterations = iterations_run::<Self>(solved.iterations, params);
        let plan = Self::sinkhorn_plan(cost, solved.alpha.clone(), solved.beta.clone(), params.eps);
        Transport { plan, alpha: solved.alpha, beta: solved.beta, iterations }
    }
}

/// The iteration count on the host: read only when an early stop could have ended the run.
pub fn iterations_run<B: Backend>(iterations: FloatTensor<B>, params: SolveParams) -> usize {
    if params.tol > 0.0 {
        let count: f64 = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(iterations)).into_scalar().elem();
        count.round() as usize
    } else {
        params.iters
    }
}

/// A solved batch as tensors: the plan Γ and the log-scalings α, β.
#[derive(Debug, Clone)]
pub struct TransportTensors<B: Backend> {
    pub plan: Tensor<B, 3>,
    pub alpha: Tensor<B, 2>,
    pub beta: Tensor<B, 2>,
    pub iterations: usize,
}

/// Solves a batch of entropic OT problems through the backend's fused path. Only the plan carries
/// a gradient (to the cost, as chosen by `grad`); the marginals are constants.
pub fn sinkhorn_transport<B: SinkhornBackend>(
    cost: Tensor<B, 3>,
    log_a: Tensor<B, 2>,
    log_b: Tensor<B, 2>,
    params: SolveParams,
    grad: KernelGrad,
) -> TransportTensors<B> {
    assert!(params.eps > 0.0 && params.phi > 0.0 && params.phi <= 1.0, "Sinkhorn needs ε > 0 and 0 < φ ≤ 1, got {params:?}");
    let [batch, n, m] = cost.dims();
    assert_eq!(log_a.dims(), [batch, n], "log_a must be [batch, n] for a [batch, n, m] cost");
    assert_eq!(log_b.dims(), [batch, m], "log_b must be [batch, m] for a [batch, n, m] cost");
    let solved = B::sinkhorn_transport(
        cost.into_primitive().tensor(),
        log_a.into_primitive().tensor(),
        log_b.into_primitive().tensor(),
        params,
        grad,
    );
    TransportTensors {
        plan: Tensor::from_primitive(TensorPrimitive::Float(solved.plan)),
        alpha: Tensor::from_primitive(TensorPrimitive::Float(solved.alpha)),
        beta: Tensor::from_primitive(TensorPrimitive::Float(solved.beta)),
        iterations: solved.iterations,
    }
}

/// `NdArray` in f32 and f64 (the float primitive carries its own dtype; the loops follow it).
#[cfg(feature = "ndarray")]
macro_rules! impl_ndarray {
    ($($float:ty),*) => {$(
        impl SinkhornBackend for burn_ndarray::NdArray<$float> {
            fn sinkhorn_solve(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, params: SolveParams) -> Potentials<Self> {
                let solved = cpu::solve(cost, log_a, log_b, params);
                Potentials {
                    alpha: solved.alpha,
                    beta: solved.beta,
                    alpha_history: solved.alpha_history,
                    beta_history: solved.beta_history,
                    iterations: solved.iterations,
                }
            }

            fn sinkhorn_plan(cost: FloatTensor<Self>, alpha: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
                cpu::plan(cost, alpha, beta, eps)
            }

            fn sinkhorn_backward(
                cost: FloatTensor<Self>,
                log_a: FloatTensor<Self>,
                log_b: FloatTensor<Self>,
                alpha_history: FloatTensor<Self>,
                beta_history: FloatTensor<Self>,
                iterations: usize,
                alpha_adjoint: FloatTensor<Self>,
                beta_adjoint: FloatTensor<Self>,
                params: SolveParams,
            ) -> FloatTensor<Self> {
                cpu::backward(cost, log_a, log_b, alpha_history, beta_history, iterations, alpha_adjoint, beta_adjoint, params)
            }
        }
    )*};
}
#[cfg(feature = "ndarray")]
impl_ndarray!(f32, f64);
