//! The f64 test suite: checks against POT, NumPy and finite differences that need double
//! precision on ndarray (and wgpu checks against an f64 reference). A binary of its own, because
//! burn keys a device's default float type by the device (see `tests/suite/main.rs`).

#[path = "../common/mod.rs"]
mod common;

mod data_parallel_f64;
mod grad_cache_f64;
mod loss_fixtures;
mod resume_f64;
mod sinkhorn_grad;
mod sinkhorn_kernel_f64;
mod sinkhorn_pot;
mod teacher_and_solve;

/// Fails when a test of this binary made its first ndarray tensor in the other float type.
#[test]
fn ndarray_runs_in_f64_in_this_binary() {
    use burn::tensor::{DType, Tensor};
    let probe = Tensor::<burn::backend::NdArray<f64>, 1>::zeros([1], &Default::default());
    assert_eq!(probe.dtype(), DType::F64, "a test here made an NdArray<f32> tensor first; move it to tests/suite");
}
