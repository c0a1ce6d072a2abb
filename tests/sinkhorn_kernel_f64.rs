//! The fused Sinkhorn solver against the tensor-op reference in f64 on ndarray, where the two
//! agree to rounding (this catches an algorithmic slip that f32 noise could hide), the early
//! stop, and `otclip ot solve` through both paths.

mod common;

use burn::backend::{Autodiff, NdArray};
use common::{max_rel_diff, sinkhorn_config as config, sinkhorn_plan_and_grad as plan_and_grad, sinkhorn_problem as problem};
use otclip::loss::{solve, GradMode, SinkhornConfig, SolverPath};

/// In f64 the two paths agree to rounding: this catches an algorithmic slip that f32 noise
/// could hide. Also a rectangular batch of three problems, and `envelope`.
#[test]
fn ndarray_f64_rectangular_batch_and_envelope() {
    type B = Autodiff<NdArray<f64>>;
    let shape = [3, 7, 11];
    let (cost, weights) = problem(3, 7, 11, 5);
    for tau in [Some(0.5), None] {
        for grad in [GradMode::Implicit, GradMode::Envelope] {
            let reference_grad = if grad == GradMode::Implicit { GradMode::Unroll } else { grad };
            let (plan, fused) = plan_and_grad::<B>(&cost, &weights, shape, &config(0.05, tau, 100, grad, SolverPath::Fused), &Default::default());
            let (reference_plan, reference) = plan_and_grad::<B>(&cost, &weights, shape, &config(0.05, tau, 100, reference_grad, SolverPath::Reference), &Default::default());
            assert!(max_rel_diff(&plan, &reference_plan) < 1e-10, "tau={tau:?} {grad:?}: plan");
            let error = max_rel_diff(&fused, &reference);
            assert!(error < 1e-9, "tau={tau:?} {grad:?}: gradient differs by {error:e}");
        }
    }
}

/// With a tolerance both paths stop after the same iteration, with the same plan.
#[test]
fn early_stop_matches_reference() {
    type B = NdArray<f64>;
    let device = Default::default();
    let (cost, _) = problem(2, 40, 30, 9);
    let run = |solver| {
        let config = SinkhornConfig::new().with_iters(500).with_tol(1e-6).with_grad(GradMode::Detach).with_solver(solver);
        solve(otclip::f64_tensor::<B, 3>(&cost, [2, 40, 30], &device), None, None, &config)
    };
    let (fused, reference) = (run(SolverPath::Fused), run(SolverPath::Reference));
    assert!(reference.iterations < 500, "the reference should stop early");
    assert_eq!(fused.iterations, reference.iterations);
    assert!(max_rel_diff(&common::to_f64(fused.plan), &common::to_f64(reference.plan)) < 1e-10);
}

