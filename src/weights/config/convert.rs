//! From checkpoint configs to otclip's: the one place that knows how an HF or timm config maps
//! onto [`BertConfig`] and [`VitConfig`], which key layout its weights use, and which pixel
//! normalisation its images need.

use std::path::Path;

use anyhow::{anyhow, bail, Result};

use super::hf::{
    HfBertConfig, HfClipConfig, HfClipVisionConfig, HfDinov2Config, HfHeader, HfModelType, HfPreprocessorConfig, HfVitConfig, HiddenAct,
    PositionEmbeddingType, SentenceTransformersPooling,
};
use super::timm::TimmConfig;
use super::JsonFile;
use crate::data::ImageNormalization;
use crate::model::{BertConfig, ConfigValueError, Pooling, VitConfig};
use crate::weights::keymap::Layout;
use crate::weights::towers::TowerSource;

/// What an image tower folder's configs say.
#[derive(Debug)]
pub struct ImageTowerConfig {
    /// The tower's config.
    pub vit: VitConfig,
    /// The key layout of its weights.
    pub layout: Layout,
    /// The pixel normalisation it was trained with.
    pub normalization: ImageNormalization,
}

/// The BERT-family config of an HF folder (`bert`, `roberta`, `xlm-roberta`, `camembert`), with
/// the pooling sentence-transformers declares (mean otherwise).
pub fn text_config(dir: &Path) -> Result<BertConfig> {
    let file = JsonFile::config_of(dir)?;
    let model_type = file.parse::<HfHeader>()?.model_type;
    let roberta = match model_type {
        Some(HfModelType::Bert) => false,
        Some(HfModelType::Roberta | HfModelType::XlmRoberta | HfModelType::Camembert | HfModelType::Phobert) => true,
        other => bail!("{}: {} is not a BERT-family text model (bert, roberta, xlm-roberta)", file.path().display(), describe(other)),
    };
    let mut config = file.parse::<HfBertConfig>()?.to_bert(roberta, file.path())?;
    config.pooling = match JsonFile::read_if_present(&dir.join("1_Pooling/config.json"))? {
        Some(file) => file.parse::<SentenceTransformersPooling>()?.pooling(),
        None => None,
    }
    .unwrap_or(Pooling::Mean);
    config.validate().map_err(|e| anyhow!("{}: {e}", file.path().display()))?;
    Ok(config)
}

/// The ViT-family config, key layout and normalisation of an image tower folder: HF `vit`,
/// `clip`, `clip_vision_model`, `dinov2`, or a timm folder (named by the source, or by the
/// `architecture` its `config.json` declares).
pub fn image_config(source: &TowerSource) -> Result<ImageTowerConfig> {
    let dir = source.dir();
    let file = JsonFile::config_of(dir)?;
    match source {
        TowerSource::Timm { name, .. } => return checked_timm(file.parse::<TimmConfig>()?.to_image_tower(name.as_deref(), file.path())?, file.path()),
        TowerSource::Hf(_) if file.has_key("architecture") => return checked_timm(file.parse::<TimmConfig>()?.to_image_tower(None, file.path())?, file.path()),
        TowerSource::Hf(_) => {}
        TowerSource::Conv(conv) => bail!("{conv} is a convolutional tower, not a ViT folder"),
    }
    let origin = file.path();
    let model_type = file.parse::<HfHeader>()?.model_type;
    let (vit, layout, normalization) = match model_type {
        Some(HfModelType::Vit) => (file.parse::<HfVitConfig>()?.to_vit(origin)?, Layout::Vit, ImageNormalization::IMAGENET),
        Some(HfModelType::Clip) => {
            let clip = file.parse::<HfClipConfig>()?;
            (clip.vision_config.to_vit(clip.projection_dim, "vision_config.hidden_act", origin)?, Layout::ClipVision, ImageNormalization::CLIP)
        }
        Some(HfModelType::ClipVisionModel) => {
            let vision = file.parse::<HfClipVisionConfig>()?;
            (vision.to_vit(vision.projection_dim, "hidden_act", origin)?, Layout::ClipVision, ImageNormalization::CLIP)
        }
        Some(HfModelType::Dinov2) => (file.parse::<HfDinov2Config>()?.to_vit(origin)?, Layout::Dinov2, ImageNormalization::IMAGENET),
        other => bail!(
            "{}: {} is not a supported image tower (vit, clip, clip_vision_model, dinov2, or a timm folder)",
            origin.display(),
            describe(other)
        ),
    };
    // DINOv2's MLP width is written as `mlp_ratio`; CLIP's keys sit under `vision_config`.
    let rename = |e: ConfigValueError| match (model_type, e.key.as_str()) {
        (Some(HfModelType::Dinov2), "intermediate_size") => ConfigValueError { key: "mlp_ratio".into(), ..e },
        (Some(HfModelType::Clip), _) => e.prefixed("vision_config."),
        _ => e,
    };
    vit.validate().map_err(|e| anyhow!("{}: {}", origin.display(), rename(e)))?;
    let preprocessor = match JsonFile::read_if_present(&dir.join("preprocessor_config.json"))? {
        Some(file) => file.parse::<HfPreprocessorConfig>()?,
        None => HfPreprocessorConfig::default(),
    };
    Ok(ImageTowerConfig { vit, layout, normalization: preprocessor.normalization().unwrap_or(normalization) })
}

