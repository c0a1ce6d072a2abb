//! The `NdArray` (CPU) side of the kernels: tight loops over rows, parallel with rayon.

pub mod layer_ops;
mod matmul;
mod real;
mod sinkhorn;

pub use sinkhorn::{backward, plan, solve};
