//! The dual encoder: an image tower, a text tower, linear projections and a learnable
//! temperature, named like Hugging Face's `CLIPModel` / `VisionTextDualEncoderModel`.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::{l2_normalize, BertConfig, BertModel, TextBatch, VitConfig, VitModel};

/// ln(1 / 0.07), CLIP's initial temperature.
pub const CLIP_INIT_LOGIT_SCALE: f32 = 2.659_260_1;
/// ln(100): the logit scale is clamped to at most this after every optimiser step.
pub const MAX_LOGIT_SCALE: f32 = 4.605_170_2;

/// The named tower sizes a from-scratch run builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A small ViT and BERT for the built-in dataset on a CPU.
    Tiny,
    /// ViT-B/16 and BERT-base.
    Base,
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::Tiny => "tiny",
            Preset::Base => "base",
        })
    }
}

#[derive(Config, Debug)]
pub struct DualEncoderConfig {
    pub vision: VitConfig,
    pub text: BertConfig,
    /// The shared embedding size both projections map to.
    pub projection_dim: usize,
    #[config(default = 2.659_260_1)]
    pub init_logit_scale: f32,
    /// SigLIP's learnable bias b (unused by the other objectives).
    #[config(default = -10.0)]
    pub init_logit_bias: f32,
}

impl DualEncoderConfig {
    /// The towers of `preset` for a vocabulary of `vocab_size` tokens.
    pub fn preset(preset: Preset, vocab_size: usize) -> Self {
        match preset {
            Preset::Tiny => Self::new(VitConfig::tiny(), BertConfig::tiny(vocab_size), 128),
            Preset::Base => Self::new(VitConfig::base(), BertConfig::base(vocab_size), 768),
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> DualEncoder<B> {
        self.with_towers(self.vision.init(device), self.text.init(device), device)
    }

    /// A dual encoder around given towers (pretrained ones), with fresh projections and temperature.
    /// The towers must match `self.vision` and `self.text`.
    pub fn with_towers<B: Backend>(&self, vision_model: VitModel<B>, text_model: BertModel<B>, device: &B::Device) -> DualEncoder<B> {
        let projection = |from: usize| LinearConfig::new(from, self.projection_dim).with_bias(false).init(device);
        DualEncoder {
            vision_model,
            text_model,
            visual_projection: projection(self.vision.hidden_size),
            text_projection: projection(self.text.hidden_size),
            logit_scale: Param::from_tensor(Tensor::from_floats([self.init_logit_scale], device)),
            logit_bias: Param::from_tensor(Tensor::from_floats([self.init_logit_bias], device)),
        }
    }
}

#[derive(Module, Debug)]
pub struct DualEncoder<B: Backend> {
    pub vision_model: VitModel<B>,
    pub text_model: BertModel<B>,
    pub visual_projection: Linear<B>,
    pub text_projection: Linear<B>,
    /// log of the temperature s; the logits are exp(logit_scale) · x·y.
    pub logit_scale: Param<Tensor<B, 1>>,
    /// SigLIP's bias b.
    pub logit_bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> DualEncoder<B> {
    /// L2-normalised image embeddings `[batch, projection_dim]` from `[batch, 3, H, W]` pixels.
    pub fn encode_image(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 2> {
        l2_normalize(self.visual_projection.forward(self.vision_model.embed(pixel_values)))
    }

    /// L2-normalised text embeddings `[batch, projection_dim]`.
    pub fn encode_text(&self, batch: &TextBatch<B>) -> Tensor<B, 2> {
        l2_normalize(self.text_projection.forward(self.text_model.embed(batch)))
    }

    /// The temperature s = exp(logit_scale), shape `[1]`.
    pub fn scale(&self) -> Tensor<B, 1> {
        self.logit_scale.val().exp()
    }

    /// Clamps the logit scale to at most ln(100), keeping its parameter id (and optimiser state).
    pub fn clamp_logit_scale(mut self) -> Self {
        // Detach so the parameter stays a leaf that the optimiser can find next step.
        self.logit_scale = self.logit_scale.map(|t| {
            let tracked = t.is_require_grad();
            let clamped = t.clamp_max(MAX_LOGIT_SCALE).detach();
            if tracked {
                clamped.require_grad()
            } else {
                clamped
            }
        });
        self
    }
}
