//! The Sinkhorn ops for `CubeBackend` (wgpu, CUDA): one kernel launch per half-iteration.
//!
//! Why this shape:
//! - **One cube per row, units striding over the row.** A half-step is n (or m) independent
//!   row-wise log-sum-exps. Striding keeps reads coalesced; β's rows come from a transposed copy
//!   of C made once per solve (2·n·m floats of memory instead of strided column reads).
//! - **Block size** is the power of two nearest a 32nd of the row, between 32 and 256: about
//!   32 elements per unit, so the log₂(block) barrier steps of the tree stay a small share
//!   (barriers are dear on lavapipe, which runs a cube as a loop on one CPU thread).
//! - **Shared memory, not plane (warp) intrinsics,** for the reduction: the plane width differs
//!   between CUDA (32), AMD (64) and Vulkan drivers (lavapipe's varies), and the reduction is
//!   a few percent of the work once each unit has folded eight elements.
//! - **A launch per half-step, not one launch for all iterations.** A single persistent cube
//!   would run every row on one streaming multiprocessor, and CubeCL has no grid-wide barrier to
//!   spread it; n/64 cubes per launch keep the whole device busy, and a launch costs a few µs.
//! - The potentials after every iteration go to `[iters + 1, batch, len]` histories, which the
//!   backward pass reverses; nothing of size n·m is written per iteration in the forward pass.

mod kernels;

use burn::tensor::ops::FloatTensor;
use burn::tensor::Tensor;
use burn_cubecl::element::BoolElement;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::{CubeCount, CubeDim};

use crate::fallback::{primitive, tensor};
use crate::{BackwardInputs, Potential, Potentials, SinkhornBackend, SinkhornConfig, SolveRecord};

/// Units per cube for rows of `cols` elements.
fn block_for(cols: usize) -> u32 {
    (cols / 32).next_power_of_two().clamp(32, 256) as u32
}

fn launch_grid(rows: usize, batch: usize) -> CubeCount {
    assert!(rows <= u16::MAX as usize && batch <= u16::MAX as usize, "the fused Sinkhorn kernel takes at most 65535 rows and problems");
    CubeCount::Static(rows as u32, batch as u32, 1)
}

/// The potentials' history, `[iters + 1, batch, len]`, with `start` in slot 0.
fn history<B: burn::tensor::backend::Backend>(start: &Tensor<B, 2>, iters: usize) -> Tensor<B, 3> {
    let [batch, len] = start.dims();
    Tensor::cat(vec![start.clone().unsqueeze_dim(0), Tensor::zeros([iters, batch, len], &start.device())], 0)
}

