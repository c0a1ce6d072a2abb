//! The named convolutional towers (`resnet50`, `efficientnet_b0`, …) as each library builds
//! them, with EfficientNet's width and depth multipliers. torchvision and timm round some
//! widths differently; the [`ConvSource`] picks whose rules apply, so that a checkpoint of
//! either library has exactly the shapes its model had.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{Activation, ConvArch, ConvPadding, MbConvConfig, MbStageConfig, ResNetBlock, ResNetConfig, SwinConfig, SwinSmallMaps};

/// The library whose definition (and checkpoint names) a named tower follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvSource {
    Torchvision,
    Timm,
    /// lukemelas' EfficientNet-PyTorch (`_conv_stem`, `_blocks.N._depthwise_conv`).
    EfficientNetPytorch,
}

/// The named architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvFamily {
    Resnet18,
    Resnet34,
    Resnet50,
    Resnet101,
    Resnet152,
    MobilenetV2,
    EfficientnetB0,
    /// timm's TensorFlow port: "same" padding and BatchNorm ε = 1e-3.
    TfEfficientnetB0,
    EfficientnetLite0,
    /// Swin-T (v1), patch 4, window 7.
    SwinT,
}

impl std::str::FromStr for ConvFamily {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "resnet18" => Self::Resnet18,
            "resnet34" => Self::Resnet34,
            "resnet50" => Self::Resnet50,
            "resnet101" => Self::Resnet101,
            "resnet152" => Self::Resnet152,
            "mobilenet_v2" => Self::MobilenetV2,
            "efficientnet_b0" => Self::EfficientnetB0,
            "tf_efficientnet_b0" => Self::TfEfficientnetB0,
            "efficientnet_lite0" | "tf_efficientnet_lite0" => Self::EfficientnetLite0,
            "swin_t" | "swin_tiny_patch4_window7_224" => Self::SwinT,
            other => bail!(
                "unknown convolutional tower `{other}`: expected resnet18, resnet34, resnet50, resnet101, resnet152, mobilenet_v2, efficientnet_b0, tf_efficientnet_b0 efficientnet_lite0 or swin_t (timm: swin_tiny_patch4_window7_224)"
            ),
        })
    }
}

/// A named tower as one library builds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvPreset {
    pub family: ConvFamily,
    pub source: ConvSource,
    /// EfficientNet's channel multiplier (torchvision's `width_mult`).
    pub width_mult: f64,
    /// EfficientNet's depth multiplier.
    pub depth_mult: f64,
}

/// torchvision's `_make_divisible` and timm's `make_divisible`: the nearest multiple of 8, never
/// more than 10 % below `v`.
pub fn make_divisible(v: f64) -> usize {
    let divisor = 8.0;
    let mut rounded = ((v + divisor / 2.0) / divisor).floor() * divisor;
    rounded = rounded.max(divisor);
    if rounded < 0.9 * v {
        rounded += divisor;
    }
    rounded as usize
}

/// EfficientNet-B0's stages: (expand, kernel, stride, channels, repeats).
const EFFICIENTNET_B0: [(usize, usize, usize, usize, usize); 7] =
    [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)];
/// MobileNetV2's stages, in the same form.
const MOBILENET_V2: [(usize, usize, usize, usize, usize); 7] =
    [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 3, 2, 32, 3), (6, 3, 2, 64, 4), (6, 3, 1, 96, 3), (6, 3, 2, 160, 3), (6, 3, 1, 320, 1)];

impl ConvPreset {
    pub fn new(family: ConvFamily, source: ConvSource) -> Self {
        Self { family, source, width_mult: 1.0, depth_mult: 1.0 }
    }

    pub fn with_multipliers(self, width_mult: f64, depth_mult: f64) -> Self {
        Self { width_mult, depth_mult, ..self }
    }

