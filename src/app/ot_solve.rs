//! `otclip ot solve`: solve one entropic OT problem from `.npy` files, for inspecting plans.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::prelude::*;
use serde::Serialize;

use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::loss::{solve, SinkhornConfig, SolverPath};
use otclip_kernels::SinkhornConfigError;
use otclip_kernels::SinkhornBackend;
use crate::npy;
use crate::tensor::f64_tensor;

/// One OT problem: the cost and marginal files, the solver settings and the plan's path.
pub struct SolveTask {
    pub cost: PathBuf,
    pub a: Option<PathBuf>,
    pub b: Option<PathBuf>,
    pub config: SinkhornConfig,
    pub out: PathBuf,
}

/// The one-line JSON summary `ot solve` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SolveSummary {
    pub n: usize,
    pub m: usize,
    pub eps: f64,
    pub tau: Option<f64>,
    pub iterations: usize,
    pub marginal_error: f64,
    pub seconds: f64,
    pub backend: String,
    /// `fused` or `reference`.
    pub solver: SolverPath,
    pub out: PathBuf,
}

/// The marginal error, relative to a uniform weight 1/max(n, m), above which `ot solve` warns
/// that a balanced plan has not converged (an unbalanced one leaves its marginals by design).
const UNCONVERGED: f64 = 0.1;

/// max − min of the costs.
fn span(cost: &[f64]) -> f64 {
    let (low, high) = cost.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &c| (l.min(c), h.max(c)));
    high - low
}

fn log_marginal<B: Backend>(path: &Option<PathBuf>, len: usize, device: &B::Device) -> Result<Option<Tensor<B, 2>>> {
    let Some(path) = path else { return Ok(None) };
    let array = npy::read(path)?;
    if array.data.len() != len || array.shape.len() != 1 {
        bail!("{}: expected a vector of length {len}, found shape {:?}", path.display(), array.shape);
    }
    if array.data.iter().any(|&w| !(w > 0.0) || !w.is_finite()) {
        bail!("{}: marginal weights must be positive and finite", path.display());
    }
    let logs: Vec<f64> = array.data.iter().map(|w| w.ln()).collect();
    Ok(Some(f64_tensor::<B, 2>(&logs, [1, len], device)))
}

impl InferenceTask for SolveTask {
    type Output = SolveSummary;

    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<SolveSummary> {
        if let Err(error) = self.config.validate() {
            let flag = match error {
                SinkhornConfigError::Eps(_) => "--eps",
                SinkhornConfigError::Tau(_) => "--tau",
                SinkhornConfigError::Iterations => "--iters",
                SinkhornConfigError::Tolerance(_) => "--tol",
            };
            bail!("ot solve {flag}: {error}");
        }
        let cost = npy::read_matrix(&self.cost)?;
        let (n, m) = (cost.shape[0], cost.shape[1]);
        if n == 0 || m == 0 || cost.data.iter().any(|c| !c.is_finite()) {
            bail!("{}: the cost must be non-empty and finite", self.cost.display());
        }
        let started = Instant::now();
        let tensor = f64_tensor::<B, 3>(&cost.data, [1, n, m], &device);
        let a = log_marginal::<B>(&self.a, n, &device)?;
        let b = log_marginal::<B>(&self.b, m, &device)?;
        let solved = solve(tensor, a, b, &self.config);
        let plan: Vec<f64> = solved.plan.clone().mul_scalar(n as f64).into_data().convert::<f64>().into_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let seconds = started.elapsed().as_secs_f64();
        if plan.iter().any(|p| !p.is_finite()) {
            bail!("{}: the plan came out non-finite at eps = {}; try a larger --eps (the costs span {:.3e})", self.cost.display(), self.config.eps, span(&cost.data));
        }
        npy::write_f64(&self.out, &[n, m], &plan)?;
        let marginal_error = solved.marginal_error();
        if self.config.tau.is_none() && !(marginal_error * n.max(m) as f64 <= UNCONVERGED) {
            eprintln!(
                "warning: the plan is far from its marginals (error {marginal_error:.3e} after {} iterations); raise --iters or --eps",
                solved.iterations
            );
        }
        Ok(SolveSummary {
            n,
            m,
            eps: self.config.eps,
            tau: self.config.tau,
            iterations: solved.iterations,
            marginal_error,
            seconds,
            solver: self.config.solver,
            backend: std::any::type_name::<B>().rsplit("::").next().unwrap_or("?").to_string(),
            out: self.out,
        })
    }
}

impl SolveTask {
    /// `f64`: double precision on ndarray.
    pub fn run_on(self, spec: DeviceSpec, f64: bool) -> Result<SolveSummary> {
        dispatch_inference(spec, f64, self)
    }
}
