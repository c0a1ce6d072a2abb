//! The pieces the convolutional towers share: convolutions with PyTorch's or TensorFlow's
//! padding, activations, squeeze-and-excitation, and global average pooling.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation;
use otclip_kernels::layer_ops;
use serde::{Deserialize, Serialize};

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvPadding {
    /// `kernel / 2` on every side (PyTorch, torchvision, timm).
    #[default]
    Symmetric,
    /// TensorFlow's "same": the output is ⌈input / stride⌉ and the extra pixel goes to the
    /// bottom and right (timm's `tf_` models, EfficientNet-PyTorch).
    TfSame,
}

/// The activation after a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Relu6,
    /// x·σ(x), also called swish.
    Silu,
}

impl Activation {
    pub fn forward<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Relu => activation::relu(x),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Silu => activation::silu(x),
        }
    }
}

/// A convolution `[in → out]` with a square `kernel`.
pub fn conv<B: Backend>(channels: [usize; 2], kernel: usize, stride: usize, groups: usize, bias: bool, padding: ConvPadding, device: &B::Device) -> Conv2d<B> {
    let padding = match padding {
        ConvPadding::Symmetric => PaddingConfig2d::Explicit(kernel / 2, kernel / 2, kernel / 2, kernel / 2),
        ConvPadding::TfSame if stride == 1 && kernel % 2 == 1 => PaddingConfig2d::Explicit(kernel / 2, kernel / 2, kernel / 2, kernel / 2),
        ConvPadding::TfSame => PaddingConfig2d::Same,
    };
    Conv2dConfig::new(channels, [kernel, kernel]).with_stride([stride, stride]).with_groups(groups).with_bias(bias).with_padding(padding).init(device)
}

/// A 1×1, stride-1, ungrouped convolution as one matrix product over the pixels
/// (`[B·H·W, C_in]·[C_in, C_out]`), through `layer_ops::linear`, which is fused on the CPU: burn's
/// ndarray convolution computes its input gradient with a scalar loop over every channel pair.
/// Other convolutions run as they are.
pub fn pointwise<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [out_channels, in_per_group, kh, kw] = conv.weight.dims();
    if (kh, kw) != (1, 1) || conv.stride != [1, 1] || conv.groups != 1 || conv.dilation != [1, 1] {
        return conv.forward(x);
    }
    let [batch, channels, height, width] = x.dims();
    debug_assert_eq!(channels, in_per_group);
    let pixels = x.permute([0, 2, 3, 1]).reshape([batch * height * width, channels]);
    // A contiguous `[C_in, C_out]` copy (the flatten forces it): burn 0.21's wgpu matmul kernel
    // `double_unit_max_tile_size`, which the autotuner may pick, computes wrong products with a
    // transposed right-hand side (seen on lavapipe at [512, 8]·[8, 32]).
    let weight = conv.weight.val().reshape([out_channels, channels]).transpose().reshape([channels * out_channels]).reshape([channels, out_channels]);
    let y = layer_ops::linear(pixels, weight, conv.bias.as_ref().map(|b| b.val()));
    y.reshape([batch, height, width, out_channels]).permute([0, 3, 1, 2])
}

/// The mean over height and width: `[batch, channels, h, w]` → `[batch, channels]`.
pub fn global_average_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [batch, channels, height, width] = x.dims();
    x.reshape([batch, channels, height * width]).mean_dim(2).reshape([batch, channels])
}

/// Squeeze-and-excitation: a per-channel gate σ(W₂ act(W₁ mean(x))) (timm's `se.conv_reduce`,
/// `se.conv_expand`).
#[derive(Module, Debug)]
pub struct SqueezeExcite<B: Backend> {
    pub conv_reduce: Conv2d<B>,
    pub conv_expand: Conv2d<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> SqueezeExcite<B> {
    pub fn new(channels: usize, reduced: usize, activation: Activation, device: &B::Device) -> Self {
        Self {
            conv_reduce: conv([channels, reduced], 1, 1, 1, true, ConvPadding::Symmetric, device),
            conv_expand: conv([reduced, channels], 1, 1, 1, true, ConvPadding::Symmetric, device),
            activation,
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, channels, _, _] = x.dims();
        let squeezed = global_average_pool(x.clone()).reshape([batch, channels, 1, 1]);
        let gate = activation::sigmoid(pointwise(&self.conv_expand, self.activation.forward(pointwise(&self.conv_reduce, squeezed))));
        x * gate
    }
}
