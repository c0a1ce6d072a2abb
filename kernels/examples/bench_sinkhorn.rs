//! Times the fused Sinkhorn solver against the tensor-op version on the same backend, in one
//! process: forward alone (solve + plan) and forward plus backward (∂Σ W∘Γ / ∂C; the tensor-op
//! side differentiates through every iteration, the fused side reverses its stored potentials).
//!
//! `cargo run --release -p otclip-kernels --example bench_sinkhorn [-- --backend wgpu --sizes 128,600 --reps 5]`
//! (`--backend wgpu` or `cuda` needs `--features wgpu` / `--features cuda`). Prints a table of
//! medians and ratios, then one JSON line with the same figures. `--check` first compares the
//! fused plan (200 iterations) and gradient (`implicit` against autodiff through the tensor ops,
//! 10 iterations) with the tensor-op reference on the same backend, and exits with an error when
//! they differ by more than 1e-4 and 1e-3 relative (the test suite's bounds): the kernel test
//! of `tools/gpu-check.sh`.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorPrimitive;
use otclip_kernels::fallback;
use otclip_kernels::{sinkhorn_transport, GradMode, SinkhornBackend, SinkhornConfig};

/// The tensor-op backward keeps about this many n×m tensors per half-iteration.
const UNROLL_TENSORS_PER_HALF_STEP: usize = 6;

struct Options {
    backend: String,
    sizes: Vec<usize>,
    reps: usize,
    /// Skip the tensor-op backward where it would hold more than this many bytes.
    unroll_budget: f64,
    /// Compare with the reference before timing.
    check: bool,
}

fn options() -> Options {
    let mut options = Options { backend: "ndarray".into(), sizes: vec![128, 600, 2048, 8192], reps: 5, unroll_budget: 8e9, check: false };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--check" {
            options.check = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => options.backend = value.clone(),
            "--sizes" => options.sizes = value.split(',').map(|s| s.parse().expect("--sizes: numbers")).collect(),
            "--reps" => options.reps = value.parse().expect("--reps: a number"),
            "--unroll-budget-gb" => options.unroll_budget = value.parse::<f64>().expect("--unroll-budget-gb: a number") * 1e9,
            _ => panic!("unknown flag {flag}; expected --backend, --sizes, --reps, --unroll-budget-gb or --check"),
        }
    }
    options
}

/// C = 1 − x·yᵀ between n pseudo-random unit vectors of dimension 64, and a weight W.
fn problem(n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let dim = 64;
    let mut unit = |count: usize| -> Vec<f32> {
        let mut rows = Vec::with_capacity(count * dim);
        for _ in 0..count {
            let v: Vec<f32> = (0..dim).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            rows.extend(v.into_iter().map(|x| x / norm));
        }
        rows
    };
    let (x, y) = (unit(n), unit(n));
    let mut cost = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            cost[i * n + j] = 1.0 - (0..dim).map(|k| x[i * dim + k] * y[j * dim + k]).sum::<f32>();
        }
    }
    let weights = (0..n * n).map(|_| next()).collect();
    (cost, weights)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// Median wall time of `run` in milliseconds, after one warm-up call (shader compilation).
fn time(reps: usize, mut run: impl FnMut() -> f32) -> f64 {
    run();
    median((0..reps).map(|_| {
        let start = Instant::now();
        std::hint::black_box(run());
        start.elapsed().as_secs_f64() * 1e3
    }).collect())
}

fn inputs<B: Backend>(cost: &[f32], n: usize, device: &B::Device) -> (Tensor<B, 3>, Tensor<B, 2>, Tensor<B, 2>) {
    let cost = Tensor::<B, 3>::from_data(TensorData::new(cost.to_vec(), [1, n, n]), device);
    let log_marginal = Tensor::<B, 2>::full([1, n], -(n as f64).ln(), device);
    (cost, log_marginal.clone(), log_marginal)
}

