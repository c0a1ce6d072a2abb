//! The training configuration: a TOML file (`configs/*.toml`) plus `--set key=value` overrides.
//! Every key is required, so a missing key stops the run before it starts and names the key.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::synthetic::SyntheticConfig;
use crate::data::{DatasetSpec, ImageNormalization, Pairing};
use crate::loss::siglip::{SIGLIP_INIT_LOGIT_BIAS, SIGLIP_INIT_LOGIT_SCALE};
use crate::loss::LossConfig;
use crate::model::{DualEncoderConfig, Pooling};
use crate::weights::TowerSource;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub seed: u64,
    pub data: DataSection,
    pub tokenizer: TokenizerSection,
    pub model: ModelSection,
    pub loss: LossConfig,
    pub optim: OptimSection,
    pub eval: EvalSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The dataset: `synthetic` (the built-in one, configured by `[data.synthetic]`) or a spec
    /// `FORMAT:PATH[?key=value&...]`, read with `split=train` for training and `split=val` for validation.
    pub dataset: String,
    /// A spec for validation when the dataset has no `val` split (e.g. KTVIC); empty: the dataset's `val`.
    #[serde(default)]
    pub val: String,
    /// A spec for the test split when the dataset has no `test` split; empty: the dataset's `test`.
    #[serde(default)]
    pub test: String,
    /// How pairs are cut into batches: `random`, `grouped` (all captions of an image together) or
    /// `caption-aware` (no shared caption between two images of a batch).
    #[serde(default)]
    pub sampler: crate::data::loader::Sampler,
    /// Training augmentation of real images: `none` (the evaluation transform), `viclip-ot` or `lowclip`.
    #[serde(default = "default_augment")]
    pub augment: String,
    pub pairing: Pairing,
    /// SIGROT's teacher: `builtin` (the synthetic scenes' attributes) or a teacher `.safetensors` file.
    pub teacher: String,
    pub synthetic: SyntheticSection,
}

/// Mirrors [`SyntheticConfig`] field by field, all required in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSection {
    pub train_images: usize,
    pub val_images: usize,
    pub test_images: usize,
    pub image_size: u32,
    pub captions_per_image: usize,
    pub lang: String,
    pub hard_negative_rate: f64,
}

