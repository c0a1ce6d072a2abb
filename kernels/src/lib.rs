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
//! - [`layer_ops`] holds fused GELU, LayerNorm, softmax, linear layers and attention with their
//!   own backward, used by the towers where the backend has them (ndarray in f32).
//! - [`SinkhornConfig`] holds the settings of a solve for every path (and for otclip's config
//!   files); its [`SinkhornConfig::half_steps`] is the one order of the half-steps, which every
//!   forward pass runs and every backward pass reverses. A backward pass takes one
//!   [`BackwardInputs`].

pub mod autodiff;
mod config;
#[cfg(feature = "ndarray")]
pub mod cpu;
#[cfg(feature = "cubecl")]
mod cube;
pub mod fallback;
#[cfg(feature = "fusion")]
mod fusion;
pub mod layer_ops;
mod schedule;

pub use config::{GradMode, SinkhornConfig, SinkhornConfigError, SolverPath};
pub use schedule::{HalfStep, HalfSteps, Potential};

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};

/// The potentials after a solve, and after every iteration for the backward pass.
#[derive(Debug, Clone)]
pub struct Potentials<B: Backend> {
    /// `[batch, n]` and `[batch, m]`.
    pub alpha: FloatTensor<B>,
    pub beta: FloatTensor<B>,
    /// `[iterations + 1, batch, n]` and `[iterations + 1, batch, m]`; slot 0 holds the start (log a, log b)
    /// and slot t the potentials after iteration t. Slots past an early stop are not written.
    pub alpha_history: FloatTensor<B>,
    pub beta_history: FloatTensor<B>,
    /// The number of iterations run, as a `[1]` tensor, so that no backend has to wait for it.
    pub iterations: FloatTensor<B>,
}

impl<B: Backend> Potentials<B> {
    /// The same potentials with every tensor passed through `f` (into or out of a wrapping backend).
    pub fn map<C: Backend>(self, f: impl Fn(FloatTensor<B>) -> FloatTensor<C>) -> Potentials<C> {
        Potentials { alpha: f(self.alpha), beta: f(self.beta), alpha_history: f(self.alpha_history), beta_history: f(self.beta_history), iterations: f(self.iterations) }
    }
}

/// What a solve keeps for its backward pass: its inputs and the potentials after every iteration.
#[derive(Debug, Clone)]
pub struct SolveRecord<B: Backend> {
    /// C, `[batch, n, m]`.
    pub cost: FloatTensor<B>,
    /// log a, `[batch, n]`.
    pub log_a: FloatTensor<B>,
    /// log b, `[batch, m]`.
    pub log_b: FloatTensor<B>,
    /// α after every iteration, as in [`Potentials::alpha_history`].
    pub alpha_history: FloatTensor<B>,
    /// β after every iteration, as in [`Potentials::beta_history`].
    pub beta_history: FloatTensor<B>,
    /// The iterations the solve ran.
    pub iterations: usize,
}

/// The inputs of the backward pass through the iterations.
#[derive(Debug, Clone)]
pub struct BackwardInputs<B: Backend> {
    /// The solve to reverse.
    pub record: SolveRecord<B>,
    /// ∂L/∂α for the final α, `[batch, n]`.
    pub alpha_adjoint: FloatTensor<B>,
    /// ∂L/∂β for the final β, `[batch, m]`.
    pub beta_adjoint: FloatTensor<B>,
}

impl<B: Backend> BackwardInputs<B> {
    /// The same inputs with every tensor passed through `f` (into or out of a wrapping backend).
    pub fn map<C: Backend>(self, f: impl Fn(FloatTensor<B>) -> FloatTensor<C>) -> BackwardInputs<C> {
        let SolveRecord { cost, log_a, log_b, alpha_history, beta_history, iterations } = self.record;
        BackwardInputs {
            record: SolveRecord { cost: f(cost), log_a: f(log_a), log_b: f(log_b), alpha_history: f(alpha_history), beta_history: f(beta_history), iterations },
            alpha_adjoint: f(self.alpha_adjoint),
            beta_adjoint: f(self.beta_adjoint),
        }
    }
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
    fn sinkhorn_solve(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, config: &SinkhornConfig) -> Potentials<Self> {
        fallback::solve::<Self>(cost, log_a, log_b, config)
    }

