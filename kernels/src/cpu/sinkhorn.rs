//! The Sinkhorn ops for `NdArray`, in the scaling domain.
//!
//! K = exp(−C/ε) is computed once per solve, so that a half-step's log-sum-exps cost one
//! matrix–vector product with K: α reduces the rows of K ([`alpha_step`]), β its columns
//! ([`beta_step`]). Each pool thread owns a block of K's columns in both half-steps, so K is read
//! from that core's cache, not from memory. Rows (or columns) whose sum underflows are recomputed
//! exactly in the log domain. The backward pass walks the stored iterations in reverse: each
//! half-step costs one matrix–vector product with K, and the cost gradient, one outer product per
//! half-step multiplied by K, is a single matrix product at the end (see [`reverse_half_step`]).

use std::ops::Range;

use burn::tensor::{DType, TensorMetadata};
use burn_ndarray::NdArrayTensor;
use rayon::prelude::*;

use super::matmul::{gemm, Threads, View};
use super::real::{axpy, dims, dot, rows_per_task, values, write, Nd, Real, LANES};
use crate::{BackwardInputs, Potential, Potentials, SinkhornConfig, SolveRecord};

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


/// LSE_k(input_k − X_k/ε) over the entries X_k = x[start + k·stride] (a row of C, or a column),
/// exactly, in two passes.
fn strided_lse<T: Real>(input: &[T], x: &[T], start: usize, stride: usize, neg_inv_eps: T) -> T {
    let term = |k: usize, p: T| p + x[start + k * stride] * neg_inv_eps;
    let max = input.iter().enumerate().fold(T::of(f64::MIN), |m, (k, &p)| if term(k, p) > m { term(k, p) } else { m });
    let sum = input.iter().enumerate().fold(T::ZERO, |s, (k, &p)| s + (term(k, p) - max).exp_fast());
    max + sum.ln()
}

/// For each problem, the largest input M and the scalings exp(input − M), in (0, 1]. The forward
/// and backward passes compute them alike, so that the backward reverses the very same numbers.
fn scaled_inputs<T: Real>(input: &[T], problems: usize, cols: usize) -> Vec<(T, Vec<T>)> {
    (0..problems)
        .map(|problem| {
            let input = &input[problem * cols..(problem + 1) * cols];
            let max = input.iter().fold(T::of(f64::MIN), |m, &v| if v > m { v } else { m });
            (max, input.iter().map(|&v| (v - max).exp_fast()).collect())
        })
        .collect()
}

/// The column blocks of K, one per pool thread. Both half-steps split K by these blocks, so a
/// thread reads the same block every half-step and it stays in that core's cache.
fn column_blocks(m: usize) -> Vec<Range<usize>> {
    let width = m.div_ceil(rayon::current_num_threads().max(1)).next_multiple_of(LANES);
    (0..m).step_by(width.max(LANES)).map(|start| start..(start + width).min(m)).collect()
}

// ANCHOR: cpu_half_step
/// α_i ← log a_i − φ (M + ln Σ_j K_ij e_j), e = exp(β − M): each thread takes a column block of K
/// and returns its partial dot products for every row; a row whose sum underflows (below TINY)
/// is recomputed exactly from C.
#[allow(clippy::too_many_arguments)]
fn alpha_step<T: Real>(c: &[T], k: &[T], beta: &[T], log_a: &[T], alpha: &mut [T], n: usize, m: usize, blocks: &[Range<usize>], config: &SinkhornConfig) {
    let problems = alpha.len() / n;
    let shifted = scaled_inputs(beta, problems, m);
    let partials: Vec<Vec<T>> = blocks
        .par_iter()
        .map(|cols| {
            let mut partial = Vec::with_capacity(problems * n);
            for (problem, (_, scaled)) in shifted.iter().enumerate() {
                let scaled = &scaled[cols.clone()];
                partial.extend((0..n).map(|i| dot(&k[(problem * n + i) * m..][cols.clone()], scaled)));
            }
            partial
        })
        .collect();
    let (phi, neg_inv_eps) = (T::of(config.phi()), T::of(-1.0 / config.eps));
    for (index, alpha) in alpha.iter_mut().enumerate() {
        let problem = index / n;
        let sum = partials.iter().fold(T::ZERO, |s, partial| s + partial[index]);
        let lse = if sum > T::TINY {
            shifted[problem].0 + sum.ln_fast()
        } else {
            strided_lse(&beta[problem * m..(problem + 1) * m], c, index * m, 1, neg_inv_eps)
        };
        *alpha = log_a[index] - phi * lse;
    }
}

