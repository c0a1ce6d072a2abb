//! The Vision Transformer family, one implementation with config switches, laid out like Hugging
//! Face's `ViTModel` (the key maps for CLIP, DINOv2 and timm live in `crate::weights`):
//! - plain ViT: class token, learned positions, pre-norm blocks, final norm, optional pooler;
//! - CLIP: QuickGELU, `pre_layrnorm`, the final norm on the pooled class token only, a projection;
//! - DINOv2: layer scale, bicubic interpolation of the positions for other image sizes;
//! - DINOv3 (timm): rotary positions on the patch tokens, register tokens, layer scale, avg pooling.

use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use otclip_kernels::layer_ops::gelu;

use super::attention::{linear_tokens, Rope, SelfAttention, SelfAttentionConfig};
use super::norm::{LayerNorm, LayerNormConfig};
use super::{pool, Pooling};

#[derive(Config, Debug)]
pub struct VitConfig {
    pub image_size: usize,
    pub patch_size: usize,
    #[config(default = 3)]
    pub num_channels: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    #[config(default = 0.0)]
    pub hidden_dropout_prob: f64,
    /// `cls` takes the class token; `mean` (timm's `avg`) averages the patch tokens; `pooler` is
    /// transformers' `pooler_output`: HF ViT's pooler (dense + tanh) when the tower has one, else
    /// the class token after the final norm (CLIP's `post_layernorm`, DINOv2, DINOv3).
    #[config(default = "Pooling::Cls")]
    pub pooling: Pooling,
    /// CLIP's `x * sigmoid(1.702 x)` instead of the exact GELU.
    #[config(default = false)]
    pub quick_gelu: bool,
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Whether the patch convolution has a bias (CLIP's has none).
    #[config(default = true)]
    pub patch_bias: bool,
    /// Learned absolute positions for the class and patch tokens (off for rotary models).
    #[config(default = true)]
    pub position_embeddings: bool,
    /// DINOv3's register tokens, placed after the class token.
    #[config(default = 0)]
    pub num_register_tokens: usize,
    /// DINOv3-style rotary embeddings with this period base (timm's `rope_temperature`).
    #[config(default = "None")]
    pub rope_temperature: Option<f64>,
    /// Per-channel layer scale after each residual branch (DINOv2, DINOv3).
    #[config(default = false)]
    pub layer_scale: bool,
    /// CLIP's `pre_layrnorm` after the embeddings.
    #[config(default = false)]
    pub pre_layernorm: bool,
    /// CLIP: the final norm applies to the pooled token only, not the hidden states.
    #[config(default = false)]
    pub norm_pooled_only: bool,
    /// HF ViT's pooler (dense + tanh on the class token).
    #[config(default = false)]
    pub add_pooling_layer: bool,
    /// A bias-free projection head (CLIP's `visual_projection`), used by `embed --project`.
    #[config(default = "None")]
    pub projection_dim: Option<usize>,
}

impl VitConfig {
    /// A ViT small enough to train on a laptop CPU in minutes (48 px, 8 px patches).
    pub fn tiny() -> Self {
        Self::new(48, 8, 96, 3, 3, 384)
    }

