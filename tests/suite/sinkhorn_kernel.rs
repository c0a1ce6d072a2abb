//! The fused Sinkhorn solver (`otclip-kernels`) against the tensor-op reference, on ndarray (the
//! rayon loop) and on wgpu (the CubeCL kernels, both bare and under burn's fusion):
//! plans to ≤ 1e-4 relative and gradients, `implicit` vs `unroll`, to ≤ 1e-3 relative (f32).

use crate::common;

// f64 checks, and the bare CubeCL backend against an f64 reference, are the f64 binary's
// `sinkhorn_kernel_f64`: one process, one float type per ndarray device.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::AutodiffBackend;
use crate::common::{max_rel_diff, sinkhorn_config as config, sinkhorn_plan_and_grad as plan_and_grad, sinkhorn_problem as problem};
use otclip::kernels::SinkhornBackend;
use otclip::loss::{solve, GradMode, SolverPath};

const SIZES: [usize; 5] = [1, 7, 64, 600, 1000];
const EPSILONS: [f64; 2] = [0.05, 0.01];

/// Every size and ε, unbalanced and balanced: the fused plan against the reference plan
/// (200 iterations) and the fused `implicit` gradient against the reference `unroll` one.
/// Unrolled autodiff keeps every iteration's n×m intermediates, so at n ≥ 600 the gradient
/// check runs 10 iterations (200 would hold about 10 GB at n = 1000, and take minutes on
/// lavapipe; the fused path holds O(n) per iteration, which is the point of it).
fn check_backend<B: AutodiffBackend + SinkhornBackend>(name: &str, device: &B::Device, plan_tol: f64, grad_tol: f64) {
    for (index, &n) in SIZES.iter().enumerate() {
        for &eps in &EPSILONS {
            for tau in [Some(0.5), None] {
                let shape = [1, n, n];
                let (cost, weights) = problem(1, n, n, 11 + index as u64);
                let label = format!("{name} n={n} eps={eps} tau={tau:?}");
                // burn keys the default float type by device, so an f64 test in the same process
                // would silently turn this one into f64: check that it really runs in f32.
                assert_eq!(otclip::f64_tensor::<B, 1>(&[0.0], [1], device).dtype(), burn::tensor::DType::F32, "{label}: not f32");
                let fused = solve(otclip::f64_tensor::<B, 3>(&cost, shape, device), None, None, &config(eps, tau, 200, GradMode::Detach, SolverPath::Fused));
                let reference = solve(otclip::f64_tensor::<B, 3>(&cost, shape, device), None, None, &config(eps, tau, 200, GradMode::Detach, SolverPath::Reference));
                let plan_error = max_rel_diff(&common::to_f64(fused.plan), &common::to_f64(reference.plan));
                assert!(plan_error <= plan_tol, "{label}: plan differs by {plan_error:e} (relative)");

                let iters = if n >= 600 { 10 } else { 200 };
                let (_, implicit) = plan_and_grad::<B>(&cost, &weights, shape, &config(eps, tau, iters, GradMode::Implicit, SolverPath::Fused), device);
                let (_, unroll) = plan_and_grad::<B>(&cost, &weights, shape, &config(eps, tau, iters, GradMode::Unroll, SolverPath::Reference), device);
                let grad_error = max_rel_diff(&implicit, &unroll);
                assert!(grad_error <= grad_tol, "{label}: implicit gradient differs from unroll by {grad_error:e} (relative)");
                eprintln!("{label}: plan {plan_error:.1e}, gradient {grad_error:.1e}");
            }
        }
    }
}

#[test]
fn ndarray_fused_matches_reference() {
    check_backend::<Autodiff<NdArray<f32>>>("ndarray f32", &Default::default(), 1e-4, 1e-3);
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use super::*;
    use burn::backend::wgpu::WgpuDevice;

    /// `otclip::backend::WgpuBackend` is `Fusion<CubeBackend>`: the ops go through the fusion
    /// stream as custom operations.
    #[test]
    fn wgpu_fused_matches_reference() {
        if !common::wgpu_available("the fused Sinkhorn kernel on wgpu") {
            return;
        }
        check_backend::<Autodiff<otclip::backend::WgpuBackend>>("wgpu+fusion", &WgpuDevice::DefaultDevice, 1e-4, 1e-3);
    }
}
