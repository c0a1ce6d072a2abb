//! The training configuration, typed: each TOML section deserialises into the type that uses it
//! (`[data.synthetic]` into [`SyntheticConfig`], `[loss]` into [`LossConfig`], …), closed choices
//! are enums, and what may be absent is an `Option`. [`TrainConfig::parse`] (in `config_file.rs`)
//! reads the file, applies `--set` overrides and resolves the config once.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::schedule::OneCycleConfig;
use crate::data::loader::{BatchUnit, Sampler};
use crate::data::synthetic::SyntheticConfig;
use crate::data::transform::TrainTransform;
use crate::data::resample::Interpolation;
use crate::data::{DatasetSpec, ImageNormalization, Pairing};
use crate::loss::siglip::{SIGLIP_INIT_LOGIT_BIAS, SIGLIP_INIT_LOGIT_SCALE};
use crate::loss::LossConfig;
use crate::model::checks::{MAX_POSITIONS, MAX_VOCAB, MAX_WIDTH};
pub use super::convnet_section::ConvNetSection;
use crate::model::convnet::ConvNetConfig;
use crate::model::{DualEncoderConfig, HeadConfig, HeadKind, Pooling, Precision, Preset};
use crate::weights::TowerSource;

/// The flagship configuration (`configs/synthetic_vi.toml`), compiled in so examples need no files.
pub const SYNTHETIC_VI_CONFIG: &str = include_str!("../../configs/synthetic_vi.toml");
/// The LowCLIP flagship configuration (`configs/synthetic_az.toml`), compiled in likewise.
pub const SYNTHETIC_AZ_CONFIG: &str = include_str!("../../configs/synthetic_az.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The one seed every random stream of the run derives from (see [`crate::seed`]).
    pub seed: u64,
    pub data: DataSection,
    pub tokenizer: TokenizerSection,
    pub model: ModelSection,
    pub loss: LossConfig,
    pub optim: OptimSection,
    /// Checkpointing (`[train]`); absent: checkpoints at epoch ends, one `best`.
    #[serde(default)]
    pub train: TrainSection,
    pub eval: EvalSection,
}

/// `[train]`: when checkpoints are written and how many are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Also write `last` every this many optimiser steps, mid-epoch (`--resume` continues from
    /// the exact step); absent: at epoch ends only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every_steps: Option<usize>,
    /// Keep the best this many checkpoints by validation t2i R@1: `best`, `best-2`, … (default 1).
    #[serde(default = "default_keep_best")]
    pub keep_best: usize,
    /// Data-parallel training: seconds a worker waits for the others at an exchange before it
    /// stops with an error (default 3600). The others wait there while the leader validates.
    #[serde(default = "default_worker_timeout_s")]
    pub worker_timeout_s: f64,
}

fn default_keep_best() -> usize {
    1
}

fn default_worker_timeout_s() -> f64 {
    3600.0
}

impl Default for TrainSection {
    fn default() -> Self {
        Self { checkpoint_every_steps: None, keep_best: default_keep_best(), worker_timeout_s: default_worker_timeout_s() }
    }
}

impl TrainSection {
    pub fn validate(&self) -> Result<()> {
        if self.checkpoint_every_steps == Some(0) {
            bail!("train.checkpoint_every_steps = 0: expected at least 1 step, or no key for epoch ends only");
        }
        if self.keep_best == 0 {
            bail!("train.keep_best = 0: expected at least 1 (the `best` checkpoint)");
        }
        if !(self.worker_timeout_s.is_finite() && self.worker_timeout_s > 0.0) {
            bail!("train.worker_timeout_s = {}: expected a positive number of seconds", self.worker_timeout_s);
        }
        Ok(())
    }
}

/// Where the training pairs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// The built-in dataset, drawn from the seed (`[data.synthetic]`).
    Synthetic(SyntheticConfig),
    /// A dataset on disk (`data.dataset = "FORMAT:PATH[?key=value&...]"`), read with `split=train`
    /// for training, `split=val` for validation and `split=test` for testing.
    Dataset(DatasetSpec),
}

/// Training augmentation of real images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// The evaluation transform.
    #[default]
    None,
    /// ViCLIP-OT's random resized crop and flip.
    ViclipOt,
    /// LowCLIP's heavier augmentation.
    Lowclip,
}

