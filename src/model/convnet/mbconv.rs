//! Networks of inverted-residual (MBConv) blocks: MobileNetV2, EfficientNet and EfficientNet-Lite.
//! Field names follow timm (`conv_stem`, `blocks.S.I.conv_dw`, `conv_head`); torchvision's and
//! EfficientNet-PyTorch's checkpoints load through key maps (`weights::convnet`).

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::layers::{conv, global_average_pool, pointwise, Activation, ConvPadding, SqueezeExcite};
use crate::model::batch_norm::{BatchNorm2d, BatchNorm2dConfig, BatchNormStats, StatsReader};

/// One stage: `repeats` blocks, the first with `stride`, all with `channels` out.
#[derive(Config, Debug, PartialEq)]
pub struct MbStageConfig {
    /// Inner width over input width (1: a depthwise-separable block with no expansion).
    pub expand: usize,
    /// The depthwise kernel side.
    pub kernel: usize,
    /// The first block's stride.
    pub stride: usize,
    /// Output channels.
    pub channels: usize,
    /// Blocks in the stage.
    pub repeats: usize,
}

#[derive(Config, Debug, PartialEq)]
pub struct MbConvConfig {
    /// The stem convolution's output channels (3×3, stride 2).
    pub stem: usize,
    pub stages: Vec<MbStageConfig>,
    /// The 1×1 head convolution's output channels: the pooled feature width.
    pub head: usize,
    pub activation: Activation,
    /// Squeeze-and-excitation with a reduced width of a quarter of the block's input (EfficientNet).
    #[config(default = false)]
    pub squeeze_excite: bool,
    #[config(default = "ConvPadding::Symmetric")]
    pub padding: ConvPadding,
    /// BatchNorm epsilon.
    #[config(default = 1e-5)]
    pub bn_eps: f64,
    /// BatchNorm momentum (PyTorch's convention).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl MbConvConfig {
    pub fn output_width(&self) -> usize {
        self.head
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> MbConvNet<B> {
        let bn = |channels: usize| BatchNorm2dConfig::new(channels).with_epsilon(self.bn_eps).with_momentum(self.bn_momentum).init(device);
        let pad = self.padding;
        let mut input = self.stem;
        let blocks = self
            .stages
            .iter()
            .map(|stage| {
                (0..stage.repeats)
                    .map(|i| {
                        let stride = if i == 0 { stage.stride } else { 1 };
                        let inner = input * stage.expand;
                        let expand = stage.expand != 1;
                        let block = MbBlock {
                            conv_pw: expand.then(|| conv([input, inner], 1, 1, 1, false, pad, device)),
                            bn1: expand.then(|| bn(inner)),
                            conv_dw: conv([inner, inner], stage.kernel, stride, inner, false, pad, device),
                            bn2: bn(inner),
                            se: self.squeeze_excite.then(|| SqueezeExcite::new(inner, (input / 4).max(1), self.activation, device)),
                            conv_pwl: conv([inner, stage.channels], 1, 1, 1, false, pad, device),
                            bn3: bn(stage.channels),
                            activation: self.activation,
                            has_skip: stride == 1 && input == stage.channels,
                        };
                        input = stage.channels;
                        block
                    })
                    .collect()
            })
            .collect();
        MbConvNet {
            conv_stem: conv([3, self.stem], 3, 2, 1, false, pad, device),
            bn1: bn(self.stem),
            blocks,
            conv_head: conv([input, self.head], 1, 1, 1, false, pad, device),
            bn2: bn(self.head),
            activation: self.activation,
        }
    }
}

/// An inverted residual: 1×1 expansion (absent when the ratio is 1), depthwise convolution,
/// optional squeeze-and-excitation, linear 1×1 projection, and the skip when shapes allow.
#[derive(Module, Debug)]
pub struct MbBlock<B: Backend> {
    pub conv_pw: Option<Conv2d<B>>,
    pub bn1: Option<BatchNorm2d<B>>,
    pub conv_dw: Conv2d<B>,
    pub bn2: BatchNorm2d<B>,
    pub se: Option<SqueezeExcite<B>>,
    pub conv_pwl: Conv2d<B>,
    pub bn3: BatchNorm2d<B>,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    has_skip: bool,
}

impl<B: Backend> MbBlock<B> {
    fn forward(&self, x: Tensor<B, 4>, stats: &mut BatchNormStats<B>) -> Tensor<B, 4> {
        let act = |t| self.activation.forward(t);
        let mut y = x.clone();
        if let (Some(conv_pw), Some(bn1)) = (&self.conv_pw, &self.bn1) {
            y = act(bn1.forward(pointwise(conv_pw, y), stats));
        }
        y = act(self.bn2.forward(self.conv_dw.forward(y), stats));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        y = self.bn3.forward(pointwise(&self.conv_pwl, y), stats);
        if self.has_skip {
            y + x
        } else {
            y
        }
    }

    fn absorb(self, reader: &mut StatsReader<B>) -> Self {
        let bn1 = self.bn1.map(|bn| bn.absorb(reader));
        let bn2 = self.bn2.absorb(reader);
        let bn3 = self.bn3.absorb(reader);
        Self { bn1, bn2, bn3, ..self }
    }
}

#[derive(Module, Debug)]
pub struct MbConvNet<B: Backend> {
    pub conv_stem: Conv2d<B>,
    pub bn1: BatchNorm2d<B>,
    pub blocks: Vec<Vec<MbBlock<B>>>,
    pub conv_head: Conv2d<B>,
    pub bn2: BatchNorm2d<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> MbConvNet<B> {
    /// The globally average-pooled features `[batch, head]` (the input of the classifier).
    pub fn forward(&self, pixels: Tensor<B, 4>, stats: &mut BatchNormStats<B>) -> Tensor<B, 2> {
        let mut x = self.activation.forward(self.bn1.forward(self.conv_stem.forward(pixels), stats));
        for block in self.blocks.iter().flatten() {
            x = block.forward(x, stats);
        }
        global_average_pool(self.activation.forward(self.bn2.forward(pointwise(&self.conv_head, x), stats)))
    }

    /// Folds the statistics of one update's forward passes into the running statistics.
    pub fn absorb(self, reader: &mut StatsReader<B>) -> Self {
        let bn1 = self.bn1.absorb(reader);
        let blocks = self.blocks.into_iter().map(|stage| stage.into_iter().map(|b| b.absorb(reader)).collect()).collect();
        let bn2 = self.bn2.absorb(reader);
        Self { bn1, blocks, bn2, ..self }
    }
}