/// β_j ← log b_j − φ (M + ln Σ_i e_i K_ij), e = exp(α − M): each thread accumulates the rows of
/// its column block of K, scaled by e_i; a column whose sum underflows is recomputed exactly.
#[allow(clippy::too_many_arguments)]
fn beta_step<T: Real>(c: &[T], k: &[T], alpha: &[T], log_b: &[T], beta: &mut [T], n: usize, m: usize, blocks: &[Range<usize>], config: &SinkhornConfig) {
    let problems = beta.len() / m;
    let shifted = scaled_inputs(alpha, problems, n);
    let sums: Vec<Vec<T>> = blocks
        .par_iter()
        .map(|cols| {
            let mut sums = vec![T::ZERO; problems * cols.len()];
            for (problem, ((_, scaled), sums)) in shifted.iter().zip(sums.chunks_mut(cols.len())).enumerate() {
                for (i, &e) in scaled.iter().enumerate().filter(|(_, &e)| e > T::ZERO) {
                    axpy(e, &k[(problem * n + i) * m..][cols.clone()], sums);
                }
            }
            sums
        })
        .collect();
    let (phi, neg_inv_eps) = (T::of(config.phi()), T::of(-1.0 / config.eps));
    for (cols, sums) in blocks.iter().zip(&sums) {
        for problem in 0..problems {
            for (offset, j) in cols.clone().enumerate() {
                let sum = sums[problem * cols.len() + offset];
                let lse = if sum > T::TINY {
                    shifted[problem].0 + sum.ln_fast()
                } else {
                    strided_lse(&alpha[problem * n..(problem + 1) * n], c, problem * n * m + j, m, neg_inv_eps)
                };
                beta[problem * m + j] = log_b[problem * m + j] - phi * lse;
            }
        }
    }
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

fn solve_typed<T: Real>(cost: &NdArrayTensor, log_a: &NdArrayTensor, log_b: &NdArrayTensor, config: &SinkhornConfig) -> Potentials<Nd> {
    let [batch, n, m] = dims(cost)[..] else { panic!("the cost must be [batch, n, m]") };
    let c = values::<T>(cost);
    let k = gibbs_kernel(&c, config.eps);
    let blocks = column_blocks(m);
    let (la, lb) = (values::<T>(log_a), values::<T>(log_b));
    let (mut alpha, mut beta) = (la.clone(), lb.clone());
    let (mut alphas, mut betas) = (alpha.clone(), beta.clone());
    let mut run = 0;
    for step in config.half_steps(config.iterations) {
        match step.writes {
            Potential::Alpha => alpha_step(&c, &k, &beta, &la, &mut alpha, n, m, &blocks, config),
            Potential::Beta => beta_step(&c, &k, &alpha, &lb, &mut beta, n, m, &blocks, config),
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
    // On a pool thread, each half-step's parallel loop starts without waking the caller's thread.
    rayon::scope(|_| match cost.dtype() {
        DType::F64 => solve_typed::<f64>(&cost, &log_a, &log_b, config),
        _ => solve_typed::<f32>(&cost, &log_a, &log_b, config),
    })
}

fn plan_typed<T: Real>(cost: &NdArrayTensor, alpha: &NdArrayTensor, beta: &NdArrayTensor, eps: f64) -> NdArrayTensor {
    let [batch, n, m] = dims(cost)[..] else { panic!("the cost must be [batch, n, m]") };
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
    match cost.dtype() {
        DType::F64 => plan_typed::<f64>(&cost, &alpha, &beta, eps),
        _ => plan_typed::<f32>(&cost, &alpha, &beta, eps),
    }
}

/// What the reverse of one half-step leaves for the cost gradient: the step's w_ij = v_i K_ij s_j
/// (see [`reverse_half_step`]), as the factors v (`[batch, rows]`, zero where a row was done
/// exactly) and s (`[batch, cols]`).
struct OuterFactors<T> {
    v: Vec<T>,
    s: Vec<T>,
}

/// The reverse of one half-step out_i = log_out_i − φ L_i, L_i = LSE_j(input_j − X_ij/ε), where X
/// (`x`, `[batch, rows, cols]`) is the step's layout of the cost and `kernel_t` holds Kᵀ =
/// exp(−Xᵀ/ε) (`[batch, cols, rows]`). With ō the output's adjoint, the step's weights are
///
/// w_ij = ō_i exp(input_j − X_ij/ε − L_i) = v_i K_ij s_j,  s_j = exp(input_j − M),  v_i = ō_i exp(M − L_i),
///
/// where M is the problem's largest input and L_i is read back from the stored output. The input's
/// adjoint loses φ Σ_i w_ij = φ s_j (Kᵀ v)_j, one matrix–vector product, and ∂L/∂X gains φ/ε · w,
/// returned as its factors. Rows whose forward sum underflowed (e^{L_i − M} ≤ 2·TINY) are reversed
/// exactly in the log domain instead, into `exact_grad` (X's layout).
#[allow(clippy::too_many_arguments)]
fn reverse_half_step<T: Real>(
    x: &[T],
    kernel_t: &[T],
    input: &[T],
    output: &[T],
    log_out: &[T],
    out_adjoint: &[T],
    input_adjoint: &mut [T],
    exact_grad: &mut Option<Vec<T>>,
    rows: usize,
    cols: usize,
    config: &SinkhornConfig,
) -> OuterFactors<T> {
    let neg_inv_eps = T::of(-1.0 / config.eps);
    let (phi, inv_phi, grad_scale) = (T::of(config.phi()), T::of(1.0 / config.phi()), T::of(config.phi() / config.eps));
    let problems = output.len() / rows;
    let shifted = scaled_inputs(input, problems, cols);
    let underflow = T::of(2.0 * T::TINY.to_f64()).ln();
    let lse = |index: usize| (log_out[index] - output[index]) * inv_phi;
    let mut exact_rows = Vec::new();
    let v: Vec<T> = (0..output.len())
        .map(|index| {
            let from_max = lse(index) - shifted[index / rows].0;
            if from_max > underflow {
                out_adjoint[index] * (T::ZERO - from_max).exp_fast()
            } else {
                exact_rows.push(index);
                T::ZERO
            }
        })
        .collect();
    let task = rows_per_task(input_adjoint.len());
    input_adjoint.par_chunks_mut(task).enumerate().for_each(|(chunk, adjoints)| {
        for (offset, adjoint) in adjoints.iter_mut().enumerate() {
            let index = chunk * task + offset;
            let problem = index / cols;
            let kernel_row = &kernel_t[index * rows..(index + 1) * rows];
            let through = dot(kernel_row, &v[problem * rows..(problem + 1) * rows]);
            *adjoint = *adjoint - phi * shifted[problem].1[index % cols] * through;
        }
    });
    for index in exact_rows {
        let adjoint = out_adjoint[index];
        if adjoint.to_f64() == 0.0 {
            continue;
        }
        let (problem, lse) = (index / rows, lse(index));
        let grad = exact_grad.get_or_insert_with(|| vec![T::ZERO; x.len()]);
        let (row, grad_row) = (&x[index * cols..(index + 1) * cols], &mut grad[index * cols..(index + 1) * cols]);
        let (input, input_adjoint) = (&input[problem * cols..(problem + 1) * cols], &mut input_adjoint[problem * cols..(problem + 1) * cols]);
        for j in 0..cols {
            let w = adjoint * (input[j] + row[j] * neg_inv_eps - lse).exp_fast();
            input_adjoint[j] = input_adjoint[j] - phi * w;
            grad_row[j] = grad_row[j] + grad_scale * w;
        }
    }
    let s = shifted.into_iter().flat_map(|(_, scaled)| scaled).collect();
    OuterFactors { v, s }
}

/// Σ_t left_t right_tᵀ for each problem, one matrix product: `left` holds the vectors of length n
/// (`[steps, batch, n]`), `right` those of length m (`[steps, batch, m]`); the result is
/// `[batch, n, m]`.
fn sum_of_outer_products<T: Real>(left: &[T], right: &[T], batch: usize, n: usize, m: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; batch * n * m];
    let steps = left.len() / (batch * n).max(1);
    if steps == 0 {
        return out;
    }
    for problem in 0..batch {
        // A[i, t] = left[t·batch·n + problem·n + i], B[t, j] = right[t·batch·m + problem·m + j].
        let a = View { offset: problem * n, rows: n, cols: steps, row_stride: 1, col_stride: batch * n };
        let b = View::rows(problem * m, steps, m, batch * m);
        gemm(T::of(1.0), left, a, right, b, T::ZERO, &mut out, View::rows(problem * n * m, n, m, m), Threads::Pool);
    }
    out
}

/// The backward pass in the float type `T`, the cost's.
fn backward_typed<T: Real>(inputs: BackwardInputs<Nd>, config: &SinkhornConfig) -> NdArrayTensor {
    let BackwardInputs { record: SolveRecord { cost, log_a, log_b, alpha_history, beta_history, iterations }, alpha_adjoint, beta_adjoint } = inputs;
    let [batch, n, m] = dims(&cost)[..] else { panic!("the cost must be [batch, n, m]") };
    let c = values::<T>(&cost);
    let c_t = transpose(&c, n, m);
    let (k, k_t) = (gibbs_kernel(&c, config.eps), gibbs_kernel(&c_t, config.eps));
    let (la, lb) = (values::<T>(&log_a), values::<T>(&log_b));
    let (alphas, betas) = (values::<T>(&alpha_history), values::<T>(&beta_history));
    let alpha_at = |t: usize| &alphas[t * batch * n..(t + 1) * batch * n];
    let beta_at = |t: usize| &betas[t * batch * m..(t + 1) * batch * m];
    let (mut alpha_bar, mut beta_bar) = (values::<T>(&alpha_adjoint), values::<T>(&beta_adjoint));
    // The outer-product factors, n-long and m-long, of every reversed half-step.
    let (mut left, mut right) = (Vec::with_capacity(2 * iterations * batch * n), Vec::with_capacity(2 * iterations * batch * m));
    // Rows reversed exactly: in C's layout (α steps) and in Cᵀ's (β steps).
    let (mut exact, mut exact_t) = (None, None);
    // Each step's input gains what flowed into its output; the output's adjoint is then spent.
    for step in config.half_steps(iterations).rev() {
        let (t, s) = (step.iteration, step.reads_slot);
        match step.writes {
            // α_t = A(β_s) reduces the rows of C (K); its input's adjoint needs Kᵀ.
            Potential::Alpha => {
                let factors = reverse_half_step(&c, &k_t, beta_at(s), alpha_at(t), &la, &alpha_bar, &mut beta_bar, &mut exact, n, m, config);
                left.extend_from_slice(&factors.v);
                right.extend_from_slice(&factors.s);
                alpha_bar.fill(T::ZERO);
            }
            Potential::Beta => {
                let factors = reverse_half_step(&c_t, &k, alpha_at(s), beta_at(t), &lb, &beta_bar, &mut alpha_bar, &mut exact_t, m, n, config);
                left.extend_from_slice(&factors.s);
                right.extend_from_slice(&factors.v);
                beta_bar.fill(T::ZERO);
            }
        }
    }
    let grad_scale = T::of(config.phi() / config.eps);
    let mut grad = sum_of_outer_products(&left, &right, batch, n, m);
    grad.par_chunks_mut(4096).zip(k.par_chunks(4096)).for_each(|(g, k)| {
        for (g, &k) in g.iter_mut().zip(k) {
            *g = grad_scale * k * *g;
        }
    });
    if let Some(exact) = exact {
        grad.par_iter_mut().zip(exact.par_iter()).for_each(|(g, e)| *g = *g + *e);
    }
    if let Some(exact_t) = exact_t {
        let exact = transpose(&exact_t, m, n);
        grad.par_iter_mut().zip(exact.par_iter()).for_each(|(g, e)| *g = *g + *e);
    }
    write(grad, vec![batch, n, m])
}

pub fn backward(inputs: BackwardInputs<Nd>, config: &SinkhornConfig) -> NdArrayTensor {
    // On a pool thread, as `solve`.
    rayon::scope(|_| match inputs.record.cost.dtype() {
        DType::F64 => backward_typed::<f64>(inputs, config),
        _ => backward_typed::<f32>(inputs, config),
    })
}