impl Augment {
    /// The transform for images of side `image_size`, if any.
    pub fn transform(self, image_size: u32) -> Option<TrainTransform> {
        match self {
            Augment::None => None,
            Augment::ViclipOt => Some(TrainTransform::new().with_size(image_size)),
            Augment::Lowclip => Some(TrainTransform::lowclip(image_size)),
        }
    }
}

/// SIGROT's teacher similarity graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Teacher {
    /// The synthetic scenes' own attributes (`"builtin"`).
    Builtin,
    /// A teacher `.safetensors` file written by `otclip teacher`.
    File(PathBuf),
}

impl FromStr for Teacher {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "" => bail!("expected \"builtin\" or the path of a teacher file"),
            "builtin" => Ok(Teacher::Builtin),
            path => Ok(Teacher::File(path.into())),
        }
    }
}

impl fmt::Display for Teacher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Teacher::Builtin => f.write_str("builtin"),
            Teacher::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The `[data]` section, resolved: [`DataFile`] is its shape in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "DataFile", into = "DataFile")]
pub struct DataSection {
    pub source: DataSource,
    /// A spec for validation when the dataset has no `val` split (e.g. KTVIC).
    pub val: Option<DatasetSpec>,
    /// A spec for the test split when the dataset has no `test` split.
    pub test: Option<DatasetSpec>,
    pub sampler: Sampler,
    pub augment: Augment,
    pub pairing: Pairing,
    /// SIGROT's teacher; the built-in one by default on the built-in data.
    pub teacher: Option<Teacher>,
}

/// `[data]` as written: exactly one of `dataset` and `[data.synthetic]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataFile {
    /// A dataset spec `FORMAT:PATH[?key=value&...]`.
    #[serde(default, with = "text_option", skip_serializing_if = "Option::is_none")]
    dataset: Option<DatasetSpec>,
    #[serde(default, with = "text_option", skip_serializing_if = "Option::is_none")]
    val: Option<DatasetSpec>,
    #[serde(default, with = "text_option", skip_serializing_if = "Option::is_none")]
    test: Option<DatasetSpec>,
    /// How pairs are cut into batches: `random`, `grouped` or `caption-aware`.
    #[serde(default)]
    sampler: Sampler,
    /// `none`, `viclip-ot` or `lowclip`.
    #[serde(default)]
    augment: Augment,
    pairing: Pairing,
    /// `builtin` or a teacher `.safetensors` file.
    #[serde(default, with = "text_option", skip_serializing_if = "Option::is_none")]
    teacher: Option<Teacher>,
    /// The built-in dataset's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    synthetic: Option<SyntheticConfig>,
}

impl TryFrom<DataFile> for DataSection {
    type Error = String;
    fn try_from(file: DataFile) -> Result<Self, String> {
        let source = match (file.dataset, file.synthetic) {
            (Some(spec), None) => DataSource::Dataset(spec),
            (None, Some(synthetic)) => DataSource::Synthetic(synthetic),
            (Some(_), Some(_)) => {
                return Err("`dataset` and [data.synthetic] both choose the data: keep one (a dataset spec, or the built-in data)".into())
            }
            (None, None) => return Err("choose the data: `dataset = \"FORMAT:PATH\"`, or a [data.synthetic] table for the built-in data".into()),
        };
        Ok(DataSection { source, val: file.val, test: file.test, sampler: file.sampler, augment: file.augment, pairing: file.pairing, teacher: file.teacher })
    }
}