/// The paper's settings: ε = 0.05, τ = 0.5, 200 iterations.
fn config(grad: GradMode) -> SinkhornConfig {
    SinkhornConfig::new().with_grad(grad)
}

/// The tensor-op solve and plan, on any backend (tracked when the backend is `Autodiff`).
fn tensor_op_plan<B: Backend>(cost: Tensor<B, 3>, log_a: Tensor<B, 2>, log_b: Tensor<B, 2>) -> Tensor<B, 3> {
    let prim = |t: Tensor<B, 2>| t.into_primitive().tensor();
    // Autodiff follows every tensor op: the `unroll` gradient.
    let config = config(GradMode::Unroll);
    let solved = fallback::solve::<B>(cost.clone().into_primitive().tensor(), prim(log_a), prim(log_b), &config);
    let plan = fallback::plan::<B>(cost.into_primitive().tensor(), solved.alpha, solved.beta, config.eps);
    Tensor::from_primitive(TensorPrimitive::Float(plan))
}

/// max |x − y| / max |y|.
fn relative_difference<B: Backend>(x: Tensor<B, 3>, y: Tensor<B, 3>) -> f64 {
    let scale: f64 = y.clone().abs().max().into_scalar().elem();
    let diff: f64 = (x - y).abs().max().into_scalar().elem();
    diff / scale.max(f64::MIN_POSITIVE)
}

/// The fused plan and gradient against the tensor-op reference at size `n`; panics past the bounds.
fn check<B: AutodiffBackend + SinkhornBackend>(n: usize, device: &B::Device)
where
    B::InnerBackend: SinkhornBackend,
{
    let (cost, weights) = problem(n);
    let (c, a, b) = inputs::<B>(&cost, n, device);
    let weights = Tensor::<B, 3>::from_data(TensorData::new(weights, [1, n, n]), device);
    let fused = sinkhorn_transport(c.clone().inner(), a.clone().inner(), b.clone().inner(), &config(GradMode::Detach)).plan;
    let plan_error = relative_difference(fused, tensor_op_plan(c.clone().inner(), a.clone().inner(), b.clone().inner()));
    let iterations = 10;
    let gradient = |fused: bool| {
        let cost = c.clone().require_grad();
        let plan = if fused {
            sinkhorn_transport(cost.clone(), a.clone(), b.clone(), &config(GradMode::Implicit).with_iterations(iterations)).plan
        } else {
            let prim = |t: Tensor<B, 2>| t.into_primitive().tensor();
            let config = config(GradMode::Unroll).with_iterations(iterations);
            let solved = fallback::solve::<B>(cost.clone().into_primitive().tensor(), prim(a.clone()), prim(b.clone()), &config);
            Tensor::from_primitive(TensorPrimitive::Float(fallback::plan::<B>(cost.clone().into_primitive().tensor(), solved.alpha, solved.beta, config.eps)))
        };
        cost.grad(&(plan * weights.clone()).sum().backward()).expect("the cost is tracked")
    };
    let grad_error = relative_difference(gradient(true), gradient(false));
    println!("check n = {n}: plan differs from the reference by {plan_error:.1e}, gradient by {grad_error:.1e} (relative)");
    assert!(plan_error <= 1e-4 && grad_error <= 1e-3, "n = {n}: the fused path disagrees with the tensor-op reference");
}

#[derive(serde::Serialize)]
struct Row {
    n: usize,
    fused_forward_ms: f64,
    reference_forward_ms: f64,
    forward_speedup: f64,
    fused_forward_backward_ms: f64,
    reference_forward_backward_ms: Option<f64>,
    forward_backward_speedup: Option<f64>,
}

