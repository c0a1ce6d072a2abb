//! Explicit key maps from Hugging Face and timm checkpoint names to otclip's module paths.
//! Each map is an ordered list of regex renames (applied by burn-store's `KeyRemapper`), a list
//! of keys skipped on purpose (buffers, heads of other tasks), and the tensor surgery the layout
//! needs (timm's fused `qkv` split into `query`, `key`, `value`).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use burn::tensor::TensorData;
use regex::Regex;

/// The checkpoint layouts otclip reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// HF `BertModel`, `RobertaModel`, `XLMRobertaModel` (PhoBERT is a RoBERTa).
    Bert,
    /// HF `ViTModel`.
    Vit,
    /// HF `CLIPVisionModel(WithProjection)` or the vision half of `CLIPModel`.
    ClipVision,
    /// HF `Dinov2Model`.
    Dinov2,
    /// timm `Eva` models (`vit_*_dinov3`).
    TimmEva,
    /// A dual encoder written by `otclip export`.
    Export,
    /// torchvision, timm and EfficientNet-PyTorch convolutional networks, after the renames of
    /// `weights::convnet`.
    ConvNet,
    /// HF `MarianMTModel` and `M2M100ForConditionalGeneration` layers (embeddings and the output
    /// projection are read by `weights::seq2seq`).
    Seq2Seq,
}

pub struct KeyMap {
    pub layout: Layout,
    /// `(from, to)` regex renames, applied in order.
    pub patterns: Vec<(String, String)>,
    ignore: Vec<Regex>,
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

impl KeyMap {
    pub fn new(layout: Layout) -> Self {
        let (patterns, ignore): (Vec<(String, String)>, &[&str]) = match layout {
            Layout::Bert => (
                pairs(&[
                    (r"^(bert|roberta|model)\.", ""),
                    (r"\.LayerNorm\.", ".layer_norm."),
                    (r"\.attention\.self\.", ".attention.self_attention."),
                ]),
                &[r"position_ids$", r"^(cls|lm_head|classifier|qa_outputs)\.", r"^(bert|roberta)?\.?embeddings\.token_type_ids$"],
            ),
            Layout::Vit => (pairs(&[(r"^vit\.", "")]), &[r"^classifier\.", r"mask_token$"]),
            Layout::ClipVision => (
                pairs(&[
                    (r"^vision_model\.", ""),
                    (r"^visual_projection\.", "projection."),
                    (r"^embeddings\.class_embedding$", "embeddings.cls_token"),
                    (r"^embeddings\.patch_embedding\.", "embeddings.patch_embeddings.projection."),
                    (r"^embeddings\.position_embedding\.weight$", "embeddings.position_embeddings"),
                    (r"^pre_layrnorm\.", "pre_layernorm."),
                    (r"^post_layernorm\.", "layernorm."),
                    (r"^encoder\.layers\.", "encoder.layer."),
                    (r"\.self_attn\.q_proj\.", ".attention.attention.query."),
                    (r"\.self_attn\.k_proj\.", ".attention.attention.key."),
                    (r"\.self_attn\.v_proj\.", ".attention.attention.value."),
                    (r"\.self_attn\.out_proj\.", ".attention.output.dense."),
                    (r"\.layer_norm1\.", ".layernorm_before."),
                    (r"\.layer_norm2\.", ".layernorm_after."),
                    (r"\.mlp\.fc1\.", ".intermediate.dense."),
                    (r"\.mlp\.fc2\.", ".output.dense."),
                ]),
                &[r"^text_model\.", r"^text_projection\.", r"^logit_scale$", r"position_ids$"],
            ),
            Layout::Dinov2 => (
                pairs(&[
                    (r"^dinov2\.", ""),
                    (r"\.norm1\.", ".layernorm_before."),
                    (r"\.norm2\.", ".layernorm_after."),
                    (r"\.mlp\.fc1\.", ".intermediate.dense."),
                    (r"\.mlp\.fc2\.", ".output.dense."),
                ]),
                &[r"mask_token$", r"^classifier\."],
            ),
            Layout::TimmEva => (
                pairs(&[
                    (r"^cls_token$", "embeddings.cls_token"),
                    (r"^reg_token$", "embeddings.register_tokens"),
                    (r"^pos_embed$", "embeddings.position_embeddings"),
                    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings.projection."),
                    (r"^norm_pre\.", "pre_layernorm."),
                    (r"^blocks\.(\d+)\.", "encoder.layer.$1."),
                    (r"\.norm1\.", ".layernorm_before."),
                    (r"\.norm2\.", ".layernorm_after."),
                    (r"\.attn\.(query|key|value)\.", ".attention.attention.$1."),
                    (r"\.attn\.proj\.", ".attention.output.dense."),
                    (r"\.gamma_1$", ".layer_scale1.lambda1"),
                    (r"\.gamma_2$", ".layer_scale2.lambda1"),
                    (r"\.mlp\.fc1\.", ".intermediate.dense."),
                    (r"\.mlp\.fc2\.", ".output.dense."),
                    (r"^norm\.", "layernorm."),
                ]),
                &[r"^rope\.", r"^head\.", r"^mask_token$", r"k_bias$"],
            ),
            Layout::Seq2Seq => (pairs(&[(r"^model\.", "")]), &[r"embed_positions\.(weight|_float_tensor)$"]),
            Layout::ConvNet => (Vec::new(), &[r"^(fc|classifier|_fc|head)\.", r"relative_position_index$", r"attn_mask$"]),
            Layout::Export => (
                pairs(&[(r"^text_model\.(.*)\.LayerNorm\.", "text_model.$1.layer_norm."), (r"^text_model\.(.*)\.attention\.self\.", "text_model.$1.attention.self_attention.")]),
                &[],
            ),
        };
        let ignore = ignore.iter().map(|p| Regex::new(p).expect("valid ignore pattern")).collect();
        Self { layout, patterns, ignore }
    }

