//! The CubeCL kernels. One cube reduces one row: its units stride over the row (so adjacent
//! units read adjacent addresses), keep a running log-sum-exp each, and combine them through
//! shared memory in a tree. Rows are rows of C for α and rows of Cᵀ for β, so every read is
//! coalesced. Tensors are contiguous and indexed flat; potentials live in `[iters + 1, batch, len]`
//! histories addressed by a slot offset, so no N×M intermediate is ever written per iteration.

use cubecl::prelude::*;
use cubecl::{cube, terminate};

/// Combines two running log-sum-exps (max, Σ exp(x − max)) held in shared memory.
#[cube]
fn combine_lse<F: Float>(max: &mut SharedMemory<F>, sum: &mut SharedMemory<F>, into: usize, from: usize) {
    let (m1, s1) = (max[into], sum[into]);
    let (m2, s2) = (max[from], sum[from]);
    let top = F::max(m1, m2);
    max[into] = top;
    sum[into] = s1 * F::exp(m1 - top) + s2 * F::exp(m2 - top);
}

// ANCHOR: lse_update
/// One half-step: `out[slot, b, r] = log_out[b, r] − φ · LSE_k(input[slot', b, k] − x[b, r, k]/ε)`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn lse_update<F: Float>(
    x: &Tensor<F>,
    input: &Tensor<F>,
    log_out: &Tensor<F>,
    out: &mut Tensor<F>,
    input_offset: u32,
    out_offset: u32,
    neg_inv_eps: f32,
    phi: f32,
    #[comptime] block: u32,
) {
    let row = CUBE_POS_X as usize;
    let problem = CUBE_POS_Y as usize;
    let unit = UNIT_POS_X as usize;
    let rows = x.shape(1);
    let cols = x.shape(2);
    if row >= rows {
        terminate!();
    }
    let base = (problem * rows + row) * cols;
    let input_base = input_offset as usize + problem * cols;
    let scale = F::cast_from(neg_inv_eps);
    // Two passes over the unit's strided elements (the maximum, then Σ exp): one `exp` per
    // element and no divergent branch; the second pass hits the cache.
    let mut running_max = F::new(-1.0e30);
    let mut k = unit;
    while k < cols {
        running_max = F::max(running_max, input[input_base + k] + x[base + k] * scale);
        k += block as usize;
    }
    let mut running_sum = F::new(0.0);
    let mut k = unit;
    while k < cols {
        running_sum = running_sum + F::exp(input[input_base + k] + x[base + k] * scale - running_max);
        k += block as usize;
    }
    let mut max = SharedMemory::<F>::new(block as usize);
    let mut sum = SharedMemory::<F>::new(block as usize);
    max[unit] = running_max;
    sum[unit] = running_sum;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if unit < stride {
            combine_lse::<F>(&mut max, &mut sum, unit, unit + stride);
        }
        sync_cube();
        stride = stride / 2;
    }
    if unit == 0 {
        let index = problem * rows + row;
        out[out_offset as usize + index] = log_out[index] - F::cast_from(phi) * (max[0] + F::ln(sum[0]));
    }
}
// ANCHOR_END: lse_update

// ANCHOR: reverse
/// The reverse of a half-step whose output (indexed by k) reduced over this row's input r:
/// `input_adjoint[b, r] = base_adjoint[b, r] − φ Σ_k w_rk` and `grad[b, r, k] += (φ/ε) w_rk`, with
/// `w_rk = out_adjoint[b, k] · exp(input_r − x_rk/ε − L_k)` and `L_k = (log_out_k − output_k)/φ`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn lse_update_reverse<F: Float>(
    x: &Tensor<F>,
    input: &Tensor<F>,
    output: &Tensor<F>,
    log_out: &Tensor<F>,
    out_adjoint: &Tensor<F>,
    base_adjoint: &Tensor<F>,
    input_adjoint: &mut Tensor<F>,
    grad: &mut Tensor<F>,
    input_offset: u32,
    output_offset: u32,
    neg_inv_eps: f32,
    phi: f32,
    #[comptime] block: u32,
) {
    let row = CUBE_POS_X as usize;
    let problem = CUBE_POS_Y as usize;
    let unit = UNIT_POS_X as usize;
    let rows = x.shape(1);
    let cols = x.shape(2);
    if row >= rows {
        terminate!();
    }
    let base = (problem * rows + row) * cols;
    let out_base = problem * cols;
    let scale = F::cast_from(neg_inv_eps);
    let phi = F::cast_from(phi);
    let inv_phi = F::new(1.0) / phi;
    let grad_scale = -phi * scale;
    let shift = input[input_offset as usize + problem * rows + row];
    let mut running_sum = F::new(0.0);
    let mut k = unit;
    while k < cols {
        let lse = (log_out[out_base + k] - output[output_offset as usize + out_base + k]) * inv_phi;
        let weight = out_adjoint[out_base + k] * F::exp(shift + x[base + k] * scale - lse);
        running_sum = running_sum + weight;
        grad[base + k] += grad_scale * weight;
        k += block as usize;
    }
    let mut sum = SharedMemory::<F>::new(block as usize);
    sum[unit] = running_sum;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if unit < stride {
            sum[unit] = sum[unit] + sum[unit + stride];
        }
        sync_cube();
        stride = stride / 2;
    }
    if unit == 0 {
        let index = problem * rows + row;
        input_adjoint[index] = base_adjoint[index] - phi * sum[0];
    }
}
// ANCHOR_END: reverse

/// Γ[b, i, j] = exp(α[b, i] + β[b, j] − C[b, i, j]/ε), one cube per row.
#[cube(launch)]
pub fn transport_plan<F: Float>(cost: &Tensor<F>, alpha: &Tensor<F>, beta: &Tensor<F>, plan: &mut Tensor<F>, neg_inv_eps: f32, #[comptime] block: u32) {
    let row = CUBE_POS_X as usize;
    let problem = CUBE_POS_Y as usize;
    let rows = cost.shape(1);
    let cols = cost.shape(2);
    if row >= rows {
        terminate!();
    }
    let base = (problem * rows + row) * cols;
    let shift = alpha[problem * rows + row];
    let scale = F::cast_from(neg_inv_eps);
    let mut k = UNIT_POS_X as usize;
    while k < cols {
        plan[base + k] = F::exp(shift + beta[problem * cols + k] + cost[base + k] * scale);
        k += block as usize;
    }
}
