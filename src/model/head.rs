//! The projection heads that map a tower's pooled output into the shared embedding space:
//! ViCLIP-OT's (dropout, then a bias-free linear layer), open_clip's MLP, or none at all.

use std::marker::PhantomData;

use anyhow::{bail, Result};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use otclip_kernels::layer_ops::gelu;
use serde::{Deserialize, Serialize};

/// What maps a tower's pooled output into the shared embedding space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// One linear layer, tower width → embedding width (CLIP's `visual_projection`).
    #[default]
    Linear,
    /// open_clip's MLP head: linear to (width + embedding width) / 2, exact GELU, linear.
    Mlp,
    /// The pooled output itself: the tower's width must equal the embedding width.
    None,
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadKind::Linear => "linear",
            HeadKind::Mlp => "mlp",
            HeadKind::None => "none",
        })
    }
}

#[derive(Config, Debug, PartialEq)]
pub struct HeadConfig {
    /// `linear`, `mlp` or `none`.
    #[config(default = "HeadKind::Linear")]
    pub kind: HeadKind,
    /// Whether the head's linear layers have a bias.
    #[config(default = false)]
    pub bias: bool,
    /// Dropout on the pooled output, before the head (ViCLIP-OT's image head: 0.1).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl HeadConfig {
    /// Checks the head against the tower width `width` and the embedding width `embed_dim`;
    /// `which` names the head in the message (`model.image_head`).
    pub fn validate(&self, which: &str, width: usize, embed_dim: usize) -> Result<()> {
        self.validate_dropout(which)?;
        if self.kind == HeadKind::None && width != embed_dim {
            bail!(
                "{which}.kind = \"none\" needs the tower's width ({width}) to equal model.projection_dim ({embed_dim}); \
                 set projection_dim = {width} or use a linear head"
            );
        }
        Ok(())
    }

    /// Checks what needs no tower: the dropout is a probability below 1.
    pub fn validate_dropout(&self, which: &str) -> Result<()> {
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("{which}.dropout = {}: expected a probability in [0, 1)", self.dropout);
        }
        Ok(())
    }

    /// The hidden width of the MLP head for a tower of `width` (open_clip's choice).
    pub fn mlp_hidden(width: usize, embed_dim: usize) -> usize {
        (width + embed_dim) / 2
    }

    /// The layers of a head from `width` to `embed_dim`.
    pub fn init<B: Backend>(&self, width: usize, embed_dim: usize, device: &B::Device) -> HeadLayers<B> {
        let linear = |from: usize, to: usize| LinearConfig::new(from, to).with_bias(self.bias).init(device);
        let hidden = Self::mlp_hidden(width, embed_dim);
        HeadLayers {
            dropout: (self.dropout > 0.0).then(|| HeadDropout { dropout: DropoutConfig::new(self.dropout).init(), backend: PhantomData }),
            linear: (self.kind == HeadKind::Linear).then(|| linear(width, embed_dim)),
            mlp: (self.kind == HeadKind::Mlp).then(|| MlpHead { fc1: linear(width, hidden), fc2: linear(hidden, embed_dim) }),
        }
    }
}

/// open_clip's MLP projection: `fc1`, exact GELU, `fc2`.
#[derive(Module, Debug)]
pub struct MlpHead<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

/// Dropout before a head. A module of the backend, held in an `Option`, so that checkpoints
/// saved before heads had dropout still load: an absent `Option` field reads as `None`, and a
/// module without parameters keeps its own settings whatever record it is given.
#[derive(Module, Debug)]
pub struct HeadDropout<B: Backend> {
    pub dropout: Dropout,
    backend: PhantomData<B>,
}

/// One tower's head, as the dual encoder holds it in three fields (`visual_projection`,
/// `visual_mlp`, `visual_dropout`): at most one of `linear` and `mlp` is present.
pub struct HeadLayers<B: Backend> {
    pub dropout: Option<HeadDropout<B>>,
    pub linear: Option<Linear<B>>,
    pub mlp: Option<MlpHead<B>>,
}

/// A head's output for pooled tower outputs `[batch, width]`, before normalisation.
pub fn project<B: Backend>(
    pooled: Tensor<B, 2>,
    dropout: Option<&HeadDropout<B>>,
    linear: Option<&Linear<B>>,
    mlp: Option<&MlpHead<B>>,
) -> Tensor<B, 2> {
    let x = match dropout {
        Some(d) => d.dropout.forward(pooled),
        None => pooled,
    };
    match (linear, mlp) {
        (Some(linear), _) => linear.forward(x),
        (None, Some(mlp)) => mlp.fc2.forward(gelu(mlp.fc1.forward(x))),
        (None, None) => x,
    }
}
