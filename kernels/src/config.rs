//! The settings of a Sinkhorn solve. One type serves the `[loss.sinkhorn]` table of a training
//! config, `otclip ot solve`, the tensor-op reference of `otclip::loss::sinkhorn` and every
//! backend of this crate.

use serde::{Deserialize, Serialize};

use crate::schedule::{HalfSteps, Potential};

/// What flows back from the plan into the cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GradMode {
    /// The exact gradient of the plan after the iterations that ran: a reverse pass over the
    /// potentials the fused solver stored (O(n + m) per iteration). It equals `unroll`.
    #[default]
    Implicit,
    /// Autodiff through every iteration of the tensor-op reference (what the paper did); memory
    /// grows with n·m·iterations. `otclip::loss::solve` runs the reference for it; the fused
    /// path, called directly, gives the same gradient by its reverse pass.
    Unroll,
    /// The potentials are held constant (Danskin): exact for the OT value, an approximation for
    /// a loss on the plan itself.
    Envelope,
    /// No gradient: the plan is a constant target (the UOT baseline).
    Detach,
}

/// Which solver runs. `otclip::loss::solve` reads it; this crate's kernels are the fused path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SolverPath {
    /// The backend's fused kernels (this crate).
    #[default]
    Fused,
    /// The tensor-op reference of `otclip::loss::sinkhorn`.
    Reference,
}

/// The settings of a Sinkhorn solve. [`SinkhornConfig::new`] gives the paper's: ε = 0.05,
/// τ = 0.5, 200 iterations, no early stop, the `implicit` gradient on the fused solver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkhornConfig {
    /// Entropic regularisation ε; finite and at least [`Self::MIN_EPS`].
    pub eps: f64,
    /// The KL marginal penalty τ of unbalanced OT, positive and finite; absent for balanced OT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    /// The most iterations to run; at least 1.
    pub iterations: usize,
    /// Stop once max |Δf|/ε over an iteration falls below this, checked every 10 iterations on
    /// the whole batch, as POT does; 0 runs every iteration.
    pub tolerance: f64,
    /// What flows back from the plan into the cost.
    pub grad: GradMode,
    /// `fused` (the default) or `reference`.
    #[serde(default)]
    pub solver: SolverPath,
}

impl burn::config::Config for SinkhornConfig {}

impl Default for SinkhornConfig {
    fn default() -> Self {
        Self { eps: 0.05, tau: Some(0.5), iterations: 200, tolerance: 0.0, grad: GradMode::Implicit, solver: SolverPath::Fused }
    }
}

/// A [`SinkhornConfig`] value out of range.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum SinkhornConfigError {
    #[error("eps = {0}: the entropic regularisation must be finite and at least 1e-8 (below it cost/eps exceeds the float precision of the potentials)")]
    Eps(f64),
    #[error("tau = {0}: the marginal penalty must be positive and finite; leave tau out for balanced OT")]
    Tau(f64),
    #[error("iterations = 0: the solver needs at least one iteration")]
    Iterations,
    #[error("tolerance = {0}: must be 0 (no early stop) or positive")]
    Tolerance(f64),
}

impl SinkhornConfig {
    /// The smallest ε accepted.
    pub const MIN_EPS: f64 = 1e-8;

    /// The paper's settings (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// `None` for balanced OT.
    pub fn with_tau(mut self, tau: Option<f64>) -> Self {
        self.tau = tau;
        self
    }

    pub fn with_iterations(mut self, iterations: usize) -> Self {
        self.iterations = iterations;
        self
    }

    pub fn with_tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    pub fn with_grad(mut self, grad: GradMode) -> Self {
        self.grad = grad;
        self
    }

    pub fn with_solver(mut self, solver: SolverPath) -> Self {
        self.solver = solver;
        self
    }

    /// Checks that every value is in range.
    pub fn validate(&self) -> Result<(), SinkhornConfigError> {
        if !(self.eps >= Self::MIN_EPS && self.eps.is_finite()) {
            return Err(SinkhornConfigError::Eps(self.eps));
        }
        if let Some(tau) = self.tau {
            if !(tau > 0.0 && tau.is_finite()) {
                return Err(SinkhornConfigError::Tau(tau));
            }
        }
        if self.iterations == 0 {
            return Err(SinkhornConfigError::Iterations);
        }
        if !(self.tolerance >= 0.0) {
            return Err(SinkhornConfigError::Tolerance(self.tolerance));
        }
        Ok(())
    }

    /// φ = τ/(τ+ε) for unbalanced OT, 1 for balanced OT.
    pub fn phi(&self) -> f64 {
        match self.tau {
            Some(tau) => tau / (tau + self.eps),
            None => 1.0,
        }
    }

    /// The potential each iteration updates first: α when unbalanced (POT's
    /// `sinkhorn_unbalanced` updates u first), β when balanced (POT's `sinkhorn_log` updates v
    /// first). With the other order, 200-iteration plans differ by up to 1e-2 at ε = 0.01.
    pub fn first_update(&self) -> Potential {
        if self.phi() < 1.0 {
            Potential::Alpha
        } else {
            Potential::Beta
        }
    }

    /// The half-steps of `iterations` iterations, in the order they run; `.rev()` is the order
    /// of the reverse pass.
    pub fn half_steps(&self, iterations: usize) -> HalfSteps {
        HalfSteps::new(self.first_update(), iterations)
    }

    /// Whether iteration `iteration` (counted from 1) ends with a convergence check.
    pub fn checks_convergence_after(&self, iteration: usize) -> bool {
        self.tolerance > 0.0 && iteration % 10 == 0
    }
}