    /// ViT-B/16 at 224 px, the size of the DINOv3 and CLIP ViT-B/16 towers.
    pub fn base() -> Self {
        Self::new(224, 16, 768, 12, 12, 3072).with_hidden_dropout_prob(0.1)
    }

    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// The class token plus the register tokens.
    pub fn num_prefix_tokens(&self) -> usize {
        1 + self.num_register_tokens
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> VitModel<B> {
        // A config from a file is validated where it is read; this catches one built in code.
        if let Err(error) = self.validate() {
            panic!("VitConfig: {error}");
        }
        let d = self.hidden_size;
        let std = Initializer::Normal { mean: 0.0, std: 0.02 };
        let embeddings = VitEmbeddings {
            cls_token: std.init([1, 1, d], device),
            register_tokens: (self.num_register_tokens > 0).then(|| std.init([1, self.num_register_tokens, d], device)),
            position_embeddings: self.position_embeddings.then(|| std.init([1, self.num_patches() + 1, d], device)),
            patch_embeddings: PatchEmbeddings {
                projection: Conv2dConfig::new([self.num_channels, d], [self.patch_size, self.patch_size])
                    .with_stride([self.patch_size, self.patch_size])
                    .with_bias(self.patch_bias)
                    .init(device),
            },
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
        };
        let norm = || LayerNormConfig::new(d).with_epsilon(self.layer_norm_eps).init(device);
        let scale = || self.layer_scale.then(|| LayerScale { lambda1: Initializer::Constant { value: 1e-5 }.init([d], device) });
        let layer = (0..self.num_hidden_layers)
            .map(|_| VitLayer {
                layernorm_before: norm(),
                attention: VitAttention {
                    attention: SelfAttentionConfig::new(d, self.num_attention_heads).with_qkv_bias(self.qkv_bias).init(device),
                    output: DenseOutput { dense: LinearConfig::new(d, d).init(device) },
                },
                layer_scale1: scale(),
                layernorm_after: norm(),
                intermediate: DenseOutput { dense: LinearConfig::new(d, self.intermediate_size).init(device) },
                output: DenseOutput { dense: LinearConfig::new(self.intermediate_size, d).init(device) },
                layer_scale2: scale(),
                dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            })
            .collect();
        VitModel {
            embeddings,
            pre_layernorm: self.pre_layernorm.then(norm),
            encoder: VitEncoder { layer },
            layernorm: norm(),
            pooler: self.add_pooling_layer.then(|| DenseOutput { dense: LinearConfig::new(d, d).init(device) }),
            projection: self.projection_dim.map(|p| LinearConfig::new(d, p).with_bias(false).init(device)),
            pooling: self.pooling,
            patch_size: self.patch_size,
            num_attention_heads: self.num_attention_heads,
            quick_gelu: self.quick_gelu,
            rope_temperature: self.rope_temperature,
            norm_pooled_only: self.norm_pooled_only,
        }
    }
}

/// A module holding one `dense` linear layer, as HF nests them (`intermediate.dense`).
#[derive(Module, Debug)]
pub struct DenseOutput<B: Backend> {
    pub dense: Linear<B>,
}

/// A learned per-channel scale (DINOv2's `layer_scale1.lambda1`, timm's `gamma_1`).
#[derive(Module, Debug)]
pub struct LayerScale<B: Backend> {
    pub lambda1: Param<Tensor<B, 1>>,
}

#[derive(Module, Debug)]
pub struct PatchEmbeddings<B: Backend> {
    pub projection: Conv2d<B>,
}

#[derive(Module, Debug)]
pub struct VitEmbeddings<B: Backend> {
    pub cls_token: Param<Tensor<B, 3>>,
    pub register_tokens: Option<Param<Tensor<B, 3>>>,
    pub position_embeddings: Option<Param<Tensor<B, 3>>>,
    pub patch_embeddings: PatchEmbeddings<B>,
    pub dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct VitAttention<B: Backend> {
    pub attention: SelfAttention<B>,
    pub output: DenseOutput<B>,
}

#[derive(Module, Debug)]
pub struct VitLayer<B: Backend> {
    pub layernorm_before: LayerNorm<B>,
    pub attention: VitAttention<B>,
    pub layer_scale1: Option<LayerScale<B>>,
    pub layernorm_after: LayerNorm<B>,
    pub intermediate: DenseOutput<B>,
    pub output: DenseOutput<B>,
    pub layer_scale2: Option<LayerScale<B>>,
    pub dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct VitEncoder<B: Backend> {
    pub layer: Vec<VitLayer<B>>,
}

#[derive(Module, Debug)]
pub struct VitModel<B: Backend> {
    pub embeddings: VitEmbeddings<B>,
    pub pre_layernorm: Option<LayerNorm<B>>,
    pub encoder: VitEncoder<B>,
    /// The final norm (CLIP's `post_layernorm`, timm's `norm`).
    pub layernorm: LayerNorm<B>,
    pub pooler: Option<DenseOutput<B>>,
    pub projection: Option<Linear<B>>,
    #[module(skip)]
    pub pooling: Pooling,
    #[module(skip)]
    pub patch_size: usize,
    #[module(skip)]
    pub num_attention_heads: usize,
    #[module(skip)]
    pub quick_gelu: bool,
    #[module(skip)]
    pub rope_temperature: Option<f64>,
    #[module(skip)]
    pub norm_pooled_only: bool,
}

impl<B: Backend> VitEmbeddings<B> {
    /// `[class, registers, patches]` tokens, with learned positions added when the model has them
    /// (bicubically resized, as DINOv2 does, when the patch grid differs from the trained one).
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let patches = self.patch_embeddings.projection.forward(pixel_values);
        let [batch, dim, rows, cols] = patches.dims();
        let patches = patches.flatten::<3>(2, 3).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([batch as i64, 1, dim as i64]);
        let mut tokens = Tensor::cat(vec![cls, patches], 1);
        if let Some(positions) = &self.position_embeddings {
            tokens = tokens + resize_positions(positions.val(), rows, cols);
        }
        if let Some(registers) = &self.register_tokens {
            let [_, count, _] = registers.dims();
            let registers = registers.val().expand([batch as i64, count as i64, dim as i64]);
            let [_, n, _] = tokens.dims();
            tokens = Tensor::cat(vec![tokens.clone().slice([0..batch, 0..1]), registers, tokens.slice([0..batch, 1..n])], 1);
        }
        self.dropout.forward(tokens)
    }
}

/// Position embeddings `[1, 1 + n², d]` for a `rows × cols` patch grid: unchanged when the grid is
/// the trained square one, otherwise bicubic (half-pixel, as `torch.nn.functional.interpolate`).
fn resize_positions<B: Backend>(positions: Tensor<B, 3>, rows: usize, cols: usize) -> Tensor<B, 3> {
    let [_, n, dim] = positions.dims();
    let side = ((n - 1) as f64).sqrt().round() as usize;
    assert_eq!(side * side, n - 1, "position embeddings of {n} tokens are not a class token plus a square grid");
    if side == rows && side == cols {
        return positions;
    }
    let cls = positions.clone().slice([0..1, 0..1]);
    let grid = positions.slice([0..1, 1..n]).reshape([1, side, side, dim]).permute([0, 3, 1, 2]);
    let options = InterpolateOptions { mode: InterpolateMode::Bicubic, align_corners: false };
    let resized = interpolate(grid, [rows, cols], options).permute([0, 2, 3, 1]).reshape([1, rows * cols, dim]);
    Tensor::cat(vec![cls, resized], 1)
}

impl<B: Backend> VitLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>, rope: Option<&Rope<B>>, quick: bool) -> Tensor<B, 3> {
        let scaled = |scale: &Option<LayerScale<B>>, t: Tensor<B, 3>| match scale {
            Some(s) => t * s.lambda1.val().unsqueeze::<3>(),
            None => t,
        };
        let attended = self.attention.attention.forward_rope(self.layernorm_before.forward(x.clone()), None, rope);
        let x = x + self.dropout.forward(scaled(&self.layer_scale1, linear_tokens(&self.attention.output.dense, attended)));
        let hidden = linear_tokens(&self.intermediate.dense, self.layernorm_after.forward(x.clone()));
        let hidden = if quick { hidden.clone() * sigmoid(hidden * 1.702) } else { gelu(hidden) };
        x + self.dropout.forward(scaled(&self.layer_scale2, linear_tokens(&self.output.dense, hidden)))
    }
}

impl<B: Backend> VitModel<B> {
    /// The last hidden state `[batch, prefix + patches, hidden]`, as the original model returns it:
    /// after the final norm, except for CLIP, whose norm applies to the pooled token only.
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let [_, _, height, width] = pixel_values.dims();
        let rope = self.rope_temperature.map(|temperature| {
            let head_dim = self.hidden_size() / self.num_attention_heads;
            let (rows, cols) = (height / self.patch_size, width / self.patch_size);
            Rope::dinov3(head_dim, temperature, rows, cols, self.num_prefix_tokens(), &pixel_values.device())
        });
        let mut x = self.embeddings.forward(pixel_values);
        if let Some(norm) = &self.pre_layernorm {
            x = norm.forward(x);
        }
        for layer in &self.encoder.layer {
            x = layer.forward(x, rope.as_ref(), self.quick_gelu);
        }
        if self.norm_pooled_only {
            x
        } else {
            self.layernorm.forward(x)
        }
    }

