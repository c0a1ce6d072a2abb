//! Autodiff for the fused solver: a custom backward for the plan.
//!
//! The saved state is the cost and the plan (inputs and output, O(n·m) once) plus α and β after
//! every iteration (O(n + m) per iteration), never the O(n·m) intermediates of each iteration.
//! With Γ̄ the plan's gradient and W = Γ̄ ∘ Γ:
//! - the explicit term is ∂L/∂C = −W/ε (this alone is `envelope`);
//! - `implicit` (and `unroll`, the same gradient) adds what flows through the iterations, from
//!   ᾱ = Σ_j W_ij and β̄ = Σ_i W_ij, by the backend's reverse pass
//!   ([`SinkhornBackend::sinkhorn_backward`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;

use crate::fallback::{primitive, tensor};
use crate::{iterations_run, BackwardInputs, GradMode, Potentials, SinkhornBackend, SinkhornConfig, SolveRecord, Transport};

#[derive(Debug, Clone)]
struct PlanState<B: Backend> {
    plan: FloatTensor<B>,
    /// Present for `implicit` and `unroll`: what the reverse pass over the iterations needs.
    record: Option<SolveRecord<B>>,
    config: SinkhornConfig,
}

#[derive(Debug)]
struct PlanBackward;

impl<B: SinkhornBackend> Backward<B, 1> for PlanBackward {
    type State = PlanState<B>;

// ANCHOR: backward
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [cost_node] = ops.parents;
        let plan_grad = grads.consume::<B>(&ops.node);
        let Some(cost_node) = cost_node else { return };
        let state = ops.state;
        let weighted = tensor::<B, 3>(plan_grad) * tensor::<B, 3>(state.plan);
        let [batch, n, m] = weighted.dims();
        let mut cost_grad = weighted.clone().div_scalar(-state.config.eps);
        if let Some(record) = state.record {
            let alpha_adjoint = primitive(weighted.clone().sum_dim(2).reshape([batch, n]));
            let beta_adjoint = primitive(weighted.sum_dim(1).reshape([batch, m]));
            let through = B::sinkhorn_backward(BackwardInputs { record, alpha_adjoint, beta_adjoint }, &state.config);
            cost_grad = cost_grad + tensor::<B, 3>(through);
        }
        grads.register::<B>(cost_node.id, primitive(cost_grad));
    }
// ANCHOR_END: backward
}

impl<B: SinkhornBackend, C: CheckpointStrategy> SinkhornBackend for Autodiff<B, C> {
    fn sinkhorn_solve(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, config: &SinkhornConfig) -> Potentials<Self> {
        B::sinkhorn_solve(Self::inner(cost), Self::inner(log_a), Self::inner(log_b), config).map(Self::from_inner)
    }

    fn sinkhorn_plan(cost: FloatTensor<Self>, alpha: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        Self::from_inner(B::sinkhorn_plan(Self::inner(cost), Self::inner(alpha), Self::inner(beta), eps))
    }

    fn sinkhorn_backward(inputs: BackwardInputs<Self>, config: &SinkhornConfig) -> FloatTensor<Self> {
        Self::from_inner(B::sinkhorn_backward(inputs.map(Self::inner), config))
    }

    fn sinkhorn_transport(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, config: &SinkhornConfig) -> Transport<Self> {
        let cost_node = cost.node.clone();
        let inner_cost = Self::inner(cost);
        let (log_a, log_b) = (Self::inner(log_a), Self::inner(log_b));
        let solved = B::sinkhorn_solve(inner_cost.clone(), log_a.clone(), log_b.clone(), config);
        let plan = B::sinkhorn_plan(inner_cost.clone(), solved.alpha.clone(), solved.beta.clone(), config.eps);
        let count = iterations_run::<B>(solved.iterations, config);
        let tracked = match config.grad {
            GradMode::Detach => None,
            GradMode::Envelope | GradMode::Implicit | GradMode::Unroll => Some(PlanBackward.prepare::<C>([cost_node]).compute_bound().stateful()),
        };
        let plan = match tracked {
            Some(OpsKind::Tracked(prep)) => {
                let record = matches!(config.grad, GradMode::Implicit | GradMode::Unroll).then(|| SolveRecord {
                    cost: inner_cost,
                    log_a,
                    log_b,
                    alpha_history: solved.alpha_history,
                    beta_history: solved.beta_history,
                    iterations: count,
                });
                prep.finish(PlanState { plan: plan.clone(), record, config: *config }, plan)
            }
            Some(OpsKind::UnTracked(prep)) => prep.finish(plan),
            None => Self::from_inner(plan),
        };
        Transport { plan, alpha: Self::from_inner(solved.alpha), beta: Self::from_inner(solved.beta), iterations: count }
    }
}