fn default_augment() -> String {
    "none".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSection {
    /// Train a WordPiece vocabulary of this size on the training captions.
    pub vocab_size: usize,
    pub max_length: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `tiny` or `base`: the towers that `image_tower` / `text_tower` leave to be trained from scratch.
    pub preset: String,
    /// A pretrained image tower, `hf:DIR` or `timm:NAME@DIR`; empty: the preset's, from scratch.
    #[serde(default)]
    pub image_tower: String,
    /// A pretrained text tower, `hf:DIR`, whose tokenizer replaces the trained one; empty: the preset's.
    #[serde(default)]
    pub text_tower: String,
    /// Keep the random initialisation of tensors a tower checkpoint lacks instead of stopping.
    #[serde(default)]
    pub allow_partial: bool,
    pub projection_dim: usize,
    pub image_pooling: Pooling,
    pub text_pooling: Pooling,
    pub dropout: f64,
    /// The side of the square images fed to the model; 0: the pretrained image tower's own,
    /// else `data.synthetic.image_size`. A run's `config.toml` records the resolved value.
    #[serde(default)]
    pub image_size: u32,
    /// Pixel mean and std; absent: the pretrained image tower's own, else ImageNet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<ImageNormalization>,
}

impl ModelSection {
    /// The pretrained towers named by `image_tower` and `text_tower`. Only a fresh run reads
    /// them: resuming, evaluating and exporting use what the run directory recorded.
    pub fn tower_sources(&self) -> Result<(Option<TowerSource>, Option<TowerSource>)> {
        self.parse_tower_sources(true)
    }

    fn parse_tower_sources(&self, must_exist: bool) -> Result<(Option<TowerSource>, Option<TowerSource>)> {
        let parse = |key: &str, value: &str| -> Result<Option<TowerSource>> {
            if value.is_empty() {
                return Ok(None);
            }
            let source: TowerSource = value.parse().with_context(|| format!("model.{key}"))?;
            if must_exist && !source.dir().is_dir() {
                bail!("model.{key} = `{value}`: {} is not a folder", source.dir().display());
            }
            Ok(Some(source))
        };
        let image = parse("image_tower", &self.image_tower)?;
        let text = parse("text_tower", &self.text_tower)?;
        if matches!(text, Some(TowerSource::Timm { .. })) {
            bail!("model.text_tower = `{}`: timm holds image models only; use hf:DIR", self.text_tower);
        }
        Ok((image, text))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    pub beta_2: f32,
    pub eps: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    pub batch_size: usize,
}

impl TrainConfig {
    /// Reads a config file and applies `key=value` overrides (dotted keys, TOML values).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self> {
        let mut value: toml::Table = toml::from_str(text).with_context(|| format!("config file {origin} is not valid TOML"))?;
        for assignment in overrides {
            apply_override(&mut value, assignment).with_context(|| format!("bad override `--set {assignment}`"))?;
        }
        let config: TrainConfig = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("config file {origin}: {}", e.message()))?;
        config.validate().with_context(|| format!("config file {origin}"))?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        for (key, spec) in [("data.dataset", &self.data.dataset), ("data.val", &self.data.val), ("data.test", &self.data.test)] {
            if !spec.is_empty() {
                DatasetSpec::parse(spec).with_context(|| key.to_string())?;
            }
        }
        if self.data.dataset != "synthetic" && self.loss.objective.needs_teacher() && self.data.teacher == "builtin" {
            bail!("data.teacher = `builtin` exists only for the synthetic dataset; write a teacher file with `otclip teacher` or train with loss.objective = \"clip\"");
        }
        if !["none", "viclip-ot", "lowclip"].contains(&self.data.augment.as_str()) {
            bail!("data.augment = `{}`: expected none, viclip-ot or lowclip", self.data.augment);
        }
        self.model.parse_tower_sources(false)?;
        if self.optim.batch_size < 2 {
            bail!("optim.batch_size must be at least 2 for a contrastive loss");
        }
        if self.optim.epochs == 0 {
            bail!("optim.epochs must be at least 1");
        }
        self.loss.sinkhorn.validate().context("loss.sinkhorn")?;
        Ok(())
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    pub fn synthetic(&self) -> SyntheticConfig {
        let s = &self.data.synthetic;
        SyntheticConfig::new()
            .with_seed(self.seed)
            .with_train_images(s.train_images)
            .with_val_images(s.val_images)
            .with_test_images(s.test_images)
            .with_image_size(s.image_size)
            .with_captions_per_image(s.captions_per_image)
            .with_lang(s.lang.clone())
            .with_hard_negative_rate(s.hard_negative_rate)
    }

    /// The training augmentation for real images, if any.
    pub fn augmentation(&self, image_size: u32) -> Option<crate::data::transform::TrainTransform> {
        match self.data.augment.as_str() {
            "viclip-ot" => Some(crate::data::transform::TrainTransform::new().with_size(image_size)),
            "lowclip" => Some(crate::data::transform::TrainTransform::lowclip(image_size)),
            _ => None,
        }
    }

    /// The image size of the preset (from-scratch) image tower.
    pub fn preset_image_size(&self) -> u32 {
        if self.model.image_size > 0 {
            self.model.image_size
        } else {
            self.data.synthetic.image_size
        }
    }

    /// The preset model config for a vocabulary of `vocab_size` tokens.
    pub fn model_config(&self, vocab_size: usize) -> Result<DualEncoderConfig> {
        let m = &self.model;
        let mut config = DualEncoderConfig::preset(&m.preset, vocab_size)?;
        config.projection_dim = m.projection_dim;
        config.vision.pooling = m.image_pooling;
        config.vision.hidden_dropout_prob = m.dropout;
        config.vision.image_size = self.preset_image_size() as usize;
        config.text.pooling = m.text_pooling;
        config.text.hidden_dropout_prob = m.dropout;
        config.text.max_position_embeddings = config.text.max_position_embeddings.max(self.tokenizer.max_length);
        if self.loss.objective.uses_siglip() {
            config.init_logit_scale = SIGLIP_INIT_LOGIT_SCALE;
            config.init_logit_bias = SIGLIP_INIT_LOGIT_BIAS;
        }
        Ok(config)
    }
}

/// Sets `a.b.c = value` in `table`. The tables on the way must exist, so typos are caught.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| anyhow!("expected key=value"))?;
    let (key, raw) = (key.trim(), raw.trim());
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or_else(|| anyhow!("empty key"))?;
    let mut current = table;
    for (depth, part) in path.iter().enumerate() {
        current = current
            .get_mut(*part)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| anyhow!("unknown config key `{}`", parts[..=depth].join(".")))?;
    }
    match current.get_mut(*last) {
        Some(slot) => {
            let value = match (&*slot, value) {
                (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
                (_, value) => value,
            };
            *slot = value;
            Ok(())
        }
        // A key the file leaves to its default; `deny_unknown_fields` still refuses a misspelt one.
        None => {
            current.insert(last.to_string(), value);
            Ok(())
        }
    }
}
