//! Pretrained towers from checkpoint folders: the config from [`super::config`], the weights
//! through the key maps, the tokenizer from the folder's files.
//!
//! A tower is named `hf:DIR` (an HF folder; `config.json` says the model type) or `timm:NAME@DIR`
//! (a timm hub folder; NAME may be left out when its `config.json` names the architecture).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use burn::prelude::*;

use super::convnet::ConvTowerSource;
use super::config::{image_config, text_config, ImageTowerConfig};
use super::keymap::{KeyMap, Layout};
use super::load::{apply_tensors, read_tensors, weights_file};
use super::report::LoadReport;
use crate::data::ImageNormalization;
use crate::model::{BertConfig, BertModel, Pooling, VitConfig, VitModel};
use crate::text::CaptionTokenizer;

/// Where a tower's weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TowerSource {
    Hf(PathBuf),
    Timm { name: Option<String>, dir: PathBuf },
    /// A convolutional tower: `torchvision:NAME@PATH`, `timm:NAME@PATH`, `effnet:NAME@PATH`.
    Conv(ConvTowerSource),
}

impl FromStr for TowerSource {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(conv) = ConvTowerSource::parse(s)? {
            Ok(Self::Conv(conv))
        } else if let Some(dir) = s.strip_prefix("hf:") {
            Ok(Self::Hf(dir.into()))
        } else if let Some(rest) = s.strip_prefix("timm:") {
            match rest.split_once('@') {
                Some((name, dir)) => Ok(Self::Timm { name: Some(name.to_string()).filter(|n| !n.is_empty()), dir: dir.into() }),
                None => bail!("`{s}`: a timm tower is written timm:NAME@DIR"),
            }
        } else {
            Ok(Self::Hf(s.into()))
        }
    }
}

/// `hf:DIR` or `timm:NAME@DIR`, the form `FromStr` reads.
impl std::fmt::Display for TowerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hf(dir) => write!(f, "hf:{}", dir.display()),
            Self::Timm { name, dir } => write!(f, "timm:{}@{}", name.as_deref().unwrap_or(""), dir.display()),
            Self::Conv(conv) => conv.fmt(f),
        }
    }
}

impl TowerSource {
    pub fn dir(&self) -> &Path {
        match self {
            Self::Hf(dir) | Self::Timm { dir, .. } => dir,
            Self::Conv(conv) => &conv.path,
        }
    }

    /// Applies an `--arch` hint (`timm:NAME` or `hf`) to a bare folder.
    pub fn with_arch(self, arch: Option<&str>) -> Result<Self> {
        match (arch, self) {
            (None, source) => Ok(source),
            (Some("hf"), source) => Ok(Self::Hf(source.dir().to_path_buf())),
            (Some(arch), source) => match arch.strip_prefix("timm:") {
                Some(name) => Ok(Self::Timm { name: Some(name.to_string()), dir: source.dir().to_path_buf() }),
                None => bail!("unknown --arch `{arch}`: expected hf or timm:NAME (e.g. timm:vit_base_patch16_dinov3)"),
            },
        }
    }
}

/// A text tower with its tokenizer.
pub struct TextTower<B: Backend> {
    pub model: BertModel<B>,
    pub config: BertConfig,
    pub tokenizer: CaptionTokenizer,
    pub report: LoadReport,
}

/// Loads a BERT-family text tower and its tokenizer from an HF folder.
pub fn load_text_tower<B: Backend>(
    dir: &Path,
    pooling: Option<Pooling>,
    max_length: usize,
    allow_partial: bool,
    device: &B::Device,
) -> Result<TextTower<B>> {
    load_text_tower_with(dir, max_length, allow_partial, device, |config| {
        if let Some(pooling) = pooling {
            config.pooling = pooling;
        }
    })
}

/// [`load_text_tower`], with `adjust` changing the config read from the folder (pooling,
/// dropout) before the model is built.
pub fn load_text_tower_with<B: Backend>(
    dir: &Path,
    max_length: usize,
    allow_partial: bool,
    device: &B::Device,
    adjust: impl FnOnce(&mut BertConfig),
) -> Result<TextTower<B>> {
    let mut config = text_config(dir)?;
    let file = weights_file(dir)?;
    let tensors = read_tensors(&file)?;
    config.add_pooling_layer = tensors.keys().any(|k| k.ends_with("pooler.dense.weight"));
    adjust(&mut config);
    if config.pooling == Pooling::Pooler && !config.add_pooling_layer {
        bail!("{}: pooling = pooler, but the checkpoint has no pooler.dense weights", file.display());
    }
    config.validate().map_err(|e| anyhow!("{}: {e}", dir.join("config.json").display()))?;
    let tokenizer = CaptionTokenizer::from_dir(dir, max_length.min(config.max_tokens()))?;
    tokenizer.check_fits(config.vocab_size, &format!("{} (tokenizer) and {} (vocab_size)", dir.display(), dir.join("config.json").display()))?;
    let (model, report) = apply_tensors(config.init::<B>(device), tensors, &KeyMap::new(Layout::Bert), &file, allow_partial)?;
    Ok(TextTower { model, config, tokenizer, report })
}