    /// This map with exact module renames `(checkpoint module, otclip module)` added after its
    /// patterns, in order; each renamed key goes on through the later renames.
    pub fn with_module_renames(mut self, renames: &[(String, String)]) -> Self {
        self.patterns.extend(renames.iter().map(|(from, to)| (format!("^{}\\.", regex::escape(from)), format!("{to}."))));
        self
    }

    /// Whether a checkpoint key is skipped on purpose.
    pub fn ignores(&self, key: &str) -> bool {
        self.ignore.iter().any(|r| r.is_match(key))
    }

    /// Tensor surgery before renaming: timm's fused `attn.qkv` becomes `attn.query/key/value`
    /// (with `q_bias`/`v_bias` and a zero key bias when the model has them).
    pub fn prepare(&self, mut tensors: BTreeMap<String, TensorData>) -> Result<BTreeMap<String, TensorData>> {
        if self.layout != Layout::TimmEva {
            return Ok(tensors);
        }
        let fused: Vec<String> = tensors.keys().filter(|k| k.ends_with(".attn.qkv.weight")).cloned().collect();
        for key in fused {
            let stem = key.trim_end_matches(".qkv.weight").to_string();
            let data = tensors.remove(&key).expect("listed key");
            let shape = data.shape.clone();
            if shape.len() != 2 || shape[0] % 3 != 0 {
                bail!("tensor `{key}` has shape {shape:?}; a fused qkv weight must be [3·d, d]");
            }
            let values = data.into_vec::<f32>().map_err(|e| anyhow::anyhow!("tensor `{key}`: {e:?}"))?;
            let rows = shape[0] / 3;
            for (i, name) in ["query", "key", "value"].iter().enumerate() {
                let part = values[i * rows * shape[1]..(i + 1) * rows * shape[1]].to_vec();
                tensors.insert(format!("{stem}.{name}.weight"), TensorData::new(part, [rows, shape[1]]));
            }
            let bias = |tensors: &mut BTreeMap<String, TensorData>, from: &str| tensors.remove(&format!("{stem}.{from}"));
            if let Some(q) = bias(&mut tensors, "q_bias") {
                tensors.insert(format!("{stem}.query.bias"), q);
                tensors.insert(format!("{stem}.key.bias"), TensorData::new(vec![0f32; rows], [rows]));
            }
            if let Some(v) = bias(&mut tensors, "v_bias") {
                tensors.insert(format!("{stem}.value.bias"), v);
            }
            if let Some(qkv_bias) = bias(&mut tensors, "qkv.bias") {
                let values = qkv_bias.into_vec::<f32>().map_err(|e| anyhow::anyhow!("tensor `{stem}.qkv.bias`: {e:?}"))?;
                for (i, name) in ["query", "key", "value"].iter().enumerate() {
                    tensors.insert(format!("{stem}.{name}.bias"), TensorData::new(values[i * rows..(i + 1) * rows].to_vec(), [rows]));
                }
            }
        }
        Ok(tensors)
    }
}