/// A timm tower's config, checked, with errors in timm's key names.
fn checked_timm(tower: ImageTowerConfig, origin: &Path) -> Result<ImageTowerConfig> {
    let timm_key = |key: &str| match key {
        "image_size" => "model_args.img_size",
        "patch_size" => "model_args.patch_size",
        "hidden_size" => "model_args.embed_dim",
        "num_hidden_layers" => "model_args.depth",
        "num_attention_heads" => "model_args.num_heads",
        "intermediate_size" => "model_args.mlp_ratio",
        "num_register_tokens" => "model_args.num_reg_tokens",
        "rope_temperature" => "model_args.rope_temperature",
        _ => "model_args",
    };
    tower.vit.validate().map_err(|e| anyhow!("{}: {}", origin.display(), ConfigValueError { key: timm_key(&e.key).into(), ..e }))?;
    Ok(tower)
}

fn describe(model_type: Option<HfModelType>) -> String {
    match model_type {
        Some(model_type) => format!("model_type `{}`", model_type.name()),
        None => "a config.json without model_type".to_string(),
    }
}

/// An error unless the tower family runs `act`.
fn ensure_act(act: HiddenAct, supported: &[HiddenAct], key: &str, origin: &Path) -> Result<()> {
    if !supported.contains(&act) {
        let names: Vec<&str> = supported.iter().map(|a| a.name()).collect();
        bail!("{}: {key} `{}` is not supported here (expected {})", origin.display(), act.name(), names.join(" or "));
    }
    Ok(())
}

impl HfBertConfig {
    /// otclip's config; `roberta` for the RoBERTa family's position ids and padding default.
    pub fn to_bert(&self, roberta: bool, origin: &Path) -> Result<BertConfig> {
        ensure_act(self.hidden_act, &[HiddenAct::Gelu], "hidden_act", origin)?;
        if self.position_embedding_type != PositionEmbeddingType::Absolute {
            bail!("{}: position_embedding_type `{}` is not supported (expected absolute)", origin.display(), self.position_embedding_type.name());
        }
        Ok(BertConfig::new(self.vocab_size, self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.intermediate_size)
            .with_max_position_embeddings(self.max_position_embeddings)
            .with_type_vocab_size(self.type_vocab_size)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_pad_token_id(self.pad_token_id.unwrap_or(if roberta { 1 } else { 0 }))
            .with_roberta_positions(roberta))
    }
}

impl HfVitConfig {
    pub fn to_vit(&self, origin: &Path) -> Result<VitConfig> {
        ensure_act(self.hidden_act, &[HiddenAct::Gelu], "hidden_act", origin)?;
        Ok(VitConfig::new(self.image_size, self.patch_size, self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.intermediate_size)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_qkv_bias(self.qkv_bias))
    }
}