/// An image tower with the preprocessing its checkpoint expects.
pub struct ImageTower<B: Backend> {
    pub model: VitModel<B>,
    pub config: VitConfig,
    pub report: LoadReport,
    /// The pixel normalisation of the checkpoint (`preprocessor_config.json`, timm's
    /// `pretrained_cfg`, or the family's usual one).
    pub normalization: ImageNormalization,
}

/// Loads an image tower (HF ViT, CLIP vision, DINOv2, or timm DINOv3).
pub fn load_image_tower<B: Backend>(source: &TowerSource, pooling: Option<Pooling>, allow_partial: bool, device: &B::Device) -> Result<ImageTower<B>> {
    load_image_tower_with(source, allow_partial, device, |config| {
        if let Some(pooling) = pooling {
            config.pooling = pooling;
        }
    })
}

/// [`load_image_tower`], with `adjust` changing the config read from the folder before the model is built.
pub fn load_image_tower_with<B: Backend>(
    source: &TowerSource,
    allow_partial: bool,
    device: &B::Device,
    adjust: impl FnOnce(&mut VitConfig),
) -> Result<ImageTower<B>> {
    if let TowerSource::Conv(conv) = source {
        bail!("{conv} is a convolutional tower; this loads ViT towers (the convolutional ones load through weights::convnet)");
    }
    let ImageTowerConfig { vit: mut config, layout, normalization } = image_config(source)?;
    let file = weights_file(source.dir())?;
    let tensors = read_tensors(&file).with_context(|| format!("loading the image tower {}", source.dir().display()))?;
    config.add_pooling_layer = layout == Layout::Vit && tensors.keys().any(|k| k.ends_with("pooler.dense.weight"));
    if layout == Layout::ClipVision && !tensors.contains_key("visual_projection.weight") {
        config.projection_dim = None;
    }
    adjust(&mut config);
    config.validate().map_err(|e| anyhow!("{}: {e}", source.dir().join("config.json").display()))?;
    // transformers' ViTModel has no `pooler_output` without its pooler; DINOv2's and DINOv3's
    // is the normed class token, CLIP's the post-layernormed one.
    if config.pooling == Pooling::Pooler && layout == Layout::Vit && !config.add_pooling_layer {
        bail!("{}: pooling = pooler, but this ViT checkpoint has no pooler.dense weights (transformers gives it no pooler_output)", file.display());
    }
    let (model, report) = apply_tensors(config.init::<B>(device), tensors, &KeyMap::new(layout), &file, allow_partial)?;
    Ok(ImageTower { model, config, report, normalization })
}

/// A dual encoder whose towers both come from pretrained folders; the projections and the
/// temperature start fresh. Training builds its model in `train::init`, which also mixes
/// pretrained and from-scratch towers.
pub fn pretrained_dual_encoder<B: Backend>(
    image: &TowerSource,
    text: &TowerSource,
    projection_dim: usize,
    max_length: usize,
    allow_partial: bool,
    device: &B::Device,
) -> Result<(crate::model::DualEncoder<B>, crate::model::DualEncoderConfig, CaptionTokenizer, [LoadReport; 2])> {
    if matches!(text, TowerSource::Timm { .. } | TowerSource::Conv(_)) {
        bail!("text_tower: `{text}` is an image model; use hf:DIR");
    }
    let vision = load_image_tower::<B>(image, None, allow_partial, device)?;
    let words = load_text_tower::<B>(text.dir(), None, max_length, allow_partial, device)?;
    let config = crate::model::DualEncoderConfig::new(vision.config.clone().into(), words.config.clone(), projection_dim);
    let model = config.with_towers(crate::model::VisionModel::Vit(vision.model), words.model, device);
    Ok((model, config, words.tokenizer, [vision.report, words.report]))
}
