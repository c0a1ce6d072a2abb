//! Hugging Face `config.json` files as typed structs. Field names and meanings are those of
//! `transformers`; a field without a default is required, and defaults are HF's unless the
//! field's comment says otherwise. Keys otclip does not use are ignored.

use serde::Deserialize;

use crate::data::ImageNormalization;
use crate::model::Pooling;

/// HF's `model_type`: the architectures otclip reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HfModelType {
    Bert,
    Roberta,
    #[serde(rename = "xlm-roberta")]
    XlmRoberta,
    Camembert,
    /// Read as a RoBERTa.
    Phobert,
    Vit,
    /// `CLIPModel`; its image tower is `vision_config`.
    Clip,
    ClipVisionModel,
    Dinov2,
}

impl HfModelType {
    /// The name as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bert => "bert",
            Self::Roberta => "roberta",
            Self::XlmRoberta => "xlm-roberta",
            Self::Camembert => "camembert",
            Self::Phobert => "phobert",
            Self::Vit => "vit",
            Self::Clip => "clip",
            Self::ClipVisionModel => "clip_vision_model",
            Self::Dinov2 => "dinov2",
        }
    }
}

/// The key that says which of the structs below a `config.json` is.
#[derive(Debug, Clone, Deserialize)]
pub struct HfHeader {
    pub model_type: Option<HfModelType>,
}

/// HF's `hidden_act`: the MLP activation. Which ones a tower runs is up to its family; the others
/// are named so that the error can say that the file is valid but the activation unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// The exact (erf) GELU.
    #[default]
    Gelu,
    /// The tanh approximation of GELU.
    GeluNew,
    /// The tanh approximation of GELU, as PyTorch computes it.
    GeluPytorchTanh,
    /// A faster tanh approximation of GELU.
    GeluFast,
    /// CLIP's `x * sigmoid(1.702 x)`.
    QuickGelu,
    Relu,
    #[serde(alias = "swish")]
    Silu,
    Tanh,
}

impl HiddenAct {
    /// The name as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gelu => "gelu",
            Self::GeluNew => "gelu_new",
            Self::GeluPytorchTanh => "gelu_pytorch_tanh",
            Self::GeluFast => "gelu_fast",
            Self::QuickGelu => "quick_gelu",
            Self::Relu => "relu",
            Self::Silu => "silu",
            Self::Tanh => "tanh",
        }
    }
}

/// HF's `position_embedding_type` of the BERT family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbeddingType {
    /// Learned positions added to the token embeddings (the only one otclip runs).
    #[default]
    Absolute,
    /// Shaw et al.'s relative positions on the keys.
    RelativeKey,
    /// Huang et al.'s relative positions on the queries and keys.
    RelativeKeyQuery,
}

impl PositionEmbeddingType {
    /// The name as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Absolute => "absolute",
            Self::RelativeKey => "relative_key",
            Self::RelativeKeyQuery => "relative_key_query",
        }
    }
}

fn eps_1e_12() -> f64 {
    1e-12
}

fn eps_1e_6() -> f64 {
    1e-6
}

fn eps_1e_5() -> f64 {
    1e-5
}

fn two() -> usize {
    2
}

fn four() -> f64 {
    4.0
}

fn yes() -> bool {
    true
}

/// `BertConfig`, `RobertaConfig`, `XLMRobertaConfig`: the BERT-family text towers.
#[derive(Debug, Clone, Deserialize)]
pub struct HfBertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    /// Required here (HF's default is 512); it also caps the tokenizer's length.
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "eps_1e_12")]
    pub layer_norm_eps: f64,
    /// The padding token; HF's default is 0 for BERT and 1 for the RoBERTa family.
    pub pad_token_id: Option<usize>,
    #[serde(default)]
    pub hidden_act: HiddenAct,
    #[serde(default)]
    pub position_embedding_type: PositionEmbeddingType,
}

/// `ViTConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct HfVitConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "eps_1e_12")]
    pub layer_norm_eps: f64,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub hidden_act: HiddenAct,
}

/// `CLIPVisionConfig`: a `clip_vision_model` folder, or the `vision_config` of a `clip` one.
#[derive(Debug, Clone, Deserialize)]
pub struct HfClipVisionConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "eps_1e_5")]
    pub layer_norm_eps: f64,
    /// Missing, otclip reads `gelu`; HF's default is `quick_gelu`.
    #[serde(default)]
    pub hidden_act: HiddenAct,
    /// The width of `visual_projection` (`CLIPVisionModelWithProjection`).
    pub projection_dim: Option<usize>,
}

/// `CLIPConfig`: otclip reads its image tower.
#[derive(Debug, Clone, Deserialize)]
pub struct HfClipConfig {
    pub vision_config: HfClipVisionConfig,
    /// The width of `visual_projection`; the one in `vision_config` is not read.
    pub projection_dim: Option<usize>,
}

/// `Dinov2Config`.
#[derive(Debug, Clone, Deserialize)]
pub struct HfDinov2Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    /// The MLP width as a multiple of `hidden_size`.
    #[serde(default = "four")]
    pub mlp_ratio: f64,
    #[serde(default = "eps_1e_6")]
    pub layer_norm_eps: f64,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    /// The SwiGLU MLP of DINOv2-giant (not supported).
    #[serde(default)]
    pub use_swiglu_ffn: bool,
    #[serde(default)]
    pub hidden_act: HiddenAct,
}

/// `preprocessor_config.json`: the pixel normalisation of an HF image tower, and the image side.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HfPreprocessorConfig {
    pub image_mean: Option<[f32; 3]>,
    pub image_std: Option<[f32; 3]>,
    /// CLIPImageProcessor's crop (`{"height", "width"}`, or a number in older files).
    pub crop_size: Option<serde_json::Value>,
    /// The resize target: ViTImageProcessor's `{"height", "width"}`, CLIP's `{"shortest_edge"}`.
    pub size: Option<serde_json::Value>,
    /// Pillow's resize filter (2 bilinear, 3 bicubic).
    pub resample: Option<u64>,
}

impl HfPreprocessorConfig {
    /// The normalisation, when the file gives both the mean and the std.
    pub fn normalization(&self) -> Option<ImageNormalization> {
        Some(ImageNormalization { mean: self.image_mean?, std: self.image_std? })
    }

    /// The side of the square images the model sees: the crop's height, else the resize's height.
    pub fn image_side(&self) -> Option<u64> {
        let side = |value: &Option<serde_json::Value>| value.as_ref().and_then(|v| v.get("height").unwrap_or(v).as_u64());
        side(&self.crop_size).or_else(|| side(&self.size))
    }
}

/// sentence-transformers' `1_Pooling/config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SentenceTransformersPooling {
    pub pooling_mode_cls_token: bool,
    pub pooling_mode_mean_tokens: bool,
}

impl SentenceTransformersPooling {
    /// The pooling the file declares, if otclip has it (CLS wins over mean; max pooling is not read).
    pub fn pooling(&self) -> Option<Pooling> {
        if self.pooling_mode_cls_token {
            Some(Pooling::Cls)
        } else if self.pooling_mode_mean_tokens {
            Some(Pooling::Mean)
        } else {
            None
        }
    }
}

/// The `config.json` that `otclip export` writes: the config of its transformers modelling code
/// (`model_type: "otclip"`), and otclip's own config, which is what otclip reads back.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedConfig {
    /// otclip's `DualEncoderConfig`, read with `DualEncoderConfig::from_json`.
    pub otclip: Option<serde_json::Value>,
}