fn bench<B: AutodiffBackend + SinkhornBackend>(options: &Options, device: &B::Device) -> Vec<Row>
where
    B::InnerBackend: SinkhornBackend,
{
    if options.check {
        for &n in &options.sizes {
            check::<B>(n, device);
        }
    }
    let mut rows = Vec::new();
    for &n in &options.sizes {
        let (cost, weights) = problem(n);
        let weights_t = Tensor::<B, 3>::from_data(TensorData::new(weights.clone(), [1, n, n]), device);
        let (c, a, b) = inputs::<B::InnerBackend>(&cost, n, &weights_t.clone().inner().device());
        let fused_forward = time(options.reps, || {
            sinkhorn_transport(c.clone(), a.clone(), b.clone(), &config(GradMode::Detach)).plan.sum().into_scalar().elem()
        });
        let reference_forward = time(options.reps, || tensor_op_plan(c.clone(), a.clone(), b.clone()).sum().into_scalar().elem());
        let (c, a, b) = inputs::<B>(&cost, n, device);
        let fused_backward = time(options.reps, || {
            let cost = c.clone().require_grad();
            let plan = sinkhorn_transport(cost.clone(), a.clone(), b.clone(), &config(GradMode::Implicit)).plan;
            let grads = (plan * weights_t.clone()).sum().backward();
            cost.grad(&grads).unwrap().sum().into_scalar().elem()
        });
        let unroll_bytes = (2 * config(GradMode::Unroll).iterations * UNROLL_TENSORS_PER_HALF_STEP * n * n * 4) as f64;
        let reference_backward = (unroll_bytes <= options.unroll_budget).then(|| {
            time(options.reps, || {
                let cost = c.clone().require_grad();
                let plan = tensor_op_plan(cost.clone(), a.clone(), b.clone());
                let grads = (plan * weights_t.clone()).sum().backward();
                cost.grad(&grads).unwrap().sum().into_scalar().elem()
            })
        });
        if reference_backward.is_none() {
            eprintln!("n = {n}: the tensor-op backward would hold about {:.0} GB; not run", unroll_bytes / 1e9);
        }
        rows.push(Row {
            n,
            fused_forward_ms: fused_forward,
            reference_forward_ms: reference_forward,
            forward_speedup: reference_forward / fused_forward,
            fused_forward_backward_ms: fused_backward,
            reference_forward_backward_ms: reference_backward,
            forward_backward_speedup: reference_backward.map(|r| r / fused_backward),
        });
        eprintln!("n = {n} done");
    }
    rows
}

fn main() {
    let options = options();
    let rows = match options.backend.as_str() {
        "ndarray" => bench::<Autodiff<burn::backend::NdArray<f32>>>(&options, &Default::default()),
        #[cfg(feature = "wgpu")]
        "wgpu" => bench::<Autodiff<burn::backend::Wgpu>>(&options, &Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => bench::<Autodiff<burn::backend::Cuda>>(&options, &Default::default()),
        other => panic!("backend {other} is not compiled in (features: wgpu, cuda)"),
    };
    let SinkhornConfig { eps, tau, iterations, .. } = config(GradMode::Implicit);
    let tau = tau.expect("the benchmark solves unbalanced problems");
    println!("Sinkhorn, unbalanced (τ = {tau}), ε = {eps}, {iterations} iterations, backend {}; medians of {} runs", options.backend, options.reps);
    println!("{:>6} | {:>12} {:>12} {:>7} | {:>14} {:>14} {:>7}", "n", "fused fwd ms", "tensor fwd", "ratio", "fused fwd+bwd", "tensor fwd+bwd", "ratio");
    for row in &rows {
        let reference = row.reference_forward_backward_ms.map_or("—".to_string(), |v| format!("{v:.1}"));
        let ratio = row.forward_backward_speedup.map_or("—".to_string(), |v| format!("{v:.1}×"));
        println!(
            "{:>6} | {:>12.1} {:>12.1} {:>6.1}× | {:>14.1} {:>14} {:>7}",
            row.n, row.fused_forward_ms, row.reference_forward_ms, row.forward_speedup, row.fused_forward_backward_ms, reference, ratio
        );
    }
    let json = serde_json::json!({
        "benchmark": "sinkhorn", "backend": options.backend, "eps": eps, "tau": tau, "iters": iterations,
        "reps": options.reps, "results": rows,
    });
    println!("{json}");
}
