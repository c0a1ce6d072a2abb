//! Export of a trained dual encoder to HF-style safetensors (`vision_model.*` in `ViTModel`
//! names, `text_model.*` in `BertModel` names, `visual_projection`, `text_projection`,
//! `logit_scale`, `logit_bias`) with a `config.json` that also carries otclip's own configs,
//! so that [`load_exported`](super::load_exported) rebuilds the identical model.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use burn::prelude::*;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use serde_json::json;

use crate::model::{DualEncoder, DualEncoderConfig};

/// The HF key of an otclip parameter path (after burn-store's PyTorch adapter).
fn hf_key(path: &str) -> String {
    if path.starts_with("text_model.") {
        path.replace(".layer_norm.", ".LayerNorm.").replace(".self_attention.", ".self.")
    } else {
        path.to_string()
    }
}

/// Writes `dir/model.safetensors` and `dir/config.json`.
pub fn export_dual<B: Backend>(model: &DualEncoder<B>, config: &DualEncoderConfig, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let snapshots = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for snapshot in snapshots {
        let data = snapshot.to_data().map_err(|e| anyhow!("cannot read {}: {e:?}", snapshot.full_path()))?.convert::<f32>();
        let shape: Vec<usize> = data.shape.clone().into();
        let bytes = data.into_vec::<f32>().map_err(|e| anyhow!("{e:?}"))?.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((hf_key(&snapshot.full_path()), bytes, shape));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, b, s)| Ok((k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file(views, Some(metadata), &dir.join("model.safetensors"))?;
    let (v, t) = (&config.vision, &config.text);
    let hf = json!({
        "architectures": ["VisionTextDualEncoderModel"],
        "model_type": "vision-text-dual-encoder",
        "projection_dim": config.projection_dim,
        "logit_scale_init_value": config.init_logit_scale,
        "vision_config": {
            "model_type": "vit", "image_size": v.image_size, "patch_size": v.patch_size, "num_channels": v.num_channels,
            "hidden_size": v.hidden_size, "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
            "intermediate_size": v.intermediate_size, "layer_norm_eps": v.layer_norm_eps, "qkv_bias": v.qkv_bias,
            "hidden_act": if v.quick_gelu { "quick_gelu" } else { "gelu" },
        },
        "text_config": {
            "model_type": if t.roberta_positions { "roberta" } else { "bert" }, "vocab_size": t.vocab_size, "hidden_size": t.hidden_size,
            "num_hidden_layers": t.num_hidden_layers, "num_attention_heads": t.num_attention_heads,
            "intermediate_size": t.intermediate_size, "max_position_embeddings": t.max_position_embeddings,
            "type_vocab_size": t.type_vocab_size, "layer_norm_eps": t.layer_norm_eps, "pad_token_id": t.pad_token_id, "hidden_act": "gelu",
        },
        "otclip": serde_json::from_str::<serde_json::Value>(&serde_json::to_string(config)?)?,
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&hf)?).with_context(|| format!("cannot write {}", dir.join("config.json").display()))?;
    Ok(tensors.len())
}