impl HfClipVisionConfig {
    /// otclip's config, with a projection head of `projection_dim`; `act_key` names `hidden_act`
    /// in errors.
    pub fn to_vit(&self, projection_dim: Option<usize>, act_key: &str, origin: &Path) -> Result<VitConfig> {
        ensure_act(self.hidden_act, &[HiddenAct::QuickGelu, HiddenAct::Gelu], act_key, origin)?;
        Ok(VitConfig::new(self.image_size, self.patch_size, self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.intermediate_size)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_quick_gelu(self.hidden_act == HiddenAct::QuickGelu)
            .with_patch_bias(false)
            .with_pre_layernorm(true)
            .with_norm_pooled_only(true)
            .with_projection_dim(projection_dim))
    }
}

impl HfDinov2Config {
    pub fn to_vit(&self, origin: &Path) -> Result<VitConfig> {
        ensure_act(self.hidden_act, &[HiddenAct::Gelu], "hidden_act", origin)?;
        if self.use_swiglu_ffn {
            bail!("{}: DINOv2 with a SwiGLU MLP (giant) is not supported", origin.display());
        }
        let intermediate_size = (self.hidden_size as f64 * self.mlp_ratio) as usize;
        Ok(VitConfig::new(self.image_size, self.patch_size, self.hidden_size, self.num_hidden_layers, self.num_attention_heads, intermediate_size)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_qkv_bias(self.qkv_bias)
            .with_layer_scale(true))
    }
}

/// The sizes of timm's DINOv3 ViTs, by name prefix.
struct TimmVitSize {
    prefix: &'static str,
    embed_dim: usize,
    depth: usize,
    num_heads: usize,
}

const DINOV3_SIZES: [TimmVitSize; 3] = [
    TimmVitSize { prefix: "vit_small_", embed_dim: 384, depth: 12, num_heads: 6 },
    TimmVitSize { prefix: "vit_base_", embed_dim: 768, depth: 12, num_heads: 12 },
    TimmVitSize { prefix: "vit_large_", embed_dim: 1024, depth: 24, num_heads: 16 },
];

impl TimmConfig {
    /// otclip's config for the architecture `name` (by default the one the file declares), with
    /// `model_args` applied.
    pub fn to_image_tower(&self, name: Option<&str>, origin: &Path) -> Result<ImageTowerConfig> {
        let arch = match (name, self.architecture.as_deref()) {
            (Some(a), Some(b)) if a != b => bail!("{}: the folder holds `{b}`, not the requested `{a}`", origin.display()),
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => bail!("{}: no `architecture`; name it with timm:NAME@DIR or --arch timm:NAME", origin.display()),
        };
        let size = DINOV3_SIZES.iter().find(|size| arch.starts_with(size.prefix));
        let (Some(size), true) = (size, arch.contains("_dinov3")) else {
            bail!("{}: timm architecture `{arch}` is not supported (supported: vit_small/base/large_patch16_dinov3[_qkvb])", origin.display());
        };
        let args = &self.model_args;
        let dim = args.embed_dim.unwrap_or(size.embed_dim);
        let pooling = args.global_pool.or(self.global_pool).map_or(Pooling::Mean, Pooling::from);
        let vit = VitConfig::new(
            args.img_size.side(),
            args.patch_size,
            dim,
            args.depth.unwrap_or(size.depth),
            args.num_heads.unwrap_or(size.num_heads),
            (dim as f64 * args.mlp_ratio) as usize,
        )
        .with_layer_norm_eps(1e-5)
        .with_qkv_bias(arch.ends_with("_qkvb") || args.qkv_bias)
        .with_position_embeddings(false)
        .with_num_register_tokens(args.num_reg_tokens)
        .with_rope_temperature(Some(args.rope_temperature))
        .with_layer_scale(true)
        .with_pooling(pooling);
        Ok(ImageTowerConfig { vit, layout: Layout::TimmEva, normalization: self.pretrained_cfg.normalization() })
    }
}
