//! The dual encoder: an image tower, a text tower, a projection head on each (linear, MLP or
//! none) and a learnable temperature, named like Hugging Face's `CLIPModel` / `VisionTextDualEncoderModel`.

use anyhow::{anyhow, Result};
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::FloatDType;

use super::head::{project, HeadConfig, HeadDropout, HeadLayers, MlpHead};
use super::precision::CastParams;
use super::batch_norm::BatchNormStats;
use super::convnet::ConvTower;
use super::vision::{VisionConfig, VisionModel};
use super::{in_dtype_of, l2_normalize, BertConfig, BertModel, TextBatch, VitConfig, VitModel};

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
    /// The image tower: a ViT (written as its config) or `{"convnet": ...}`.
    pub vision: VisionConfig,
    pub text: BertConfig,
    /// The shared embedding size both projections map to.
    pub projection_dim: usize,
    #[config(default = 2.659_260_1)]
    pub init_logit_scale: f32,
    /// SigLIP's learnable bias b (unused by the other objectives).
    #[config(default = -10.0)]
    pub init_logit_bias: f32,
    /// The image tower's projection head (default: a bias-free linear layer).
    #[config(default = "HeadConfig::new()")]
    pub image_head: HeadConfig,
    /// The text tower's projection head (default: a bias-free linear layer).
    #[config(default = "HeadConfig::new()")]
    pub text_head: HeadConfig,
}

impl DualEncoderConfig {
    /// The towers of `preset` for a vocabulary of `vocab_size` tokens.
    pub fn preset(preset: Preset, vocab_size: usize) -> Self {
        match preset {
            Preset::Tiny => Self::new(VitConfig::tiny().into(), BertConfig::tiny(vocab_size), 128),
            Preset::Base => Self::new(VitConfig::base().into(), BertConfig::base(vocab_size), 768),
        }
    }