    /// One vector per image `[batch, hidden]`, pooled as configured.
    pub fn embed(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 2> {
        let hidden = self.forward(pixel_values);
        let [batch, tokens, dim] = hidden.dims();
        let pooled = match self.pooling {
            Pooling::Mean => pool(Pooling::Mean, hidden.slice([0..batch, self.num_prefix_tokens()..tokens, 0..dim]), None),
            Pooling::Cls | Pooling::Pooler => pool(Pooling::Cls, hidden, None),
        };
        let pooled = if self.norm_pooled_only { self.layernorm.forward(pooled) } else { pooled };
        // `pooler` is transformers' `pooler_output`: ViT's dense + tanh where the tower has it,
        // else the class token after the final norm (CLIP's post_layernorm, DINOv2, DINOv3).
        match (self.pooling, &self.pooler) {
            (Pooling::Pooler, Some(pooler)) => pooler.dense.forward(pooled).tanh(),
            _ => pooled,
        }
    }

    /// The model's own projection head (CLIP's `visual_projection`), if it has one.
    pub fn project(&self, pooled: Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        self.projection.as_ref().map(|p| p.forward(pooled))
    }

    pub fn num_prefix_tokens(&self) -> usize {
        1 + self.embeddings.register_tokens.as_ref().map_or(0, |r| r.dims()[1])
    }

    pub fn hidden_size(&self) -> usize {
        self.layernorm.gamma.dims()[0]
    }
}