impl From<DataSection> for DataFile {
    fn from(section: DataSection) -> Self {
        let (dataset, synthetic) = match section.source {
            DataSource::Dataset(spec) => (Some(spec), None),
            DataSource::Synthetic(synthetic) => (None, Some(synthetic)),
        };
        DataFile {
            dataset,
            val: section.val,
            test: section.test,
            sampler: section.sampler,
            augment: section.augment,
            pairing: section.pairing,
            teacher: section.teacher,
            synthetic,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSection {
    /// Train a WordPiece vocabulary of this size on the training captions.
    pub vocab_size: usize,
    /// Captions are truncated to this many tokens.
    pub max_length: usize,
    /// Lower-case the text (BERT's uncased vocabularies, the default), or keep its case as
    /// multilingual BERT's cased vocabulary does (`false`).
    #[serde(default = "lowercase_by_default")]
    pub lowercase: bool,
}

fn lowercase_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `tiny` or `base`: the towers that `image_tower` / `text_tower` leave to be trained from scratch.
    pub preset: Preset,
    /// A pretrained image tower, `hf:DIR` or `timm:NAME@DIR`; absent: the preset's, from scratch.
    #[serde(default, with = "text_option", skip_serializing_if = "Option::is_none")]
    pub image_tower: Option<TowerSource>,
    /// A pretrained text tower, `hf:DIR`, whose tokenizer replaces the trained one; absent: the preset's.
    #[serde(default, with = "text_option", skip_serializing_if = "Option::is_none")]
    pub text_tower: Option<TowerSource>,
    /// Keep the random initialisation of tensors a tower checkpoint lacks instead of stopping.
    #[serde(default)]
    pub allow_partial: bool,
    /// The shared embedding width both projections map to.
    pub projection_dim: usize,
    pub image_pooling: Pooling,
    pub text_pooling: Pooling,
    pub dropout: f64,
    /// The side of the square images fed to the model; absent: the pretrained image tower's own,
    /// else `data.synthetic.image_size`, else the preset's. A run's `config.toml` records the
    /// resolved value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u32>,
    /// Pixel mean and std; absent: the pretrained image tower's own, else ImageNet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<ImageNormalization>,
    /// The evaluation transform's resize filter, `bicubic` or `bilinear`; absent: the
    /// convolutional tower's library's (bilinear for torchvision and EfficientNet-PyTorch), else
    /// bicubic. A run's `config.toml` records the resolved value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolation: Option<Interpolation>,
    /// What the towers compute in while training: `f32` (default), `bf16` or `f16`. The master
    /// weights, the optimiser state, the losses and the Sinkhorn solver stay f32; evaluation
    /// runs in f32.
    #[serde(default)]
    pub precision: Precision,
    /// The image tower's projection head; absent: a bias-free linear layer.
    #[serde(default)]
    pub image_head: HeadSection,
    /// A convolutional image tower instead of the preset's ViT, trained from scratch; with a
    /// convolutional `image_tower` it must name the same network and sets how BatchNorm trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convnet: Option<ConvNetSection>,
    /// The text tower's projection head; absent: a bias-free linear layer.
    #[serde(default)]
    pub text_head: HeadSection,
}

/// `[model.image_head]` / `[model.text_head]`: a tower's projection head.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSection {
    /// `linear` (default), `mlp` (open_clip's: linear, GELU, linear) or `none` (the tower's
    /// width must equal `model.projection_dim`).
    #[serde(default)]
    pub kind: HeadKind,
    /// Whether the head's linear layers have a bias (default false).
    #[serde(default)]
    pub bias: bool,
    /// Dropout on the pooled tower output, before the head (default 0).
    #[serde(default)]
    pub dropout: f64,
}

impl HeadSection {
    pub fn to_config(self) -> HeadConfig {
        HeadConfig::new().with_kind(self.kind).with_bias(self.bias).with_dropout(self.dropout)
    }
}

impl ModelSection {
    /// The pretrained towers named by `image_tower` and `text_tower`, whose folders must exist.
    /// Only a fresh run reads them: resuming, evaluating and exporting use what the run
    /// directory recorded.
    pub fn tower_sources(&self) -> Result<(Option<&TowerSource>, Option<&TowerSource>)> {
        for (key, source) in [("image_tower", &self.image_tower), ("text_tower", &self.text_tower)] {
            if let Some(source @ TowerSource::Conv(conv)) = source {
                if !conv.path.exists() {
                    bail!("model.{key} = `{source}`: {} does not exist", conv.path.display());
                }
                continue;
            }
            if let Some(source) = source.as_ref().filter(|s| !s.dir().is_dir()) {
                bail!("model.{key} = `{source}`: {} is not a folder", source.dir().display());
            }
        }
        Ok((self.image_tower.as_ref(), self.text_tower.as_ref()))
    }
}

impl TokenizerSection {
    pub fn validate(&self) -> Result<()> {
        let least = crate::text::SPECIAL_TOKENS.len() + 1;
        if !(least..=MAX_VOCAB).contains(&self.vocab_size) {
            bail!("key `tokenizer.vocab_size` = {}: expected from {least} (the special tokens and one more) to {MAX_VOCAB} tokens", self.vocab_size);
        }
        if !(2..=MAX_POSITIONS).contains(&self.max_length) {
            bail!("key `tokenizer.max_length` = {}: expected from 2 (room for [CLS] and [SEP]) to {MAX_POSITIONS} tokens", self.max_length);
        }
        Ok(())
    }
}

impl ModelSection {
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_WIDTH).contains(&self.projection_dim) {
            bail!("key `model.projection_dim` = {}: expected a width from 1 to {MAX_WIDTH}", self.projection_dim);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("key `model.dropout` = {}: expected a dropout probability in [0, 1)", self.dropout);
        }
        self.image_head.to_config().validate_dropout("model.image_head")?;
        if let Some(convnet) = &self.convnet {
            let arch = convnet.arch().map_err(|e| anyhow::anyhow!("key `model.convnet`: {e}"))?;
            if let Some(TowerSource::Conv(conv)) = &self.image_tower {
                if conv.family != convnet.name || convnet.width_mult != 1.0 || convnet.depth_mult != 1.0 {
                    bail!("key `model.convnet` names {:?} ×{}/×{}, but `model.image_tower` = `{conv}` holds the weights of another network; name the same one, unscaled", convnet.name, convnet.width_mult, convnet.depth_mult);
                }
            }
            ConvNetConfig::new(arch).validate().map_err(|e| anyhow::anyhow!("key `model.convnet`: {e}"))?;
        }
        self.text_head.to_config().validate_dropout("model.text_head")?;
        if let Some(size) = self.image_size.filter(|s| !(1..=4096).contains(s)) {
            bail!("key `model.image_size` = {size}: expected a side from 1 to 4096 pixels, or no key for the tower's own");
        }
        if let Some(normalization) = &self.normalization {
            let bad = |v: &f32| !v.is_finite();
            if normalization.mean.iter().any(bad) || normalization.std.iter().any(|v| bad(v) || *v <= 0.0) {
                bail!("key `model.normalization` = {normalization:?}: expected finite means and positive, finite standard deviations");
            }
        }
        Ok(())
    }
}

