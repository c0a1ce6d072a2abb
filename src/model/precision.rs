//! Mixed precision: the towers and heads compute in bf16 or f16 where the backend can, from f32
//! master weights cast inside the autodiff graph, so that the gradients reach the masters in f32
//! and the optimiser state stays f32. Embeddings return in the masters' precision, so the
//! similarities, the losses and the Sinkhorn solver run in f32.

use anyhow::{bail, Result};
use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use serde::{Deserialize, Serialize};

/// What the towers compute in while training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in the backend's own float type.
    #[default]
    F32,
    /// bfloat16 towers (CUDA).
    Bf16,
    /// float16 towers (CUDA; wgpu where the adapter has 16-bit floats).
    F16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

impl Precision {
    /// The towers' float type, when it differs from the masters'.
    pub fn dtype(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(FloatDType::BF16),
            Precision::F16 => Some(FloatDType::F16),
        }
    }

    /// Refuses a precision that the backend cannot compute in on `device`.
    pub fn check<B: Backend>(self, device: &B::Device) -> Result<()> {
        match self.dtype() {
            Some(dtype) if !B::supports_dtype(device, DType::from(dtype)) => bail!(
                "model.precision = \"{self}\": {} cannot compute in {self}. bf16 and f16 run on CUDA, f16 on wgpu where the \
                 adapter has 16-bit floats (Vulkan's shaderFloat16, Metal); the ndarray CPU backend computes in f32 and f64 only",
                B::name(device)
            ),
            _ => Ok(()),
        }
    }
}

/// Casts every float parameter of a module to one float type, inside the autodiff graph: the
/// cast copies are not leaves, and the gradients flow back through them to the originals.
pub struct CastParams(pub FloatDType);

impl<B: Backend> ModuleMapper<B> for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let dtype = self.0;
        param.map(|tensor| tensor.cast(dtype))
    }
}