    /// Checks the heads against the towers' widths.
    pub fn validate(&self) -> Result<()> {
        if self.projection_dim == 0 {
            anyhow::bail!("model.projection_dim = 0: expected an embedding width of at least 1");
        }
        self.image_head.validate("model.image_head", self.vision.width(), self.projection_dim)?;
        self.text_head.validate("model.text_head", self.text.hidden_size, self.projection_dim)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> DualEncoder<B> {
        self.with_towers(self.vision.init(device), self.text.init(device), device)
    }

    /// A dual encoder around given towers (pretrained ones), with fresh heads and temperature.
    /// The towers must match `self.vision` and `self.text`; call [`Self::validate`] first.
    pub fn with_towers<B: Backend>(&self, vision: VisionModel<B>, text_model: BertModel<B>, device: &B::Device) -> DualEncoder<B> {
        let image = self.image_head.init(self.vision.width(), self.projection_dim, device);
        let (vision_model, image_model) = match vision {
            VisionModel::Vit(model) => (Some(model), None),
            VisionModel::ConvNet(model) => (None, Some(model)),
        };
        let text = self.text_head.init(self.text.hidden_size, self.projection_dim, device);
        let HeadLayers { dropout: visual_dropout, linear: visual_projection, mlp: visual_mlp } = image;
        let HeadLayers { dropout: text_dropout, linear: text_projection, mlp: text_mlp } = text;
        DualEncoder {
            vision_model,
            image_model,
            text_model,
            visual_projection,
            text_projection,
            logit_scale: Param::from_tensor(Tensor::from_floats([self.init_logit_scale], device)),
            logit_bias: Param::from_tensor(Tensor::from_floats([self.init_logit_bias], device)),
            visual_mlp,
            text_mlp,
            visual_dropout,
            text_dropout,
        }
    }

    /// Reads a `model.json` (or the `otclip` section of an export's `config.json`). One written
    /// before the heads were configurable gets the head it was trained with: bias-free linear.
    pub fn from_json(mut value: serde_json::Value, origin: &std::path::Path) -> Result<Self> {
        if let Some(object) = value.as_object_mut() {
            for key in ["image_head", "text_head"] {
                if !object.contains_key(key) {
                    object.insert(key.into(), serde_json::to_value(HeadConfig::new())?);
                }
            }
        }
        serde_json::from_value(value).map_err(|e| anyhow!("{}: not an otclip model config: {e}", origin.display()))
    }
}

#[derive(Module, Debug)]
pub struct DualEncoder<B: Backend> {
    /// The image tower when it is a ViT (the record of a ViT model is unchanged by the option).
    pub vision_model: Option<VitModel<B>>,
    /// The image tower when it is convolutional.
    pub image_model: Option<ConvTower<B>>,
    pub text_model: BertModel<B>,
    /// The image head's layer when it is linear.
    pub visual_projection: Option<Linear<B>>,
    /// The text head's layer when it is linear.
    pub text_projection: Option<Linear<B>>,
    /// log of the temperature s; the logits are exp(logit_scale) · x·y.
    pub logit_scale: Param<Tensor<B, 1>>,
    /// SigLIP's bias b.
    pub logit_bias: Param<Tensor<B, 1>>,
    /// The image head's layers when it is an MLP.
    pub visual_mlp: Option<MlpHead<B>>,
    /// The text head's layers when it is an MLP.
    pub text_mlp: Option<MlpHead<B>>,
    /// Dropout before the image head, when it has any.
    pub visual_dropout: Option<HeadDropout<B>>,
    /// Dropout before the text head, when it has any.
    pub text_dropout: Option<HeadDropout<B>>,
}

impl<B: Backend> DualEncoder<B> {
    /// L2-normalised image embeddings `[batch, projection_dim]` from `[batch, 3, H, W]` pixels,
    /// in the float type of the temperature (f32 also when the towers compute in bf16 or f16).
    pub fn encode_image(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 2> {
        self.encode_image_with_stats(pixel_values).0
    }

    /// [`Self::encode_image`], and the BatchNorm statistics the pass used (none for a ViT, an
    /// evaluation pass or a frozen tower), for [`Self::absorb_batch_norm`].
    pub fn encode_image_with_stats(&self, pixel_values: Tensor<B, 4>) -> (Tensor<B, 2>, BatchNormStats<B>) {
        let (pooled, stats) = self.image_features(pixel_values);
        let projected = project(pooled, self.visual_dropout.as_ref(), self.visual_projection.as_ref(), self.visual_mlp.as_ref());
        (l2_normalize(in_dtype_of(projected, &self.logit_scale.val())), stats)
    }

    /// The image tower's pooled features `[batch, width]`, before the head.
    pub fn image_features(&self, pixel_values: Tensor<B, 4>) -> (Tensor<B, 2>, BatchNormStats<B>) {
        match (&self.vision_model, &self.image_model) {
            (Some(vit), _) => (vit.embed(pixel_values), BatchNormStats::collecting(false)),
            (None, Some(conv)) => conv.forward(pixel_values),
            (None, None) => unreachable!("a dual encoder is built with one image tower"),
        }
    }

    /// Folds one update's BatchNorm statistics into the running statistics.
    pub fn absorb_batch_norm(mut self, stats: BatchNormStats<B>) -> Self {
        if !stats.is_empty() {
            self.image_model = self.image_model.map(|tower| tower.absorb(stats));
        }
        self
    }

    /// L2-normalised text embeddings `[batch, projection_dim]`, in the temperature's float type.
    pub fn encode_text(&self, batch: &TextBatch<B>) -> Tensor<B, 2> {
        let pooled = self.text_model.embed(batch);
        let projected = project(pooled, self.text_dropout.as_ref(), self.text_projection.as_ref(), self.text_mlp.as_ref());
        l2_normalize(in_dtype_of(projected, &self.logit_scale.val()))
    }

    /// The same model with its towers and heads computing in `dtype` (the temperature and bias
    /// stay as they are), cast inside the autodiff graph: the gradients of the copy's
    /// computations reach this model's parameters. Feed it pixels in `dtype`.
    pub fn in_precision(&self, dtype: FloatDType) -> Self {
        let mut cast = CastParams(dtype);
        let model = self.clone();
        Self {
            vision_model: Module::map(model.vision_model, &mut cast),
            image_model: Module::map(model.image_model, &mut cast),
            text_model: model.text_model.map(&mut cast),
            visual_projection: Module::map(model.visual_projection, &mut cast),
            text_projection: Module::map(model.text_projection, &mut cast),
            visual_mlp: Module::map(model.visual_mlp, &mut cast),
            text_mlp: Module::map(model.text_mlp, &mut cast),
            ..model
        }
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
