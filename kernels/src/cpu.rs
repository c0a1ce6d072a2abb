//! The Sinkhorn ops for `NdArray`: tight loops over rows, parallel with rayon.
//!
//! Both half-steps are row-wise log-sum-exps: α reduces over the rows of C, β over the rows of
//! a transposed copy of C made once per solve, so every inner loop reads memory in order. The
//! forward pass factors exp(−C/ε) out once per solve, so that a row costs a dot product (see
//! [`half_step`]), with an exact log-domain fallback for rows that underflow. The backward pass
//! walks the stored iterations in reverse in the log domain, two vectorisable passes per row,
//! with an `exp` built from a range reduction and a polynomial (relative error about 2e-7 in f32).

use burn::tensor::{DType, TensorData};
use burn_ndarray::{NdArray, NdArrayTensor};
use rayon::prelude::*;

use crate::fallback::tensor;
use crate::{BackwardInputs, Potential, Potentials, SinkhornConfig, SolveRecord};

/// The float types the loops run in: the tensor's own (f32 normally, f64 where asked for).
trait Real: Copy + Send + Sync + PartialOrd + std::fmt::Debug + 'static
where
    Self: std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self>,
{
    const ZERO: Self;
    /// Sums below this may have lost their largest terms to underflow.
    const TINY: Self;
    fn of(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp_fast(self) -> Self;
    fn ln(self) -> Self;
    fn into_data(values: Vec<Self>, shape: Vec<usize>) -> TensorData;
    fn from_data(data: TensorData) -> Vec<Self>;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const TINY: Self = 1e-30;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    /// e^x = 2^n · e^r with n = round(x / ln 2) and |r| ≤ ln 2 / 2; e^r by a degree-6 polynomial.
    #[inline(always)]
    fn exp_fast(self) -> Self {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
        let x = if self < -87.0 { -87.0 } else if self > 88.0 { 88.0 } else { self };
        let n = (x * LOG2E + ROUND) - ROUND;
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
        let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
        let value = p * scale;
        if self < -87.0 { 0.0 } else { value }
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn into_data(values: Vec<Self>, shape: Vec<usize>) -> TensorData {
        TensorData::new(values, shape)
    }
    fn from_data(data: TensorData) -> Vec<Self> {
        data.convert::<f32>().into_vec().expect("f32 data")
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const TINY: Self = 1e-290;
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn into_data(values: Vec<Self>, shape: Vec<usize>) -> TensorData {
        TensorData::new(values, shape)
    }
    fn from_data(data: TensorData) -> Vec<Self> {
        data.convert::<f64>().into_vec().expect("f64 data")
    }
}

/// The float primitive is the same type for every `NdArray<E, I, Q>`.
type Nd = NdArray<f32>;

/// The tensor's values in their stored type (f32 or f64).
fn read<const D: usize>(t: NdArrayTensor) -> TensorData {
    tensor::<Nd, D>(t).into_data()
}

fn values<T: Real>(data: &TensorData) -> Vec<T> {
    T::from_data(data.clone())
}

fn write<T: Real>(values: Vec<T>, shape: Vec<usize>) -> NdArrayTensor {
    NdArrayTensor::from_data(T::into_data(values, shape))
}

/// `[rows, cols]` → `[cols, rows]` for each problem of the batch.
fn transpose<T: Real>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_mut(rows * cols).zip(x.par_chunks(rows * cols)).for_each(|(out, x)| {
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = x[r * cols + c];
            }
        }
    });
    out
}

/// Lanes of the unrolled loops: eight independent accumulators let the compiler vectorise a
/// reduction that it may not reorder itself.
const LANES: usize = 8;

