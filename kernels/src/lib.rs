//! otclip-kernels: the fused Sinkhorn kernels of otclip, as a burn backend extension.
//!
//! This crate holds backend-specific code only (CubeCL for wgpu and CUDA, a CPU loop for NdArray,
//! and the custom autodiff backward), so that the rest of otclip stays generic over `Backend`.
