//! The `NdArray` (CPU) side of the kernels: tight loops over rows, parallel with rayon.

mod real;
mod sinkhorn;

pub use sinkhorn::{backward, plan, solve};
