//! timm hub folders' `config.json` (as `timm.models.save_for_hf` writes it) as typed structs.
//! `model_args` holds only what differs from the architecture's defaults; the defaults here are
//! those of timm's `vit_*_patch16_dinov3` models, the ones otclip reads.

use serde::Deserialize;

use crate::data::ImageNormalization;
use crate::model::Pooling;

/// A timm hub `config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TimmConfig {
    /// The timm model name, e.g. `vit_base_patch16_dinov3`.
    pub architecture: Option<String>,
    /// The pooling, when `model_args` does not set it.
    pub global_pool: Option<TimmGlobalPool>,
    /// The arguments the model was created with.
    pub model_args: TimmModelArgs,
    /// The preprocessing the weights were trained with.
    pub pretrained_cfg: TimmPretrainedCfg,
}

/// timm's `global_pool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimmGlobalPool {
    /// The mean of the patch tokens.
    Avg,
    /// The class token.
    Token,
}

impl From<TimmGlobalPool> for Pooling {
    fn from(pool: TimmGlobalPool) -> Self {
        match pool {
            TimmGlobalPool::Avg => Pooling::Mean,
            TimmGlobalPool::Token => Pooling::Cls,
        }
    }
}

/// timm's `img_size`: one side, or `[height, width]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TimmImageSize {
    Side(usize),
    Sides(Vec<usize>),
}

impl TimmImageSize {
    /// The DINOv3 models' 256 px.
    pub const DEFAULT_SIDE: usize = 256;

    /// The side of the (square) input: the height of `[height, width]`.
    pub fn side(&self) -> usize {
        match self {
            Self::Side(side) => *side,
            Self::Sides(sides) => sides.first().copied().unwrap_or(Self::DEFAULT_SIDE),
        }
    }
}

/// `model_args`: overrides of the architecture's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TimmModelArgs {
    /// The input size the positions were trained at.
    pub img_size: TimmImageSize,
    /// The side of the square patches.
    pub patch_size: usize,
    /// The width; by default the architecture's (small 384, base 768, large 1024).
    pub embed_dim: Option<usize>,
    /// The number of blocks; by default the architecture's.
    pub depth: Option<usize>,
    /// The number of attention heads; by default the architecture's.
    pub num_heads: Option<usize>,
    /// The MLP width as a multiple of `embed_dim`.
    pub mlp_ratio: f64,
    /// The pooling; overrides the top-level `global_pool`.
    pub global_pool: Option<TimmGlobalPool>,
    /// Biases on the query, key and value (also implied by a `_qkvb` architecture).
    pub qkv_bias: bool,
    /// Register tokens after the class token.
    pub num_reg_tokens: usize,
    /// The period base of the rotary position embeddings.
    pub rope_temperature: f64,
}

impl Default for TimmModelArgs {
    fn default() -> Self {
        Self {
            img_size: TimmImageSize::Side(TimmImageSize::DEFAULT_SIDE),
            patch_size: 16,
            embed_dim: None,
            depth: None,
            num_heads: None,
            mlp_ratio: 4.0,
            global_pool: None,
            qkv_bias: false,
            num_reg_tokens: 4,
            rope_temperature: 100.0,
        }
    }
}

/// `pretrained_cfg`: the pixel normalisation; each of the two defaults to ImageNet's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TimmPretrainedCfg {
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
}

impl TimmPretrainedCfg {
    pub fn normalization(&self) -> ImageNormalization {
        let imagenet = ImageNormalization::IMAGENET;
        ImageNormalization { mean: self.mean.unwrap_or(imagenet.mean), std: self.std.unwrap_or(imagenet.std) }
    }
}