    /// Γ = exp(α ⊕ β − C/ε).
    fn sinkhorn_plan(cost: FloatTensor<Self>, alpha: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        fallback::plan::<Self>(cost, alpha, beta, eps)
    }

    /// The gradient with respect to the cost that comes through the iterations the solve ran,
    /// given the adjoints of the final α and β. The plan's explicit dependence on the cost is
    /// added by the caller.
    fn sinkhorn_backward(inputs: BackwardInputs<Self>, config: &SinkhornConfig) -> FloatTensor<Self> {
        fallback::backward::<Self>(inputs, config)
    }

    /// Solve and plan. `Autodiff` overrides this to record the backward pass that `config.grad`
    /// chooses.
    fn sinkhorn_transport(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, config: &SinkhornConfig) -> Transport<Self> {
        let solved = Self::sinkhorn_solve(cost.clone(), log_a, log_b, config);
        let iterations = iterations_run::<Self>(solved.iterations, config);
        let plan = Self::sinkhorn_plan(cost, solved.alpha.clone(), solved.beta.clone(), config.eps);
        Transport { plan, alpha: solved.alpha, beta: solved.beta, iterations }
    }
}

/// The iteration count on the host: read only when an early stop could have ended the run.
pub fn iterations_run<B: Backend>(iterations: FloatTensor<B>, config: &SinkhornConfig) -> usize {
    if config.tolerance > 0.0 {
        let count: f64 = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(iterations)).into_scalar().elem();
        count.round() as usize
    } else {
        config.iterations
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
/// a gradient (to the cost, as `config.grad` chooses); the marginals are constants.
///
/// Panics when `config` is out of range (see [`SinkhornConfig::validate`]).
pub fn sinkhorn_transport<B: SinkhornBackend>(
    cost: Tensor<B, 3>,
    log_a: Tensor<B, 2>,
    log_b: Tensor<B, 2>,
    config: &SinkhornConfig,
) -> TransportTensors<B> {
    if let Err(error) = config.validate() {
        panic!("Sinkhorn: {error}");
    }
    let [batch, n, m] = cost.dims();
    assert_eq!(log_a.dims(), [batch, n], "log_a must be [batch, n] for a [batch, n, m] cost");
    assert_eq!(log_b.dims(), [batch, m], "log_b must be [batch, m] for a [batch, n, m] cost");
    let solved = B::sinkhorn_transport(
        cost.into_primitive().tensor(),
        log_a.into_primitive().tensor(),
        log_b.into_primitive().tensor(),
        config,
    );
    TransportTensors {
        plan: Tensor::from_primitive(TensorPrimitive::Float(solved.plan)),
        alpha: Tensor::from_primitive(TensorPrimitive::Float(solved.alpha)),
        beta: Tensor::from_primitive(TensorPrimitive::Float(solved.beta)),
        iterations: solved.iterations,
    }
}

/// `NdArray` in f32 and f64 (the float primitive carries its own dtype; the loops follow it). The
/// primitive is one type for both, so `map(|tensor| tensor)` moves a struct between them.
#[cfg(feature = "ndarray")]
macro_rules! impl_ndarray {
    ($($float:ty),*) => {$(
        impl SinkhornBackend for burn_ndarray::NdArray<$float> {
            fn sinkhorn_solve(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, config: &SinkhornConfig) -> Potentials<Self> {
                cpu::solve(cost, log_a, log_b, config).map(|tensor| tensor)
            }

            fn sinkhorn_plan(cost: FloatTensor<Self>, alpha: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
                cpu::plan(cost, alpha, beta, eps)
            }

            fn sinkhorn_backward(inputs: BackwardInputs<Self>, config: &SinkhornConfig) -> FloatTensor<Self> {
                cpu::backward(inputs.map(|tensor| tensor), config)
            }
        }
    )*};
}
#[cfg(feature = "ndarray")]
impl_ndarray!(f32, f64);