impl EvalSection {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("key `eval.batch_size` = 0: expected at least 1 image per batch");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    pub epochs: usize,
    /// The update that the loss and the transport plan see whole, in `batch_unit`s.
    pub batch_size: usize,
    /// What `batch_size` counts: `pairs` (default) or `images`, each with all its captions
    /// (the paper's collation; needs `data.sampler = "grouped"`).
    #[serde(default)]
    pub batch_unit: BatchUnit,
    /// Pairs encoded at once through GradCache; absent: the whole update at once. The
    /// gradients are the same either way; a chunk needs the memory of `chunk_size` pairs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<usize>,
    /// The peak learning rate of the towers (the backbones), after warm-up.
    pub lr: f64,
    /// The peak learning rate of the heads: the projections, the temperature and the bias;
    /// absent: `lr`. It follows the same schedule, scaled by `head_lr / lr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_lr: Option<f64>,
    /// The learning rate at the end of the cosine decay (default 0).
    #[serde(default)]
    pub min_lr: f64,
    /// Optimiser steps of linear warm-up before the cosine decay (default 0).
    #[serde(default)]
    pub warmup_steps: usize,
    /// The recipe's schedule, in place of `warmup_steps` and `min_lr`: whole epochs of linear
    /// warm-up, then PyTorch's one-cycle cosine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_cycle: Option<OneCycleConfig>,
    /// AdamW's decoupled weight decay (never on norms, biases, embeddings, the temperature or
    /// the bias).
    pub weight_decay: f32,
    /// AdamW's β1.
    #[serde(default = "default_beta_1")]
    pub beta_1: f32,
    /// AdamW's β2.
    pub beta_2: f32,
    /// AdamW's ε.
    pub eps: f32,
    /// Clips the gradients to this global L2 norm (the recipe: 1.0); absent: no clipping. The
    /// norm before clipping is logged every step as `grad_norm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

fn default_beta_1() -> f32 {
    0.9
}

impl OptimSection {
    /// Checks what no single key's type can.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("optim.epochs must be at least 1");
        }
        if self.batch_size < 2 && self.batch_unit == BatchUnit::Pairs {
            bail!("optim.batch_size = {}: expected at least 2 pairs per update, as a contrastive loss needs", self.batch_size);
        }
        if self.batch_size == 0 {
            bail!("optim.batch_size = 0: expected at least 1 image per update");
        }
        if self.chunk_size == Some(0) {
            bail!("optim.chunk_size = 0: expected at least 1 pair per chunk, or no chunk_size to encode the whole update at once");
        }
        for (key, value) in [("lr", Some(self.lr)), ("head_lr", self.head_lr), ("min_lr", Some(self.min_lr))] {
            if let Some(value) = value.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                bail!("optim.{key} = {value}: expected a finite learning rate of at least 0");
            }
        }
        if let Some(one_cycle) = &self.one_cycle {
            one_cycle.validate()?;
            if one_cycle.warmup_epochs >= self.epochs {
                bail!("optim.one_cycle.warmup_epochs = {}: expected fewer than optim.epochs = {}", one_cycle.warmup_epochs, self.epochs);
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("key `optim.weight_decay` = {}: expected a finite decay of at least 0", self.weight_decay);
        }
        for (key, value) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&value) {
                bail!("key `optim.{key}` = {value}: expected a decay rate in [0, 1)");
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            bail!("key `optim.eps` = {}: expected a positive, finite epsilon", self.eps);
        }
        if let Some(norm) = self.clip_norm.filter(|n| !(n.is_finite() && *n > 0.0)) {
            bail!("optim.clip_norm = {norm}: expected a positive norm, or no clip_norm for none");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Images (and captions) embedded at once.
    pub batch_size: usize,
}