/// Σ_k a_k b_k.
#[inline]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = chunks_a.remainder().iter().zip(chunks_b.remainder()).fold(T::ZERO, |s, (&x, &y)| s + x * y);
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..LANES {
            acc[lane] = acc[lane] + x[lane] * y[lane];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

/// LSE_k(input_k − C_rk/ε) for one row, exactly, in two passes.
#[inline]
fn row_lse<T: Real>(input: &[T], row: &[T], neg_inv_eps: T) -> T {
    let mut max = T::of(f64::MIN);
    for (&p, &c) in input.iter().zip(row) {
        let x = p + c * neg_inv_eps;
        max = if x > max { x } else { max };
    }
    let mut sum = T::ZERO;
    for (&p, &c) in input.iter().zip(row) {
        sum = sum + (p + c * neg_inv_eps - max).exp_fast();
    }
    max + sum.ln()
}

// ANCHOR: cpu_half_step
#[allow(clippy::too_many_arguments)]
fn half_step<T: Real>(x: &[T], kernel: &[T], input: &[T], log_out: &[T], out: &mut [T], rows: usize, cols: usize, config: &SinkhornConfig) {
    let neg_inv_eps = T::of(-1.0 / config.eps);
    let phi = T::of(config.phi());
    let problems = out.len() / rows;
    let shifted: Vec<(T, Vec<T>)> = (0..problems)
        .map(|problem| {
            let input = &input[problem * cols..(problem + 1) * cols];
            let max = input.iter().fold(T::of(f64::MIN), |m, &v| if v > m { v } else { m });
            (max, input.iter().map(|&v| (v - max).exp_fast()).collect())
        })
        .collect();
    out.par_iter_mut().enumerate().with_min_len(16).for_each(|(index, out)| {
        let problem = index / rows;
        let (max, scaled) = &shifted[problem];
        let kernel_row = &kernel[index * cols..(index + 1) * cols];
        let dot = dot(scaled, kernel_row);
        let lse = if dot > T::TINY {
            *max + dot.ln()
        } else {
            row_lse(&input[problem * cols..(problem + 1) * cols], &x[index * cols..(index + 1) * cols], neg_inv_eps)
        };
        *out = log_out[index] - phi * lse;
    });
}
// ANCHOR_END: cpu_half_step

/// K = exp(−X/ε), element-wise.
fn gibbs_kernel<T: Real>(x: &[T], eps: f64) -> Vec<T> {
    let neg_inv_eps = T::of(-1.0 / eps);
    let mut kernel = vec![T::ZERO; x.len()];
    kernel.par_chunks_mut(4096).zip(x.par_chunks(4096)).for_each(|(k, x)| {
        for (k, &x) in k.iter_mut().zip(x) {
            *k = (x * neg_inv_eps).exp_fast();
        }
    });
    kernel
}

fn solve_typed<T: Real>(cost: &TensorData, log_a: &TensorData, log_b: &TensorData, config: &SinkhornConfig) -> Potentials<Nd> {
    let [batch, n, m] = [cost.shape[0], cost.shape[1], cost.shape[2]];
    let c = values::<T>(cost);
    let c_t = transpose(&c, n, m);
    let (k, k_t) = (gibbs_kernel(&c, config.eps), gibbs_kernel(&c_t, config.eps));
    let (la, lb) = (values::<T>(log_a), values::<T>(log_b));
    let (mut alpha, mut beta) = (la.clone(), lb.clone());
    let (mut alphas, mut betas) = (alpha.clone(), beta.clone());
    let mut run = 0;
    for step in config.half_steps(config.iterations) {
        match step.writes {
            Potential::Alpha => half_step(&c, &k, &beta, &la, &mut alpha, n, m, config),
            Potential::Beta => half_step(&c_t, &k_t, &alpha, &lb, &mut beta, m, n, config),
        }
        if step.completes_iteration() {
            alphas.extend_from_slice(&alpha);
            betas.extend_from_slice(&beta);
            run = step.iteration;
            if config.checks_convergence_after(run) {
                let previous = &alphas[(run - 1) * batch * n..run * batch * n];
                let change = alpha.iter().zip(previous).map(|(a, p)| (*a - *p).to_f64().abs()).fold(0.0, f64::max);
                if change < config.tolerance {
                    break;
                }
            }
        }
    }
    alphas.resize((config.iterations + 1) * batch * n, T::ZERO);
    betas.resize((config.iterations + 1) * batch * m, T::ZERO);
    Potentials {
        alpha: write(alpha, vec![batch, n]),
        beta: write(beta, vec![batch, m]),
        alpha_history: write(alphas, vec![config.iterations + 1, batch, n]),
        beta_history: write(betas, vec![config.iterations + 1, batch, m]),
        iterations: write(vec![T::of(run as f64)], vec![1]),
    }
}

pub fn solve(
    cost: NdArrayTensor,
    log_a: NdArrayTensor,
    log_b: NdArrayTensor,
    config: &SinkhornConfig,
) -> Potentials<Nd> {
    let cost = read::<3>(cost);
    let (log_a, log_b) = (read::<2>(log_a), read::<2>(log_b));
    match cost.dtype {
        DType::F64 => solve_typed::<f64>(&cost, &log_a, &log_b, config),
        _ => solve_typed::<f32>(&cost, &log_a, &log_b, config),
    }
}

fn plan_typed<T: Real>(cost: &TensorData, alpha: &TensorData, beta: &TensorData, eps: f64) -> NdArrayTensor {
    let [batch, n, m] = [cost.shape[0], cost.shape[1], cost.shape[2]];
    let (mut plan, alpha, beta) = (values::<T>(cost), values::<T>(alpha), values::<T>(beta));
    let neg_inv_eps = T::of(-1.0 / eps);
    plan.par_chunks_mut(m).enumerate().for_each(|(index, row)| {
        let beta = &beta[(index / n) * m..(index / n + 1) * m];
        for (value, &b) in row.iter_mut().zip(beta) {
            *value = (alpha[index] + b + *value * neg_inv_eps).exp_fast();
        }
    });
    write(plan, vec![batch, n, m])
}

pub fn plan(
    cost: NdArrayTensor,
    alpha: NdArrayTensor,
    beta: NdArrayTensor,
    eps: f64,
) -> NdArrayTensor {
    let cost = read::<3>(cost);
    let (alpha, beta) = (read::<2>(alpha), read::<2>(beta));
    match cost.dtype {
        DType::F64 => plan_typed::<f64>(&cost, &alpha, &beta, eps),
        _ => plan_typed::<f32>(&cost, &alpha, &beta, eps),
    }
}

/// The reverse of one half-step whose output `out` (indexed by k, length `cols`) reduced over
/// the rows' input `input` (indexed by r): for every row r of `x` (`[batch, rows, cols]`, the
/// layout whose rows index the input), returns −φ Σ_k w_rk into `input_adjoint` (added to what
/// is there) and adds φ/ε · w_rk to `grad` (same layout as `x`), where
/// w_rk = out_adjoint_k · exp(input_r − X_rk/ε − L_k) and L_k = (log_out_k − out_k)/φ.
#[allow(clippy::too_many_arguments)]
fn reverse_half_step<T: Real>(
    x: &[T],
    input: &[T],
    output: &[T],
    log_out: &[T],
    out_adjoint: &[T],
    input_adjoint: &mut [T],
    grad: &mut [T],
    rows: usize,
    cols: usize,
    config: &SinkhornConfig,
) {
    let neg_inv_eps = T::of(-1.0 / config.eps);
    let inv_phi = T::of(1.0 / config.phi());
    let (phi, grad_scale) = (T::of(config.phi()), T::of(config.phi() / config.eps));
    let lse: Vec<T> = log_out.iter().zip(output).map(|(&l, &o)| (l - o) * inv_phi).collect();
    input_adjoint.par_iter_mut().zip(grad.par_chunks_mut(cols)).enumerate().with_min_len(16).for_each(|(index, (adjoint, grad_row))| {
        let problem = index / rows;
        let row = &x[index * cols..(index + 1) * cols];
        let lse = &lse[problem * cols..(problem + 1) * cols];
        let out_adjoint = &out_adjoint[problem * cols..(problem + 1) * cols];
        let shift = input[index];
        let mut acc = [T::ZERO; LANES];
        let full = cols / LANES * LANES;
        let weight = |j: usize| out_adjoint[j] * (shift + row[j] * neg_inv_eps - lse[j]).exp_fast();
        for k in (0..full).step_by(LANES) {
            let (adj, x, l, g) = (&out_adjoint[k..k + LANES], &row[k..k + LANES], &lse[k..k + LANES], &mut grad_row[k..k + LANES]);
            for lane in 0..LANES {
                let w = adj[lane] * (shift + x[lane] * neg_inv_eps - l[lane]).exp_fast();
                acc[lane] = acc[lane] + w;
                g[lane] = g[lane] + grad_scale * w;
            }
        }
        for j in full..cols {
            let w = weight(j);
            acc[0] = acc[0] + w;
            grad_row[j] = grad_row[j] + grad_scale * w;
        }
        *adjoint = *adjoint - phi * acc.iter().fold(T::ZERO, |s, &v| s + v);
    });
}

/// The backward pass in the float type `T`; `cost` is the record's cost, read once for its type.
fn backward_typed<T: Real>(cost: &TensorData, inputs: BackwardInputs<Nd>, config: &SinkhornConfig) -> NdArrayTensor {
    let BackwardInputs { record: SolveRecord { log_a, log_b, alpha_history, beta_history, iterations, .. }, alpha_adjoint, beta_adjoint } = inputs;
    let [batch, n, m] = [cost.shape[0], cost.shape[1], cost.shape[2]];
    let c = values::<T>(cost);
    let c_t = transpose(&c, n, m);
    let (la, lb) = (values::<T>(&read::<2>(log_a)), values::<T>(&read::<2>(log_b)));
    let (alphas, betas) = (values::<T>(&read::<3>(alpha_history)), values::<T>(&read::<3>(beta_history)));
    let alpha_at = |t: usize| &alphas[t * batch * n..(t + 1) * batch * n];
    let beta_at = |t: usize| &betas[t * batch * m..(t + 1) * batch * m];
    let (mut alpha_bar, mut beta_bar) = (values::<T>(&read::<2>(alpha_adjoint)), values::<T>(&read::<2>(beta_adjoint)));
    // ∂L/∂C in both layouts: rows of C for β reversals, rows of Cᵀ for α reversals.
    let (mut grad, mut grad_t) = (vec![T::ZERO; c.len()], vec![T::ZERO; c.len()]);
    // Each step's input gains what flowed into its output; the output's adjoint is then spent.
    for step in config.half_steps(iterations).rev() {
        let (t, s) = (step.iteration, step.reads_slot);
        match step.writes {
            // α_t = A(β_s) reduces the rows of C; its reverse runs over the rows of Cᵀ, which index β.
            Potential::Alpha => {
                reverse_half_step(&c_t, beta_at(s), alpha_at(t), &la, &alpha_bar, &mut beta_bar, &mut grad_t, m, n, config);
                alpha_bar.fill(T::ZERO);
            }
            Potential::Beta => {
                reverse_half_step(&c, alpha_at(s), beta_at(t), &lb, &beta_bar, &mut alpha_bar, &mut grad, n, m, config);
                beta_bar.fill(T::ZERO);
            }
        }
    }
    let grad_t = transpose(&grad_t, m, n);
    grad.par_iter_mut().zip(grad_t.par_iter()).for_each(|(g, h)| *g = *g + *h);
    write(grad, vec![batch, n, m])
}

pub fn backward(inputs: BackwardInputs<Nd>, config: &SinkhornConfig) -> NdArrayTensor {
    let cost = read::<3>(inputs.record.cost.clone());
    match cost.dtype {
        DType::F64 => backward_typed::<f64>(&cost, inputs, config),
        _ => backward_typed::<f32>(&cost, inputs, config),
    }
}
