//! `[model.convnet]` of a training config: which convolutional image tower, and how its
//! BatchNorm layers train.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::model::batch_norm::BatchNormMode;
use crate::model::convnet::presets::{ConvFamily, ConvPreset, ConvSource};
use crate::model::convnet::ConvArch;

/// `[model.convnet]`: a convolutional image tower (LowCLIP).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvNetSection {
    /// `resnet18` … `resnet152`, `mobilenet_v2`, `efficientnet_b0`, `tf_efficientnet_b0` or `efficientnet_lite0`.
    pub name: ConvFamily,
    /// Whose definition: `torchvision`, `timm` (default) or `efficient_net_pytorch`.
    #[serde(default = "default_conv_library")]
    pub library: ConvSource,
    /// EfficientNet's and MobileNetV2's channel multiplier (default 1).
    #[serde(default = "one")]
    pub width_mult: f64,
    /// EfficientNet's depth multiplier (default 1).
    #[serde(default = "one")]
    pub depth_mult: f64,
    /// `train` (batch statistics, running statistics updated once per update) or `frozen`.
    #[serde(default)]
    pub batch_norm: BatchNormMode,
    /// BatchNorm's momentum, PyTorch's convention; absent: the library's (0.1, or 0.01 for
    /// EfficientNet-PyTorch's TF ports, which a short run from scratch leaves far from its data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn_momentum: Option<f64>,
}

fn default_conv_library() -> ConvSource {
    ConvSource::Timm
}

fn one() -> f64 {
    1.0
}

impl ConvNetSection {
    pub fn preset(&self) -> ConvPreset {
        ConvPreset::new(self.name, self.library).with_multipliers(self.width_mult, self.depth_mult)
    }

    /// The network this section names, with its BatchNorm momentum.
    pub fn arch(&self) -> Result<ConvArch> {
        Ok(self.adjust(self.preset().arch()?))
    }

    /// `arch` with this section's BatchNorm momentum, when it sets one.
    pub fn adjust(&self, arch: ConvArch) -> ConvArch {
        match self.bn_momentum {
            Some(momentum) => arch.with_bn_momentum(momentum),
            None => arch,
        }
    }
}
