//! The test suite on f32 backends (ndarray in f32, wgpu). One binary for all of them, so the
//! backends' generic code is compiled and linked once rather than once per file.
//!
//! burn keys a device's default float type by the device, and `NdArray<f32>` and `NdArray<f64>`
//! share theirs: the first tensor a process makes on ndarray fixes it for both. So no test here
//! makes an `NdArray<f64>` tensor; the f64 checks are the `suite_f64` binary.

#[path = "../common/mod.rs"]
mod common;

mod architecture;
mod clip_loss;
mod config;
mod convnets;
mod convnets_real;
mod data_parallel;
mod data_pipeline;
mod dataset_fuzz;
mod datasets;
mod export_hf;
mod heads;
mod layer_ops;
mod hostile;
mod paper_recipe;
mod parser_fuzz;
mod plots;
mod precision;
mod retrieval_metrics;
mod sinkhorn_kernel;
mod sinkhorn_pot_f32;
mod sinkhorn_stability;
mod synthetic_data;
mod teacher_files;
mod towers_fixtures;
mod towers_io;
mod towers_real_model;
mod training;
mod translate_command;
mod translation;
mod translation_tokenizer;
mod use_model;
mod wgpu_parity;

/// Fails when a test of this binary made its first ndarray tensor in the other float type.
#[test]
fn ndarray_runs_in_f32_in_this_binary() {
    use burn::tensor::{DType, Tensor};
    let probe = Tensor::<burn::backend::NdArray<f32>, 1>::zeros([1], &Default::default());
    assert_eq!(probe.dtype(), DType::F32, "a test here made an NdArray<f64> tensor first; move it to tests/suite_f64");
}
