//! Pretrained towers from checkpoint folders: `config.json` → otclip config, weights through the
//! key maps, the tokenizer from the folder's files.
//!
//! A tower is named `hf:DIR` (an HF folder; `config.json` says the model type) or `timm:NAME@DIR`
//! (a timm hub folder; NAME may be left out when its `config.json` names the architecture).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use burn::prelude::*;
use serde_json::Value;

use super::keymap::{KeyMap, Layout};
use super::load::{apply_tensors, read_config, read_tensors, weights_file};
use super::report::LoadReport;
use crate::data::ImageNormalization;
use crate::model::{BertConfig, BertModel, Pooling, VitConfig, VitModel};
use crate::text::CaptionTokenizer;

/// Where a tower's weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TowerSource {
    Hf(PathBuf),
    Timm { name: Option<String>, dir: PathBuf },
}

impl FromStr for TowerSource {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(dir) = s.strip_prefix("hf:") {
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

impl TowerSource {
    pub fn dir(&self) -> &Path {
        match self {
            Self::Hf(dir) | Self::Timm { dir, .. } => dir,
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

fn get<'a>(config: &'a Value, key: &str) -> Option<&'a Value> {
    config.get(key).filter(|v| !v.is_null())
}

fn usize_of(config: &Value, key: &str, origin: &Path) -> Result<usize> {
    get(config, key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| anyhow!("{}: `{key}` is missing or not a whole number", origin.display()))
}

fn f64_or(config: &Value, key: &str, default: f64) -> f64 {
    get(config, key).and_then(Value::as_f64).unwrap_or(default)
}

/// A text tower with its tokenizer.
pub struct TextTower<B: Backend> {
    pub model: BertModel<B>,
    pub config: BertConfig,
    pub tokenizer: CaptionTokenizer,
    pub report: LoadReport,
}

/// The BERT-family config of an HF folder (`bert`, `roberta`, `xlm-roberta`, `camembert`).
pub fn text_config(dir: &Path) -> Result<BertConfig> {
    let json = read_config(dir)?;
    let origin = dir.join("config.json");
    let model_type = get(&json, "model_type").and_then(Value::as_str).unwrap_or("");
    let roberta = match model_type {
        "bert" => false,
        "roberta" | "xlm-roberta" | "camembert" | "phobert" => true,
        other => bail!("{}: model_type `{other}` is not a BERT-family text model (bert, roberta, xlm-roberta)", origin.display()),
    };
    let act = get(&json, "hidden_act").and_then(Value::as_str).unwrap_or("gelu");
    if act != "gelu" {
        bail!("{}: hidden_act `{act}` is not supported (only gelu)", origin.display());
    }
    let position_type = get(&json, "position_embedding_type").and_then(Value::as_str).unwrap_or("absolute");
    if position_type != "absolute" {
        bail!("{}: position_embedding_type `{position_type}` is not supported", origin.display());
    }
    let u = |k| usize_of(&json, k, &origin);
    let mut config = BertConfig::new(u("vocab_size")?, u("hidden_size")?, u("num_hidden_layers")?, u("num_attention_heads")?, u("intermediate_size")?)
        .with_max_position_embeddings(u("max_position_embeddings")?)
        .with_type_vocab_size(u("type_vocab_size").unwrap_or(2))
        .with_layer_norm_eps(f64_or(&json, "layer_norm_eps", 1e-12))
        .with_pad_token_id(u("pad_token_id").unwrap_or(if roberta { 1 } else { 0 }))
        .with_roberta_positions(roberta);
    config.pooling = sentence_transformers_pooling(dir).unwrap_or(Pooling::Mean);
    Ok(config)
}

/// The pooling a sentence-transformers folder declares in `1_Pooling/config.json`.
fn sentence_transformers_pooling(dir: &Path) -> Option<Pooling> {
    let text = std::fs::read_to_string(dir.join("1_Pooling/config.json")).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    let on = |k: &str| json.get(k).and_then(Value::as_bool).unwrap_or(false);
    if on("pooling_mode_cls_token") {
        Some(Pooling::Cls)
    } else if on("pooling_mode_mean_tokens") {
        Some(Pooling::Mean)
    } else {
        None
    }
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
    let max_positions = config.max_position_embeddings - if config.roberta_positions { config.pad_token_id + 1 } else { 0 };
    let tokenizer = CaptionTokenizer::from_dir(dir, max_length.min(max_positions))?;
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

fn triple(value: Option<&Value>) -> Option<[f32; 3]> {
    let list = value?.as_array()?;
    (list.len() == 3).then(|| [0, 1, 2].map(|i| list[i].as_f64().unwrap_or(0.0) as f32))
}

/// The ViT-family config, key layout and normalisation of an image tower folder.
pub fn image_config(source: &TowerSource) -> Result<(VitConfig, Layout, ImageNormalization)> {
    let dir = source.dir();
    let json = read_config(dir)?;
    let origin = dir.join("config.json");
    if let TowerSource::Timm { name, .. } = source {
        return timm_config(&json, name.as_deref(), &origin);
    }
    if get(&json, "architecture").is_some() {
        return timm_config(&json, None, &origin);
    }
    let model_type = get(&json, "model_type").and_then(Value::as_str).unwrap_or("");
    let (vision, projection) = match model_type {
        "clip" => (json.get("vision_config").cloned().unwrap_or_default(), get(&json, "projection_dim").and_then(Value::as_u64)),
        _ => (json.clone(), get(&json, "projection_dim").and_then(Value::as_u64)),
    };
    if !matches!(model_type, "vit" | "clip" | "clip_vision_model" | "dinov2") {
        bail!("{}: model_type `{model_type}` is not a supported image tower (vit, clip, clip_vision_model, dinov2, or a timm folder)", origin.display());
    }
    let u = |k| usize_of(&vision, k, &origin);
    let act = get(&vision, "hidden_act").and_then(Value::as_str).unwrap_or("gelu");
    let hidden = u("hidden_size")?;
    let (layers, heads, image, patch) = (u("num_hidden_layers")?, u("num_attention_heads")?, u("image_size")?, u("patch_size")?);
    let config = match model_type {
        "vit" => {
            ensure_act(act, &["gelu"], &origin)?;
            let config = VitConfig::new(image, patch, hidden, layers, heads, u("intermediate_size")?)
                .with_layer_norm_eps(f64_or(&vision, "layer_norm_eps", 1e-12))
                .with_qkv_bias(get(&vision, "qkv_bias").and_then(Value::as_bool).unwrap_or(true));
            (config, Layout::Vit, ImageNormalization::IMAGENET)
        }
        "clip" | "clip_vision_model" => {
            ensure_act(act, &["quick_gelu", "gelu"], &origin)?;
            let config = VitConfig::new(image, patch, hidden, layers, heads, u("intermediate_size")?)
                .with_layer_norm_eps(f64_or(&vision, "layer_norm_eps", 1e-5))
                .with_quick_gelu(act == "quick_gelu")
                .with_patch_bias(false)
                .with_pre_layernorm(true)
                .with_norm_pooled_only(true)
                .with_projection_dim(projection.map(|p| p as usize));
            (config, Layout::ClipVision, ImageNormalization::CLIP)
        }
        "dinov2" => {
            ensure_act(act, &["gelu"], &origin)?;
            if get(&vision, "use_swiglu_ffn").and_then(Value::as_bool).unwrap_or(false) {
                bail!("{}: DINOv2 with a SwiGLU MLP (giant) is not supported", origin.display());
            }
            let mlp_ratio = f64_or(&vision, "mlp_ratio", 4.0);
            let config = VitConfig::new(image, patch, hidden, layers, heads, (hidden as f64 * mlp_ratio) as usize)
                .with_layer_norm_eps(f64_or(&vision, "layer_norm_eps", 1e-6))
                .with_qkv_bias(get(&vision, "qkv_bias").and_then(Value::as_bool).unwrap_or(true))
                .with_layer_scale(true);
            (config, Layout::Dinov2, ImageNormalization::IMAGENET)
        }
        other => bail!("{}: model_type `{other}` is not a supported image tower (vit, clip, clip_vision_model, dinov2, or a timm folder)", origin.display()),
    };
    let normalization = preprocessor(source.dir()).unwrap_or(config.2);
    Ok((config.0, config.1, normalization))
}

fn ensure_act(act: &str, allowed: &[&str], origin: &Path) -> Result<()> {
    if !allowed.contains(&act) {
        bail!("{}: hidden_act `{act}` is not supported here (expected {})", origin.display(), allowed.join(" or "));
    }
    Ok(())
}

/// `image_mean` / `image_std` from an HF `preprocessor_config.json`.
fn preprocessor(dir: &Path) -> Option<ImageNormalization> {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("preprocessor_config.json")).ok()?).ok()?;
    Some(ImageNormalization { mean: triple(json.get("image_mean"))?, std: triple(json.get("image_std"))? })
}

/// A timm hub folder's config: the architecture name gives the defaults, `model_args` overrides.
fn timm_config(json: &Value, name: Option<&str>, origin: &Path) -> Result<(VitConfig, Layout, ImageNormalization)> {
    let declared = get(json, "architecture").and_then(Value::as_str);
    let arch = match (name, declared) {
        (Some(a), Some(b)) if a != b => bail!("{}: the folder holds `{b}`, not the requested `{a}`", origin.display()),
        (Some(a), _) | (None, Some(a)) => a.to_string(),
        (None, None) => bail!("{}: no `architecture`; name it with timm:NAME@DIR or --arch timm:NAME", origin.display()),
    };
    let sizes = [("vit_small_", (384, 12, 6)), ("vit_base_", (768, 12, 12)), ("vit_large_", (1024, 24, 16))];
    let defaults = sizes.iter().find(|(prefix, _)| arch.starts_with(prefix)).map(|(_, s)| *s);
    let (Some((dim, depth, heads)), true) = (defaults, arch.contains("_dinov3")) else {
        bail!("{}: timm architecture `{arch}` is not supported (supported: vit_small/base/large_patch16_dinov3[_qkvb])", origin.display());
    };
    let args = json.get("model_args").cloned().unwrap_or_default();
    let arg = |k: &str, d: usize| get(&args, k).and_then(Value::as_u64).map_or(d, |v| v as usize);
    let image = match get(&args, "img_size") {
        Some(Value::Array(v)) => v.first().and_then(Value::as_u64).unwrap_or(256) as usize,
        Some(v) => v.as_u64().unwrap_or(256) as usize,
        None => 256,
    };
    let dim = arg("embed_dim", dim);
    let mlp_ratio = get(&args, "mlp_ratio").and_then(Value::as_f64).unwrap_or(4.0);
    let pool = get(&args, "global_pool").or_else(|| get(json, "global_pool")).and_then(Value::as_str).unwrap_or("avg");
    let pooling = match pool {
        "avg" => Pooling::Mean,
        "token" => Pooling::Cls,
        other => bail!("{}: global_pool `{other}` is not supported (avg or token)", origin.display()),
    };
    let config = VitConfig::new(image, arg("patch_size", 16), dim, arg("depth", depth), arg("num_heads", heads), (dim as f64 * mlp_ratio) as usize)
        .with_layer_norm_eps(1e-5)
        .with_qkv_bias(arch.ends_with("_qkvb") || get(&args, "qkv_bias").and_then(Value::as_bool).unwrap_or(false))
        .with_position_embeddings(false)
        .with_num_register_tokens(arg("num_reg_tokens", 4))
        .with_rope_temperature(Some(get(&args, "rope_temperature").and_then(Value::as_f64).unwrap_or(100.0)))
        .with_layer_scale(true)
        .with_pooling(pooling);
    let cfg = json.get("pretrained_cfg");
    let imagenet = ImageNormalization::IMAGENET;
    let mean = triple(cfg.and_then(|c| c.get("mean"))).unwrap_or(imagenet.mean);
    let std = triple(cfg.and_then(|c| c.get("std"))).unwrap_or(imagenet.std);
    Ok((config, Layout::TimmEva, ImageNormalization { mean, std }))
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
    let (mut config, layout, normalization) = image_config(source)?;
    let file = weights_file(source.dir())?;
    let tensors = read_tensors(&file).with_context(|| format!("loading the image tower {}", source.dir().display()))?;
    config.add_pooling_layer = layout == Layout::Vit && tensors.keys().any(|k| k.ends_with("pooler.dense.weight"));
    if layout == Layout::ClipVision && !tensors.contains_key("visual_projection.weight") {
        config.projection_dim = None;
    }
    adjust(&mut config);
    if config.pooling == Pooling::Pooler && !config.add_pooling_layer && !config.norm_pooled_only {
        bail!("{}: pooling = pooler, but this image tower has no pooler", file.display());
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
    if matches!(text, TowerSource::Timm { .. }) {
        bail!("text_tower: timm holds image models only; use hf:DIR");
    }
    let vision = load_image_tower::<B>(image, None, allow_partial, device)?;
    let words = load_text_tower::<B>(text.dir(), None, max_length, allow_partial, device)?;
    let config = crate::model::DualEncoderConfig::new(vision.config.clone(), words.config.clone(), projection_dim);
    let model = config.with_towers(vision.model, words.model, device);
    Ok((model, config, words.tokenizer, [vision.report, words.report]))
}
