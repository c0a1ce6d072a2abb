//! The fused Sinkhorn solver against the tensor-op reference in f64 on ndarray, where the two
//! agree to rounding (this catches an algorithmic slip that f32 noise could hide), the early
//! stop, and `otclip ot solve` through both paths.

use crate::common;

use burn::backend::{Autodiff, NdArray};
use crate::common::{max_rel_diff, sinkhorn_config as config, sinkhorn_plan_and_grad as plan_and_grad, sinkhorn_problem as problem};
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
        let config = SinkhornConfig::new().with_iterations(500).with_tolerance(1e-6).with_grad(GradMode::Detach).with_solver(solver);
        solve(otclip::f64_tensor::<B, 3>(&cost, [2, 40, 30], &device), None, None, &config)
    };
    let (fused, reference) = (run(SolverPath::Fused), run(SolverPath::Reference));
    assert!(reference.iterations < 500, "the reference should stop early");
    assert_eq!(fused.iterations, reference.iterations);
    assert!(max_rel_diff(&common::to_f64(fused.plan), &common::to_f64(reference.plan)) < 1e-10);
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use super::*;
    use burn::backend::wgpu::{CubeBackend, WgpuDevice, WgpuRuntime};

    /// The CubeCL backend without burn's fusion wrapper.
    type Cube = CubeBackend<WgpuRuntime, f32, i32, u32>;

    /// The bare CubeCL backend, rectangular and batched, against the same solve on ndarray.
    #[test]
    fn wgpu_cube_backend_rectangular_batch() {
        if !common::wgpu_available("the bare CubeCL Sinkhorn kernel") {
            return;
        }
        let device = WgpuDevice::DefaultDevice;
        let shape = [3, 37, 530];
        let (cost, weights) = problem(3, 37, 530, 21);
        for tau in [Some(0.5), None] {
            let fused = config(0.05, tau, 100, GradMode::Implicit, SolverPath::Fused);
            let reference = config(0.05, tau, 100, GradMode::Unroll, SolverPath::Reference);
            let (plan, grad) = plan_and_grad::<Autodiff<Cube>>(&cost, &weights, shape, &fused, &device);
            let (reference_plan, reference_grad) = plan_and_grad::<Autodiff<NdArray<f64>>>(&cost, &weights, shape, &reference, &Default::default());
            let plan_error = max_rel_diff(&plan, &reference_plan);
            let grad_error = max_rel_diff(&grad, &reference_grad);
            assert!(plan_error <= 1e-4, "tau={tau:?}: plan differs by {plan_error:e}");
            assert!(grad_error <= 1e-3, "tau={tau:?}: gradient differs by {grad_error:e}");
        }
    }
}