fn contiguous<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement, const D: usize>(
    t: Tensor<CubeBackend<R, F, I, BT>, D>,
) -> CubeTensor<R> {
    into_contiguous(primitive(t))
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> SinkhornBackend for CubeBackend<R, F, I, BT> {
    fn sinkhorn_solve(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, config: &SinkhornConfig) -> Potentials<Self> {
        let cost = tensor::<Self, 3>(cost);
        let [batch, n, m] = cost.dims();
        let (log_a, log_b) = (tensor::<Self, 2>(log_a), tensor::<Self, 2>(log_b));
        let (alphas, betas) = (history(&log_a, config.iterations), history(&log_b, config.iterations));
        let cost_t = contiguous(cost.clone().swap_dims(1, 2));
        let cost = contiguous(cost);
        let (alpha_history, beta_history) = (contiguous(alphas.clone()), contiguous(betas.clone()));
        let (log_a_p, log_b_p) = (contiguous(log_a), contiguous(log_b));
        let client = cost.client.clone();
        let (neg_inv_eps, phi) = ((-1.0 / config.eps) as f32, config.phi() as f32);
        let update = |x: &CubeTensor<R>, input: &CubeTensor<R>, input_slot: usize, log_out: &CubeTensor<R>, out: &CubeTensor<R>, out_slot: usize| {
            let shape = x.meta.shape();
            let (rows, cols) = (shape[1], shape[2]);
            kernels::lse_update::launch::<F, R>(
                &client,
                launch_grid(rows, batch),
                CubeDim::new_1d(block_for(cols)),
                x.clone().into_tensor_arg(),
                input.clone().into_tensor_arg(),
                log_out.clone().into_tensor_arg(),
                out.clone().into_tensor_arg(),
                (input_slot * batch * cols) as u32,
                (out_slot * batch * rows) as u32,
                neg_inv_eps,
                phi,
                block_for(cols),
            );
        };
        let mut run = 0;
        for step in config.half_steps(config.iterations) {
            let (t, s) = (step.iteration, step.reads_slot);
            match step.writes {
                Potential::Alpha => update(&cost, &beta_history, s, &log_a_p, &alpha_history, t),
                Potential::Beta => update(&cost_t, &alpha_history, s, &log_b_p, &beta_history, t),
            }
            if !step.completes_iteration() {
                continue;
            }
            run = t;
            if config.checks_convergence_after(t) {
                let alphas = tensor::<Self, 3>(alpha_history.clone());
                let change = alphas.clone().slice([t..t + 1]) - alphas.slice([t - 1..t]);
                let change: f64 = change.abs().max().into_scalar().elem();
                if change < config.tolerance {
                    break;
                }
            }
        }
        let final_slot = |history: &CubeTensor<R>, len: usize| primitive(tensor::<Self, 3>(history.clone()).slice([run..run + 1]).reshape([batch, len]));
        let device = cost.device.clone();
        Potentials {
            alpha: final_slot(&alpha_history, n),
            beta: final_slot(&beta_history, m),
            alpha_history,
            beta_history,
            iterations: primitive(Tensor::<Self, 1>::from_floats([run as f32], &device)),
        }
    }

    fn sinkhorn_plan(cost: FloatTensor<Self>, alpha: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let (cost, alpha, beta) = (into_contiguous(cost), into_contiguous(alpha), into_contiguous(beta));
        cost.assert_is_on_same_device(&alpha);
        let shape = cost.meta.shape().clone();
        let (batch, rows, cols) = (shape[0], shape[1], shape[2]);
        let plan = empty_device::<R, F>(cost.client.clone(), cost.device.clone(), shape);
        kernels::transport_plan::launch::<F, R>(
            &cost.client,
            launch_grid(rows, batch),
            CubeDim::new_1d(block_for(cols)),
            cost.clone().into_tensor_arg(),
            alpha.into_tensor_arg(),
            beta.into_tensor_arg(),
            plan.clone().into_tensor_arg(),
            (-1.0 / eps) as f32,
            block_for(cols),
        );
        plan
    }

    fn sinkhorn_backward(inputs: BackwardInputs<Self>, config: &SinkhornConfig) -> FloatTensor<Self> {
        let BackwardInputs { record: SolveRecord { cost, log_a, log_b, alpha_history, beta_history, iterations }, alpha_adjoint, beta_adjoint } = inputs;
        let cost = tensor::<Self, 3>(cost);
        let [batch, n, m] = cost.dims();
        let device = cost.device();
        let grad = contiguous(Tensor::<Self, 3>::zeros([batch, n, m], &device));
        let grad_t = contiguous(Tensor::<Self, 3>::zeros([batch, m, n], &device));
        let zeros_n = contiguous(Tensor::<Self, 2>::zeros([batch, n], &device));
        let zeros_m = contiguous(Tensor::<Self, 2>::zeros([batch, m], &device));
        let cost_t = contiguous(cost.clone().swap_dims(1, 2));
        let cost = contiguous(cost);
        let (log_a, log_b) = (into_contiguous(log_a), into_contiguous(log_b));
        let (alphas, betas) = (into_contiguous(alpha_history), into_contiguous(beta_history));
        let (mut alpha_bar, mut beta_bar) = (into_contiguous(alpha_adjoint), into_contiguous(beta_adjoint));
        let client = cost.client.clone();
        let (neg_inv_eps, phi) = ((-1.0 / config.eps) as f32, config.phi() as f32);
        // Reverses the half-step whose output (slot `output_slot` of `output`) reduced over the
        // rows of `x`, which index `input` (slot `input_slot`); returns the input's adjoint.
        #[allow(clippy::too_many_arguments)]
        let reverse = |x: &CubeTensor<R>,
                       input: &CubeTensor<R>,
                       input_slot: usize,
                       output: &CubeTensor<R>,
                       output_slot: usize,
                       log_out: &CubeTensor<R>,
                       out_adjoint: &CubeTensor<R>,
                       base_adjoint: &CubeTensor<R>,
                       grad: &CubeTensor<R>| {
            let shape = x.meta.shape();
            let (rows, cols) = (shape[1], shape[2]);
            let input_adjoint = empty_device::<R, F>(client.clone(), x.device.clone(), [batch, rows].into());
            kernels::lse_update_reverse::launch::<F, R>(
                &client,
                launch_grid(rows, batch),
                CubeDim::new_1d(block_for(cols)),
                x.clone().into_tensor_arg(),
                input.clone().into_tensor_arg(),
                output.clone().into_tensor_arg(),
                log_out.clone().into_tensor_arg(),
                out_adjoint.clone().into_tensor_arg(),
                base_adjoint.clone().into_tensor_arg(),
                input_adjoint.clone().into_tensor_arg(),
                grad.clone().into_tensor_arg(),
                (input_slot * batch * rows) as u32,
                (output_slot * batch * cols) as u32,
                neg_inv_eps,
                phi,
                block_for(cols),
            );
            input_adjoint
        };
        // Each step's input gains what flowed into its output; the output's adjoint is then spent.
        for step in config.half_steps(iterations).rev() {
            let (t, s) = (step.iteration, step.reads_slot);
            match step.writes {
                Potential::Alpha => {
                    beta_bar = reverse(&cost_t, &betas, s, &alphas, t, &log_a, &alpha_bar, &beta_bar, &grad_t);
                    alpha_bar = zeros_n.clone();
                }
                Potential::Beta => {
                    alpha_bar = reverse(&cost, &alphas, s, &betas, t, &log_b, &beta_bar, &alpha_bar, &grad);
                    beta_bar = zeros_m.clone();
                }
            }
        }
        primitive(tensor::<Self, 3>(grad) + tensor::<Self, 3>(grad_t).swap_dims(1, 2))
    }
}
