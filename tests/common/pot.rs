//! The POT fixtures of tools/gen_sinkhorn_fixtures.py and the check of the tensor-op Sinkhorn
//! against them, shared by the f32 and f64 test binaries.

use burn::prelude::*;
use otclip::loss::{sinkhorn, GradMode, SinkhornConfig};

use super::{cost_from_npy, fixture, max_rel_diff, read_json, to_f64};

pub struct Case {
    pub name: String,
    pub eps: f64,
    pub tau: Option<f64>,
    pub cost: Vec<f64>,
    pub n: usize,
    pub m: usize,
    pub reference: Vec<f64>,
}

/// Every case with its reference plan. Where POT's stabilised solver breaks down (ε = 0.01,
/// flagged in the manifest) the reference is the plan of the exact log-domain iteration, rebuilt
/// from the fixture's potentials.
pub fn cases() -> Vec<Case> {
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

pub fn solve<B: Backend>(case: &Case, device: &B::Device) -> Vec<f64> {
    let cost = otclip::f64_tensor::<B, 3>(&case.cost, [1, case.n, case.m], device);
    let config = SinkhornConfig::new().with_eps(case.eps).with_tau(case.tau).with_iterations(200).with_grad(GradMode::Detach);
    let solved = sinkhorn(cost, None, None, &config);
    assert_eq!(solved.iterations, 200);
    to_f64(solved.plan)
}

pub fn check_all<B: Backend>(label: &str, tolerance: f64, device: &B::Device) {
    let cases = cases();
    assert_eq!(cases.len(), 15, "the manifest lists 15 problems");
    for case in &cases {
        let error = max_rel_diff(&solve::<B>(case, device), &case.reference);
        eprintln!("{label} {:<20} max rel err {error:.2e}", case.name);
        assert!(error <= tolerance, "{label} {}: relative error {error:e} > {tolerance:e}", case.name);
    }
}
