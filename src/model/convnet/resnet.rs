//! ResNet (torchvision's, also timm's `resnet*`): a 7×7 stem, max pooling, four stages of basic
//! or bottleneck blocks with the stride on the 3×3 convolution (ResNet v1.5). Field names follow
//! the checkpoints (`layer1.0.conv1.weight`); `downsample.0`/`downsample.1` load into
//! `downsample.conv`/`downsample.bn`.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::module::max_pool2d;
use serde::{Deserialize, Serialize};

use super::layers::{conv, global_average_pool, pointwise, Activation, ConvPadding};
use crate::model::batch_norm::{BatchNorm2d, BatchNorm2dConfig, BatchNormStats, StatsReader};

/// The residual block of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResNetBlock {
    /// Two 3×3 convolutions (ResNet-18, -34).
    Basic,
    /// 1×1, 3×3, 1×1 with four times the planes out (ResNet-50, -101, -152).
    Bottleneck,
}

impl ResNetBlock {
    fn expansion(self) -> usize {
        match self {
            ResNetBlock::Basic => 1,
            ResNetBlock::Bottleneck => 4,
        }
    }
}

#[derive(Config, Debug, PartialEq)]
pub struct ResNetConfig {
    /// `basic` or `bottleneck`.
    pub block: ResNetBlock,
    /// Blocks in each of the four stages (ResNet-50: `[3, 4, 6, 3]`).
    pub layers: [usize; 4],
    /// The stem's width and the first stage's planes; the stages have 1, 2, 4 and 8 times it.
    #[config(default = 64)]
    pub width: usize,
    /// Groups of the 3×3 convolutions (ResNeXt).
    #[config(default = 1)]
    pub groups: usize,
    /// Channels per group, over 64, scale a bottleneck's inner width (Wide ResNet: 128).
    #[config(default = 64)]
    pub width_per_group: usize,
    /// BatchNorm epsilon.
    #[config(default = 1e-5)]
    pub bn_eps: f64,
    /// BatchNorm momentum (PyTorch's convention).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl ResNetConfig {
    /// The pooled feature width: 8 · width · expansion (2048 for ResNet-50).
    pub fn output_width(&self) -> usize {
        8 * self.width * self.block.expansion()
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let bn = |channels: usize| BatchNorm2dConfig::new(channels).with_epsilon(self.bn_eps).with_momentum(self.bn_momentum).init(device);
        let pad = ConvPadding::Symmetric;
        let expansion = self.block.expansion();
        let mut inplanes = self.width;
        let mut stages = Vec::with_capacity(4);
        for (stage, &blocks) in self.layers.iter().enumerate() {
            let planes = self.width << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            let stage_blocks = (0..blocks)
                .map(|i| {
                    let stride = if i == 0 { stride } else { 1 };
                    let out = planes * expansion;
                    let downsample = (i == 0 && (stride != 1 || inplanes != out))
                        .then(|| Downsample { conv: conv([inplanes, out], 1, stride, 1, false, pad, device), bn: bn(out) });
                    let block = match self.block {
                        ResNetBlock::Basic => ResBlock {
                            conv1: conv([inplanes, planes], 3, stride, 1, false, pad, device),
                            bn1: bn(planes),
                            conv2: conv([planes, planes], 3, 1, 1, false, pad, device),
                            bn2: bn(planes),
                            conv3: None,
                            bn3: None,
                            downsample,
                        },
                        ResNetBlock::Bottleneck => {
                            let inner = planes * self.width_per_group / 64 * self.groups;
                            ResBlock {
                                conv1: conv([inplanes, inner], 1, 1, 1, false, pad, device),
                                bn1: bn(inner),
                                conv2: conv([inner, inner], 3, stride, self.groups, false, pad, device),
                                bn2: bn(inner),
                                conv3: Some(conv([inner, out], 1, 1, 1, false, pad, device)),
                                bn3: Some(bn(out)),
                                downsample,
                            }
                        }
                    };
                    inplanes = out;
                    block
                })
                .collect::<Vec<_>>();
            stages.push(stage_blocks);
        }
        let [layer1, layer2, layer3, layer4]: [Vec<ResBlock<B>>; 4] = stages.try_into().unwrap_or_else(|_| unreachable!("four stages"));
        ResNet { conv1: conv([3, self.width], 7, 2, 1, false, pad, device), bn1: bn(self.width), layer1, layer2, layer3, layer4 }
    }
}

/// A 1×1 convolution and BatchNorm matching the residual to the block's output.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm2d<B>,
}

/// A basic (no `conv3`) or bottleneck block.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm2d<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm2d<B>,
    pub conv3: Option<Conv2d<B>>,
    pub bn3: Option<BatchNorm2d<B>>,
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> ResBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>, stats: &mut BatchNormStats<B>) -> Tensor<B, 4> {
        let relu = |t| Activation::Relu.forward(t);
        let mut y = relu(self.bn1.forward(pointwise(&self.conv1, x.clone()), stats));
        y = self.bn2.forward(self.conv2.forward(y), stats);
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            y = bn3.forward(pointwise(conv3, relu(y)), stats);
        }
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(pointwise(&d.conv, x), stats),
            None => x,
        };
        relu(y + identity)
    }

    fn absorb(self, reader: &mut StatsReader<B>) -> Self {
        let bn1 = self.bn1.absorb(reader);
        let bn2 = self.bn2.absorb(reader);
        let bn3 = self.bn3.map(|bn| bn.absorb(reader));
        let downsample = self.downsample.map(|d| Downsample { bn: d.bn.absorb(reader), ..d });
        Self { bn1, bn2, bn3, downsample, ..self }
    }
}

#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm2d<B>,
    pub layer1: Vec<ResBlock<B>>,
    pub layer2: Vec<ResBlock<B>>,
    pub layer3: Vec<ResBlock<B>>,
    pub layer4: Vec<ResBlock<B>>,
}

impl<B: Backend> ResNet<B> {
    /// The globally average-pooled features `[batch, output_width]` (the input of torchvision's `fc`).
    pub fn forward(&self, pixels: Tensor<B, 4>, stats: &mut BatchNormStats<B>) -> Tensor<B, 2> {
        let x = Activation::Relu.forward(self.bn1.forward(self.conv1.forward(pixels), stats));
        let mut x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4) {
            x = block.forward(x, stats);
        }
        global_average_pool(x)
    }

    /// Folds the statistics of one update's forward passes into the running statistics.
    pub fn absorb(self, reader: &mut StatsReader<B>) -> Self {
        let bn1 = self.bn1.absorb(reader);
        let mut stage = |blocks: Vec<ResBlock<B>>| blocks.into_iter().map(|b| b.absorb(reader)).collect::<Vec<_>>();
        let (layer1, layer2, layer3, layer4) = (stage(self.layer1), stage(self.layer2), stage(self.layer3), stage(self.layer4));
        Self { bn1, layer1, layer2, layer3, layer4, ..self }
    }
}