impl TrainConfig {
    /// The built-in dataset's parameters, when the run trains on it.
    pub fn synthetic(&self) -> Option<&SyntheticConfig> {
        match &self.data.source {
            DataSource::Synthetic(synthetic) => Some(synthetic),
            DataSource::Dataset(_) => None,
        }
    }

    /// The training augmentation for real images, if any.
    pub fn augmentation(&self, image_size: u32) -> Option<TrainTransform> {
        self.data.augment.transform(image_size)
    }

    /// The image size of the preset (from-scratch) image tower.
    pub fn preset_image_size(&self) -> u32 {
        let preset = || DualEncoderConfig::preset(self.model.preset, 1).vision.image_size() as u32;
        self.model.image_size.or(self.synthetic().map(|s| s.image_size)).unwrap_or_else(preset)
    }

    /// The preset model config for a vocabulary of `vocab_size` tokens, with the `[model]` and
    /// `[loss]` choices applied.
    pub fn model_config(&self, vocab_size: usize) -> DualEncoderConfig {
        let m = &self.model;
        let mut config = DualEncoderConfig::preset(m.preset, vocab_size);
        config.projection_dim = m.projection_dim;
        config.image_head = m.image_head.to_config();
        config.text_head = m.text_head.to_config();
        if let Some(vit) = config.vision.vit_mut() {
            vit.pooling = m.image_pooling;
            // A from-scratch tower with `pooler` pooling gets the pooler it pools with (HF ViT's and BERT's).
            vit.add_pooling_layer = m.image_pooling == Pooling::Pooler;
            vit.hidden_dropout_prob = m.dropout;
        }
        if let Some(convnet) = &m.convnet {
            // Checked by `ModelSection::validate`.
            if let Ok(arch) = convnet.arch() {
                config.vision = ConvNetConfig::new(arch).with_batch_norm(convnet.batch_norm).into();
            }
        }
        config.vision.set_image_size(self.preset_image_size() as usize);
        config.text.pooling = m.text_pooling;
        config.text.add_pooling_layer = m.text_pooling == Pooling::Pooler;
        config.text.hidden_dropout_prob = m.dropout;
        config.text.max_position_embeddings = config.text.max_position_embeddings.max(self.tokenizer.max_length);
        if self.loss.objective().uses_siglip() {
            config.init_logit_scale = SIGLIP_INIT_LOGIT_SCALE;
            config.init_logit_bias = SIGLIP_INIT_LOGIT_BIAS;
        }
        config
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

/// Serde for an optional value written as its text (`FromStr` / `Display`).
mod text_option {
    use std::fmt;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: fmt::Display, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err = anyhow::Error>,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map(Some).map_err(|e: anyhow::Error| serde::de::Error::custom(format!("`{text}`: {e:#}")))
    }
}
