//! The tensor-op Sinkhorn against POT, through fixtures made by tools/gen_sinkhorn_fixtures.py:
//! ≤ 1e-5 relative in f64 (ndarray), ≤ 1e-4 in f32 on wgpu (ndarray in f32: the f32 suite's
//! `sinkhorn_pot_f32`).

use burn::backend::NdArray;
use crate::common::pot::{cases, check_all, solve, Case};
use crate::common::{max_rel_diff, to_f64};
use otclip::loss::{sinkhorn, GradMode, SinkhornConfig};

#[test]
fn ndarray_f64_matches_pot() {
    check_all::<NdArray<f64>>("ndarray f64", 1e-5, &Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_f32_matches_pot() {
    if crate::common::wgpu_available("the wgpu POT-parity check") {
        check_all::<otclip::backend::WgpuBackend>("wgpu f32", 1e-4, &burn::backend::wgpu::WgpuDevice::DefaultDevice);
    }
}

#[test]
fn batched_problems_solve_independently() {
    let cases = cases();
    let (a, b) = (&cases[1], &cases[9]);
    assert_eq!((a.n, a.m, b.n, b.m), (7, 7, 7, 7));
    assert_eq!((a.eps, a.tau), (0.05, Some(0.5)));
    let device = Default::default();
    let cost: Vec<f64> = a.cost.iter().chain(&b.cost).copied().collect();
    let cost = otclip::f64_tensor::<NdArray<f64>, 3>(&cost, [2, 7, 7], &device);
    // Case 9 has ε = 0.1, so solve both at ε = 0.05 and compare with single solves.
    let config = SinkhornConfig::new().with_iterations(200).with_grad(GradMode::Detach);
    let batched = to_f64(sinkhorn(cost, None, None, &config).plan);
    for (index, case) in [a, b].iter().enumerate() {
        let single = Case { eps: 0.05, tau: Some(0.5), reference: vec![], name: String::new(), cost: case.cost.clone(), n: 7, m: 7 };
        let alone = solve::<NdArray<f64>>(&single, &device);
        assert!(max_rel_diff(&batched[index * 49..(index + 1) * 49], &alone) < 1e-12);
    }
}

#[test]
fn early_stop_reports_iterations() {
    let case = &cases()[2];
    let device = Default::default();
    let cost = otclip::f64_tensor::<NdArray<f64>, 3>(&case.cost, [1, case.n, case.m], &device);
    let config = SinkhornConfig::new().with_iterations(200).with_tolerance(1e-6).with_grad(GradMode::Detach);
    let solved = sinkhorn(cost, None, None, &config);
    assert!(solved.iterations < 200 && solved.iterations % 10 == 0, "{} iterations", solved.iterations);
    assert!(max_rel_diff(&to_f64(solved.plan.clone()), &case.reference) < 1e-4);
    assert!(solved.marginal_error().is_finite());
}
