//! LowCLIP's image towers besides the ViT: ResNet, MobileNetV2, EfficientNet, EfficientNet-Lite
//! and Swin-T. Global average pooling of the last feature map feeds the projection head.
//! BatchNorm runs in an explicit [`BatchNormMode`]; see [`crate::model::batch_norm`].

pub mod layers;
pub mod mbconv;
pub mod presets;
pub mod resnet;
pub mod swin;

use burn::prelude::*;

pub use layers::{Activation, ConvPadding};
pub use mbconv::{MbConvConfig, MbConvNet, MbStageConfig};
pub use presets::{ConvFamily, ConvPreset};
pub use resnet::{ResNet, ResNetBlock, ResNetConfig};
pub use swin::{SwinConfig, SwinNet, SwinSmallMaps};

use super::batch_norm::{BatchNormMode, BatchNormStats};

/// The network of a convolutional tower.
#[derive(Config, Debug, PartialEq)]
pub enum ConvArch {
    ResNet(ResNetConfig),
    /// MobileNetV2, EfficientNet, EfficientNet-Lite.
    MbConv(MbConvConfig),
    /// Swin Transformer v1 (no BatchNorm).
    Swin(SwinConfig),
}

#[derive(Config, Debug, PartialEq)]
pub struct ConvNetConfig {
    /// The network's layers.
    pub arch: ConvArch,
    /// BatchNorm while training: `train` (batch statistics) or `frozen` (running statistics).
    #[config(default = "BatchNormMode::Train")]
    pub batch_norm: BatchNormMode,
    /// The side of the square images the tower is fed (224 for the ImageNet weights).
    #[config(default = 224)]
    pub image_size: usize,
}

impl ConvArch {
    /// The same network with every BatchNorm's momentum set to `momentum` (Swin has none).
    pub fn with_bn_momentum(self, momentum: f64) -> Self {
        match self {
            ConvArch::ResNet(c) => ConvArch::ResNet(c.with_bn_momentum(momentum)),
            ConvArch::MbConv(c) => ConvArch::MbConv(c.with_bn_momentum(momentum)),
            swin @ ConvArch::Swin(_) => swin,
        }
    }
}

impl ConvNetConfig {
    /// The pooled feature width.
    pub fn output_width(&self) -> usize {
        match &self.arch {
            ConvArch::ResNet(c) => c.output_width(),
            ConvArch::MbConv(c) => c.output_width(),
            ConvArch::Swin(c) => c.output_width(),
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> ConvTower<B> {
        let net = match &self.arch {
            ConvArch::ResNet(c) => ConvNet::ResNet(c.init(device)),
            ConvArch::MbConv(c) => ConvNet::MbConv(c.init(device)),
            ConvArch::Swin(c) => ConvNet::Swin(c.init(self.image_size, device)),
        };
        ConvTower { net, batch_norm: self.batch_norm }
    }
}

#[derive(Module, Debug)]
pub enum ConvNet<B: Backend> {
    ResNet(ResNet<B>),
    MbConv(MbConvNet<B>),
    Swin(SwinNet<B>),
}

/// A convolutional tower and how its BatchNorm layers train.
#[derive(Module, Debug)]
pub struct ConvTower<B: Backend> {
    pub net: ConvNet<B>,
    #[module(skip)]
    pub batch_norm: BatchNormMode,
}

impl<B: Backend> ConvTower<B> {
    /// The pooled features `[batch, width]` of `[batch, 3, H, W]` pixels, and the batch
    /// statistics used. Batch statistics are used only on a backend that tracks gradients and
    /// in [`BatchNormMode::Train`]; evaluation (an inner backend) and a frozen tower use the
    /// running statistics.
    pub fn forward(&self, pixels: Tensor<B, 4>) -> (Tensor<B, 2>, BatchNormStats<B>) {
        let training = B::ad_enabled(&pixels.device()) && self.batch_norm == BatchNormMode::Train;
        self.forward_with(pixels, training)
    }

    /// [`Self::forward`] with the statistics chosen by the caller: PyTorch's `train()` (`true`)
    /// or `eval()` (`false`).
    pub fn forward_with(&self, pixels: Tensor<B, 4>, batch_statistics: bool) -> (Tensor<B, 2>, BatchNormStats<B>) {
        let mut stats = BatchNormStats::collecting(batch_statistics);
        let pooled = match &self.net {
            ConvNet::ResNet(net) => net.forward(pixels, &mut stats),
            ConvNet::MbConv(net) => net.forward(pixels, &mut stats),
            ConvNet::Swin(net) => net.forward(pixels),
        };
        (pooled, stats)
    }

    /// Folds one update's batch statistics into the running statistics (PyTorch's momentum
    /// update, once per update however many chunks it was encoded in).
    pub fn absorb(self, stats: BatchNormStats<B>) -> Self {
        if stats.is_empty() {
            return self;
        }
        let mut reader = stats.reader();
        let net = match self.net {
            ConvNet::ResNet(net) => ConvNet::ResNet(net.absorb(&mut reader)),
            ConvNet::MbConv(net) => ConvNet::MbConv(net.absorb(&mut reader)),
            swin @ ConvNet::Swin(_) => swin,
        };
        assert!(reader.is_done(), "the statistics came from a model with more BatchNorm layers");
        Self { net, ..self }
    }
}