    /// The layers, with `source`'s rounding rules.
    pub fn arch(&self) -> Result<ConvArch> {
        if !(self.width_mult > 0.0 && self.width_mult <= 8.0 && self.depth_mult > 0.0 && self.depth_mult <= 8.0) {
            bail!("width_mult = {}, depth_mult = {}: expected multipliers in (0, 8]", self.width_mult, self.depth_mult);
        }
        let resnet = |block, layers| Ok(ConvArch::ResNet(ResNetConfig::new(block, layers)));
        let (w, d) = (self.width_mult, self.depth_mult);
        let channels = |c: usize| make_divisible(c as f64 * w);
        let repeats = |r: usize| (r as f64 * d).ceil() as usize;
        let stages = |table: &[(usize, usize, usize, usize, usize)], fixed_ends: bool| {
            let last = table.len() - 1;
            table
                .iter()
                .enumerate()
                .map(|(i, &(expand, kernel, stride, c, r))| {
                    let r = if fixed_ends && (i == 0 || i == last) { r } else { repeats(r) };
                    MbStageConfig::new(expand, kernel, stride, channels(c), r)
                })
                .collect::<Vec<_>>()
        };
        let multiplied = w != 1.0 || d != 1.0;
        match self.family {
            ConvFamily::Resnet18 | ConvFamily::Resnet34 | ConvFamily::Resnet50 | ConvFamily::Resnet101 | ConvFamily::Resnet152 | ConvFamily::SwinT if multiplied => {
                bail!("width_mult and depth_mult apply to EfficientNet and MobileNetV2 only")
            }
            ConvFamily::SwinT => Ok(ConvArch::Swin(SwinConfig::tiny(match self.source {
                ConvSource::Torchvision => SwinSmallMaps::Pad,
                _ => SwinSmallMaps::Shrink,
            }))),
            ConvFamily::Resnet18 => resnet(ResNetBlock::Basic, [2, 2, 2, 2]),
            ConvFamily::Resnet34 => resnet(ResNetBlock::Basic, [3, 4, 6, 3]),
            ConvFamily::Resnet50 => resnet(ResNetBlock::Bottleneck, [3, 4, 6, 3]),
            ConvFamily::Resnet101 => resnet(ResNetBlock::Bottleneck, [3, 4, 23, 3]),
            ConvFamily::Resnet152 => resnet(ResNetBlock::Bottleneck, [3, 8, 36, 3]),
            ConvFamily::MobilenetV2 => {
                if d != 1.0 {
                    bail!("mobilenet_v2 has a width multiplier only");
                }
                let head = make_divisible(1280.0 * w.max(1.0));
                Ok(ConvArch::MbConv(MbConvConfig::new(channels(32), stages(&MOBILENET_V2, false), head, Activation::Relu6)))
            }
            ConvFamily::EfficientnetB0 | ConvFamily::TfEfficientnetB0 => {
                let stages = stages(&EFFICIENTNET_B0, false);
                let head = match self.source {
                    // torchvision: four times the last stage's (rounded) width.
                    ConvSource::Torchvision => 4 * stages.last().expect("seven stages").channels,
                    _ => channels(1280),
                };
                let mut config = MbConvConfig::new(channels(32), stages, head, Activation::Silu).with_squeeze_excite(true);
                // timm's TF ports keep PyTorch's momentum; EfficientNet-PyTorch uses TF's (0.01).
                match (self.source, self.family) {
                    (ConvSource::EfficientNetPytorch, _) => config = config.with_padding(ConvPadding::TfSame).with_bn_eps(1e-3).with_bn_momentum(0.01),
                    (_, ConvFamily::TfEfficientnetB0) => config = config.with_padding(ConvPadding::TfSame).with_bn_eps(1e-3),
                    _ => {}
                }
                Ok(ConvArch::MbConv(config))
            }
            ConvFamily::EfficientnetLite0 => {
                // Lite: no squeeze-excitation, ReLU6, and the stem, the head and the first and
                // last stages' repeats are not scaled.
                let config = MbConvConfig::new(32, stages(&EFFICIENTNET_B0, true), 1280, Activation::Relu6);
                Ok(ConvArch::MbConv(match self.source {
                    ConvSource::Timm => config,
                    _ => config.with_padding(ConvPadding::TfSame).with_bn_eps(1e-3).with_bn_momentum(0.01),
                }))
            }
        }
    }
}
