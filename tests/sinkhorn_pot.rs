//! The tensor-op Sinkhorn against POT, through fixtures made by tools/gen_sinkhorn_fixtures.py:
//! ≤ 1e-5 relative in f64 (ndarray), ≤ 1e-4 in f32 (ndarray, and wgpu where an adapter exists).

mod common;

use burn::backend::NdArray;
use burn::prelude::*;
use common::{cost_from_npy, fixture, max_rel_diff, read_json, to_f64};
use otclip::loss::{sinkhorn, GradMode, SinkhornConfig};

struct Case {
    name: String,
    eps: f64,
    tau: Option<f64>,
    cost: Vec<f64>,
    n: usize,
    m: usize,
    reference: Vec<f64>,
}

/// Every case with its reference plan. Where POT's stabilised solver breaks down (ε = 0.01,
/// flagged in the manifest) the reference is the plan of the exact log-domain iteration, rebuilt
/// from the fixture's potentials.
fn cases() -> Vec<Case> {
    let manifest = read_json("sinkhorn/manifest.json");
    let dir = fixture("sinkhorn");
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let file = |key: &str| dir.join(case["files"][key].as_str().unwrap());
            let (cost, n, m) = cost_from_npy(&file("x"), &file("y"));
            let eps = case["eps"].as_f64().unwrap();
            let tau = case["tau"].as_f64();
            let reference = if case["pot_plan_matches_logdomain"].as_bool().unwrap() {
                otclip::npy::read_matrix(&file("plan")).unwrap().data
            } else {
                let f = otclip::npy::read(&file("f")).unwrap().data;
                let g = otclip::npy::read(&file("g")).unwrap().data;
                let log_ab = -((n * m) as f64).ln();
                (0..n * m).map(|k| ((f[k / m] + g[k % m] - (cost[k] - eps * log_ab)) / eps).exp()).collect()
            };
            Case { name: case["name"].as_str().unwrap().to_string(), eps, tau, cost, n, m, reference }
        })
        .collect()
}

fn solve<B: Backend>(case: &Case, device: &B::Device) -> Vec<f64> {
    let cost = otclip::f64_tensor::<B, 3>(&case.cost, [1, case.n, case.m], device);
    let config = SinkhornConfig::new().with_eps(case.eps).with_tau(case.tau).with_iters(200).with_grad(GradMode::Detach);
    let solved = sinkhorn(cost, None, None, &config);
    assert_eq!(solved.iterations, 200);
    to_f64(solved.plan)
}

fn check_all<B: Backend>(label: &str, tolerance: f64, device: &B::Device) {
    let cases = cases();
    assert_eq!(cases.len(), 15, "the manifest lists 15 problems");
    for case in &cases {
        let error = max_rel_diff(&solve::<B>(case, device), &case.reference);
        eprintln!("{label} {:<20} max rel err {error:.2e}", case.name);
        assert!(error <= tolerance, "{label} {}: relative error {error:e} > {tolerance:e}", case.name);
    }
}

#[test]
fn ndarray_f64_matches_pot() {
    check_all::<NdArray<f64>>("ndarray f64", 1e-5, &Default::default());
}

#[test]
fn ndarray_f32_matches_pot() {
    check_all::<NdArray<f32>>("ndarray f32", 1e-4, &Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_f32_matches_pot() {
    if common::wgpu_available("the wgpu POT-parity check") {
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
    let config = SinkhornConfig::new().with_iters(200).with_grad(GradMode::Detach);
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
    let config = SinkhornConfig::new().with_iters(200).with_tol(1e-6).with_grad(GradMode::Detach);
    let solved = sinkhorn(cost, None, None, &config);
    assert!(solved.iterations < 200 && solved.iterations % 10 == 0, "{} iterations", solved.iterations);
    assert!(max_rel_diff(&to_f64(solved.plan.clone()), &case.reference) < 1e-4);
    assert!(solved.marginal_error().is_finite());
}
