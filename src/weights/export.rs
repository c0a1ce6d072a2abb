//! Export of a trained dual encoder as a folder that Hugging Face transformers loads with
//! `trust_remote_code=True`: `model.safetensors` (`vision_model.*` in `ViTModel` names,
//! `text_model.*` in `BertModel` names, the heads, scalar `logit_scale` and `logit_bias`), the
//! modelling code (`configuration_otclip.py`, `modeling_otclip.py`, plain torch, module names
//! equal to the keys) and a `config.json` with an `auto_map`, every tower switch, and otclip's
//! own config in the `otclip` section, so that [`load_exported`](super::load_exported) rebuilds
//! the identical model.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use burn::prelude::*;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use serde_json::{json, Value};

use crate::model::{BertConfig, DualEncoder, DualEncoderConfig, VitConfig};

/// The modelling code written beside the weights, by file name.
pub const HF_SOURCES: [(&str, &str); 2] = [
    ("configuration_otclip.py", include_str!("hf/configuration_otclip.py")),
    ("modeling_otclip.py", include_str!("hf/modeling_otclip.py")),
];

/// The keys transformers expects as 0-dimensional tensors (otclip holds them as `[1]`).
const SCALARS: [&str; 2] = ["logit_scale", "logit_bias"];

/// The family an image tower belongs to, as its switches say; written as the HF `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionFamily {
    /// A plain ViT (HF `ViTModel`).
    Vit,
    /// CLIP's vision tower: QuickGELU, a pre-norm, the final norm on the pooled token.
    ClipVision,
    /// DINOv2: learned positions and layer scale.
    Dinov2,
    /// DINOv3: rotary positions (register tokens and layer scale as it has them).
    Dinov3,
}

impl VisionFamily {
    pub fn of(config: &VitConfig) -> Self {
        if config.rope_temperature.is_some() {
            Self::Dinov3
        } else if config.quick_gelu && config.pre_layernorm {
            Self::ClipVision
        } else if config.layer_scale {
            Self::Dinov2
        } else {
            Self::Vit
        }
    }

    /// HF's `model_type` of the family.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Vit => "vit",
            Self::ClipVision => "clip_vision_model",
            Self::Dinov2 => "dinov2",
            Self::Dinov3 => "dinov3_vit",
        }
    }
}

/// The HF key of an otclip parameter path (after burn-store's PyTorch adapter).
fn hf_key(path: &str) -> String {
    if path.starts_with("text_model.") {
        path.replace(".layer_norm.", ".LayerNorm.").replace(".self_attention.", ".self.")
    } else {
        path.to_string()
    }
}

/// The `vision_config` of `config.json`: every switch `modeling_otclip.py` reads.
fn vision_config(v: &VitConfig) -> Value {
    json!({
        "model_type": VisionFamily::of(v).model_type(),
        "image_size": v.image_size, "patch_size": v.patch_size, "num_channels": v.num_channels,
        "hidden_size": v.hidden_size, "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
        "intermediate_size": v.intermediate_size, "layer_norm_eps": v.layer_norm_eps, "hidden_dropout_prob": v.hidden_dropout_prob,
        "hidden_act": if v.quick_gelu { "quick_gelu" } else { "gelu" },
        "qkv_bias": v.qkv_bias, "patch_bias": v.patch_bias, "use_position_embeddings": v.position_embeddings,
        "num_register_tokens": v.num_register_tokens, "rope_theta": v.rope_temperature, "layer_scale": v.layer_scale,
        "pre_layernorm": v.pre_layernorm, "norm_pooled_only": v.norm_pooled_only, "add_pooling_layer": v.add_pooling_layer,
        "pooling": v.pooling, "projection_dim": v.projection_dim,
    })
}

/// The `text_config` of `config.json`; RoBERTa-family positions are labelled `roberta`.
fn text_config(t: &BertConfig) -> Value {
    json!({
        "model_type": if t.roberta_positions { "roberta" } else { "bert" },
        "vocab_size": t.vocab_size, "hidden_size": t.hidden_size, "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads, "intermediate_size": t.intermediate_size,
        "max_position_embeddings": t.max_position_embeddings, "type_vocab_size": t.type_vocab_size,
        "layer_norm_eps": t.layer_norm_eps, "hidden_dropout_prob": t.hidden_dropout_prob, "pad_token_id": t.pad_token_id,
        "hidden_act": "gelu", "position_embedding_type": "absolute", "roberta_positions": t.roberta_positions,
        "add_pooling_layer": t.add_pooling_layer, "pooling": t.pooling,
    })
}

/// The ViT image tower, the only kind the transformers modelling code holds.
fn exportable_vision(config: &DualEncoderConfig) -> Result<&VitConfig> {
    config.vision.vit().ok_or_else(|| {
        anyhow!("export writes a transformers model with a ViT image tower; this model's image tower is convolutional, so use its run checkpoint with otclip (embed, search, serve) instead")
    })
}

/// The whole `config.json`.
pub fn hf_config(config: &DualEncoderConfig) -> Result<Value> {
    // Through text, so that f32 values keep their shortest form (2.6592601, not 2.659260034561157).
    let otclip: Value = serde_json::from_str(&serde_json::to_string(config)?)?;
    Ok(json!({
        "architectures": ["OtclipModel"],
        "auto_map": {"AutoConfig": "configuration_otclip.OtclipConfig", "AutoModel": "modeling_otclip.OtclipModel"},
        "model_type": "otclip",
        "dtype": "float32",
        "projection_dim": config.projection_dim,
        "logit_scale_init_value": otclip["init_logit_scale"],
        "logit_bias_init_value": otclip["init_logit_bias"],
        "vision_config": vision_config(exportable_vision(config)?),
        "text_config": text_config(&config.text),
        "image_head": otclip["image_head"],
        "text_head": otclip["text_head"],
        "otclip": otclip,
    }))
}

/// Writes `dir/model.safetensors`, `dir/config.json` and the modelling code; the number of tensors.
pub fn export_dual<B: Backend>(model: &DualEncoder<B>, config: &DualEncoderConfig, dir: &Path) -> Result<usize> {
    exportable_vision(config)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let snapshots = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for snapshot in snapshots {
        let data = snapshot.to_data().map_err(|e| anyhow!("cannot read {}: {e:?}", snapshot.full_path()))?.convert::<f32>();
        let key = hf_key(&snapshot.full_path());
        let shape: Vec<usize> = if SCALARS.contains(&key.as_str()) { Vec::new() } else { data.shape.clone().into() };
        let bytes = data.into_vec::<f32>().map_err(|e| anyhow!("{e:?}"))?.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((key, bytes, shape));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, b, s)| Ok((k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let weights = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, Some(metadata), &weights).with_context(|| format!("cannot write {}", weights.display()))?;
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&hf_config(config)?)? + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    for (name, source) in HF_SOURCES {
        let path = dir.join(name);
        std::fs::write(&path, source).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(tensors.len())
}
