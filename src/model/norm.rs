//! LayerNorm with burn's fields and record (`gamma`, `beta`, `epsilon`), computed by the fused
//! kernel of `otclip::kernels::layer_ops` where the backend has it (ndarray in f32) and by
//! burn's `layer_norm` op elsewhere.

use burn::module::{Initializer, Param};
use burn::prelude::*;
use otclip_kernels::layer_ops;

/// The settings of a [`LayerNorm`], as burn's `LayerNormConfig`.
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// The width of the normalised (last) dimension.
    pub d_model: usize,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Whether there is a learned shift β.
    #[config(default = true)]
    pub bias: bool,
}

impl LayerNormConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> LayerNorm<B> {
        assert!(self.epsilon > 0.0 && self.epsilon.is_finite(), "LayerNorm epsilon must be positive, not {}", self.epsilon);
        LayerNorm {
            gamma: Initializer::Ones.init([self.d_model], device),
            beta: self.bias.then(|| Initializer::Zeros.init([self.d_model], device)),
            epsilon: self.epsilon,
        }
    }
}

/// y = (x − μ)/√(σ² + ε) · γ + β over the last dimension.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// The scale γ.
    pub gamma: Param<Tensor<B, 1>>,
    /// The shift β.
    pub beta: Option<Param<Tensor<B, 1>>>,
    epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        layer_ops::layer_norm(x, self.gamma.val(), self.beta.as_ref().map(|beta| beta.val()), self.epsilon)
    }
}
