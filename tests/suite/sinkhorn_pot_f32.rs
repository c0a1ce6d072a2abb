//! The tensor-op Sinkhorn against POT in f32 on ndarray, ≤ 1e-4 relative (the f64 and wgpu checks
//! are the f64 binary's `sinkhorn_pot`).

use burn::backend::NdArray;

use crate::common::pot::check_all;

#[test]
fn ndarray_f32_matches_pot() {
    check_all::<NdArray<f32>>("ndarray f32", 1e-4, &Default::default());
}
