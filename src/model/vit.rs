//! The Vision Transformer image tower, laid out like Hugging Face's `ViTModel`:
//! patch embedding, class token, learned positions, pre-norm blocks, CLS or mean pooling.

use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::attention::{SelfAttention, SelfAttentionConfig};
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
    /// `cls` takes the class token; `mean` averages the patch tokens (timm's `avg`).
    #[config(default = "Pooling::Cls")]
    pub pooling: Pooling,
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

    pub fn init<B: Backend>(&self, device: &B::Device) -> VitModel<B> {
        assert!(
            self.image_size % self.patch_size == 0,
            "image_size {} is not a multiple of patch_size {}",
            self.image_size,
            self.patch_size
        );
        let d = self.hidden_size;
        let std = Initializer::Normal { mean: 0.0, std: 0.02 };
        let embeddings = VitEmbeddings {
            cls_token: std.init([1, 1, d], device),
            position_embeddings: std.init([1, self.num_patches() + 1, d], device),
            patch_embeddings: PatchEmbeddings {
                projection: Conv2dConfig::new([self.num_channels, d], [self.patch_size, self.patch_size])
                    .with_stride([self.patch_size, self.patch_size])
                    .init(device),
            },
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
        };
        let norm = || LayerNormConfig::new(d).with_epsilon(self.layer_norm_eps).init(device);
        let layer = (0..self.num_hidden_layers)
            .map(|_| VitLayer {
                layernorm_before: norm(),
                attention: VitAttention {
                    attention: SelfAttentionConfig::new(d, self.num_attention_heads).init(device),
                    output: DenseOutput { dense: LinearConfig::new(d, d).init(device) },
                },
                layernorm_after: norm(),
                intermediate: DenseOutput { dense: LinearConfig::new(d, self.intermediate_size).init(device) },
                output: DenseOutput { dense: LinearConfig::new(self.intermediate_size, d).init(device) },
                dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            })
            .collect();
        VitModel { embeddings, encoder: VitEncoder { layer }, layernorm: norm(), pooling: self.pooling }
    }
}

/// A module holding one `dense` linear layer, as HF nests them (`intermediate.dense`).
#[derive(Module, Debug)]
pub struct DenseOutput<B: Backend> {
    pub dense: Linear<B>,
}

#[derive(Module, Debug)]
pub struct PatchEmbeddings<B: Backend> {
    pub projection: Conv2d<B>,
}

#[derive(Module, Debug)]
pub struct VitEmbeddings<B: Backend> {
    pub cls_token: Param<Tensor<B, 3>>,
    pub position_embeddings: Param<Tensor<B, 3>>,
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
    pub layernorm_after: LayerNorm<B>,
    pub intermediate: DenseOutput<B>,
    pub output: DenseOutput<B>,
    pub dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct VitEncoder<B: Backend> {
    pub layer: Vec<VitLayer<B>>,
}

#[derive(Module, Debug)]
pub struct VitModel<B: Backend> {
    pub embeddings: VitEmbeddings<B>,
    pub encoder: VitEncoder<B>,
    pub layernorm: LayerNorm<B>,
    #[module(skip)]
    pub pooling: Pooling,
}

impl<B: Backend> VitEmbeddings<B> {
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let patches = self.patch_embeddings.projection.forward(pixel_values);
        let [batch, dim, _, _] = patches.dims();
        let patches = patches.flatten::<3>(2, 3).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([batch as i64, 1, dim as i64]);
        let tokens = Tensor::cat(vec![cls, patches], 1);
        self.dropout.forward(tokens + self.position_embeddings.val())
    }
}

impl<B: Backend> VitLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let attended = self.attention.attention.forward(self.layernorm_before.forward(x.clone()), None);
        let x = x + self.dropout.forward(self.attention.output.dense.forward(attended));
        let hidden = gelu(self.intermediate.dense.forward(self.layernorm_after.forward(x.clone())));
        x + self.dropout.forward(self.output.dense.forward(hidden))
    }
}

impl<B: Backend> VitModel<B> {
    /// The last hidden state `[batch, 1 + patches, hidden]`, after the final layer norm.
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let mut x = self.embeddings.forward(pixel_values);
        for layer in &self.encoder.layer {
            x = layer.forward(x);
        }
        self.layernorm.forward(x)
    }

    /// One vector per image `[batch, hidden]`.
    pub fn embed(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 2> {
        let hidden = self.forward(pixel_values);
        match self.pooling {
            Pooling::Cls => pool(Pooling::Cls, hidden, None),
            Pooling::Mean => {
                let [batch, tokens, dim] = hidden.dims();
                pool(Pooling::Mean, hidden.slice([0..batch, 1..tokens, 0..dim]), None)
            }
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.layernorm.gamma.dims()[0]
    }
}
