//! Helpers shared by the integration tests: fixture paths, `.npy` matrices, error measures.
#![allow(dead_code)]

pub mod grad_check;
pub mod http;
pub mod pot;

use std::path::{Path, PathBuf};

use burn::prelude::*;

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

/// Runs the ignored test `name` of this test binary alone, in a child process, and returns its
/// output; fails when it fails or does not run. For checks that seed burn's random generator,
/// which is one per process and which the tests running beside them draw from too.
pub fn run_alone(name: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--test-threads=1", "--nocapture"])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{name}, run alone, failed or did not run:\n{text}");
    text
}

/// A valid sample with bytes replaced, deleted or inserted at random places (for the fuzz tests).
pub fn mutate(sample: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = sample.to_vec();
    for &(at, op, byte) in edits {
        let at = at % (bytes.len() + 1);
        match op % 3 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

/// Runs the `otclip` binary: success, stdout, stderr.
pub fn otclip(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otclip")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn read_json(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(path)).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// max |a − b| / max |b|.
pub fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f64, f64::max) / scale
}

pub fn to_f64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec().unwrap()
}

pub fn matrix<B: Backend>(rows: &serde_json::Value, device: &B::Device) -> Tensor<B, 2> {
    let rows = rows.as_array().unwrap();
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap())).collect();
    otclip::f64_tensor::<B, 2>(&flat, [rows.len(), flat.len() / rows.len()], device)
}

pub fn flat(rows: &serde_json::Value) -> Vec<f64> {
    rows.as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap())).collect()
}

/// The cost C = 1 − x·yᵀ on the host, in f64, with its shape.
pub fn cost_from_npy(x: &Path, y: &Path) -> (Vec<f64>, usize, usize) {
    let x = otclip::npy::read_matrix(x).unwrap();
    let y = otclip::npy::read_matrix(y).unwrap();
    let (n, m, d) = (x.shape[0], y.shape[0], x.shape[1]);
    let mut cost = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            cost[i * m + j] = 1.0 - (0..d).map(|k| x.data[i * d + k] * y.data[j * d + k]).sum::<f64>();
        }
    }
    (cost, n, m)
}

/// Whether a wgpu adapter exists; prints plainly when not, and fails under OTCLIP_REQUIRE_WGPU=1.
#[cfg(feature = "wgpu")]
pub fn wgpu_available(what: &str) -> bool {
    use otclip::backend::WgpuBackend;
    let probe = std::panic::catch_unwind(|| {
        let t = Tensor::<WgpuBackend, 1>::from_floats([1.0, 2.0], &burn::backend::wgpu::WgpuDevice::DefaultDevice);
        t.sum().into_scalar()
    });
    if probe.is_ok() {
        return true;
    }
    let message = format!("no wgpu adapter (install mesa-vulkan-drivers for lavapipe): {what} did NOT run");
    if std::env::var("OTCLIP_REQUIRE_WGPU").as_deref() == Ok("1") {
        panic!("{message}, and OTCLIP_REQUIRE_WGPU=1 requires it");
    }
    eprintln!("SKIPPED: {message}");
    false
}

/// A batch of costs C = 1 − x·yᵀ between random unit vectors (the SIGROT cost), and a random
/// upstream gradient for the plan.
pub fn sinkhorn_problem(batch: usize, n: usize, m: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dim = 16;
    let mut unit = |count: usize| -> Vec<Vec<f64>> {
        (0..count)
            .map(|_| {
                let v: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    };
    let mut cost = Vec::with_capacity(batch * n * m);
    for _ in 0..batch {
        let (x, y) = (unit(n), unit(m));
        for xi in &x {
            for yj in &y {
                cost.push(1.0 - xi.iter().zip(yj).map(|(a, b)| a * b).sum::<f64>());
            }
        }
    }
    let weights = (0..batch * n * m).map(|_| rng.random_range(-1.0..1.0)).collect();
    (cost, weights)
}

pub fn sinkhorn_config(eps: f64, tau: Option<f64>, iters: usize, grad: otclip::loss::GradMode, solver: otclip::loss::SolverPath) -> otclip::loss::SinkhornConfig {
    otclip::loss::SinkhornConfig::new().with_eps(eps).with_tau(tau).with_iterations(iters).with_grad(grad).with_solver(solver)
}

/// The plan, and ∂(Σ W∘Γ)/∂C.
pub fn sinkhorn_plan_and_grad<B: burn::tensor::backend::AutodiffBackend + otclip::kernels::SinkhornBackend>(
    cost: &[f64],
    weights: &[f64],
    shape: [usize; 3],
    config: &otclip::loss::SinkhornConfig,
    device: &B::Device,
) -> (Vec<f64>, Vec<f64>) {
    let cost = otclip::f64_tensor::<B, 3>(cost, shape, device).require_grad();
    let weights = otclip::f64_tensor::<B, 3>(weights, shape, device);
    let solved = otclip::loss::solve(cost.clone(), None, None, config);
    let plan = to_f64(solved.plan.clone());
    let grads = (solved.plan * weights).sum().backward();
    let grad = cost.grad(&grads).expect("the cost has a gradient");
    (plan, grad.into_data().convert::<f64>().into_vec().unwrap())
}

/// The step rows of a run's `metrics.jsonl`: (step, loss).
pub fn step_losses(run: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|row| row.get("loss").is_some())
        .map(|row| (row["step"].as_u64().unwrap(), row["loss"].as_f64().unwrap()))
        .collect()
}

/// Every float parameter of a run's `last` checkpoint, loaded on `B`, flattened in the model's
/// order.
pub fn run_parameters<B: Backend>(run: &Path) -> Vec<f64> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Flat(Vec<f64>);
    impl<B: Backend> ModuleVisitor<B> for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.extend(param.val().into_data().convert::<f64>().iter::<f64>());
        }
    }
    let loaded = otclip::train::load_run::<B>(run, "last", &Default::default()).unwrap();
    let mut flat = Flat(Vec::new());
    loaded.model.visit(&mut flat);
    flat.0
}

/// Free loopback ports (bound and released; the caller binds them again at once).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Waits for `child` at most `limit`, killing it after; its success and what it printed on its
/// piped stdout and stderr, read as it comes so that a chatty child never blocks on a full pipe.
pub fn finish_child(mut child: std::process::Child, limit: std::time::Duration) -> (bool, String) {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < limit {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let timed_out = child.try_wait().unwrap().is_none();
    if timed_out {
        child.kill().unwrap();
    }
    let status = child.wait().unwrap();
    let text = stdout.join().unwrap() + &stderr.join().unwrap();
    (!timed_out && status.success(), if timed_out { format!("(killed after {limit:?})\n{text}") } else { text })
}
