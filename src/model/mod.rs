//! The towers and the dual encoder. One tower family per file; field names follow the
//! Hugging Face checkpoint keys (`encoder.layer.0.attention...`) so weights map with little remapping.

pub mod attention;
pub mod batch_norm;
pub mod bert;
pub mod checks;
pub mod convnet;
pub mod dual;
pub mod head;
pub mod norm;
pub mod precision;
pub mod seq2seq;
pub mod vision;
pub mod vit;

pub use bert::{BertConfig, BertModel, TextBatch};
pub use checks::ConfigValueError;
pub use dual::{DualEncoder, DualEncoderConfig, Preset};
pub use head::{HeadConfig, HeadKind};
pub use precision::Precision;
pub use vision::{VisionConfig, VisionModel};
pub use vit::{VitConfig, VitModel};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How a tower turns its token sequence into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The first (class) token.
    #[default]
    Cls,
    /// The mean over the tokens the mask keeps; for a ViT, over the patch tokens (timm's `avg`).
    #[serde(alias = "avg")]
    Mean,
    /// A trained head on the class token: BERT's `pooler` (dense + tanh) or CLIP's `post_layernorm`.
    Pooler,
}

impl std::str::FromStr for Pooling {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "cls" => Ok(Self::Cls),
            "mean" | "avg" => Ok(Self::Mean),
            "pooler" => Ok(Self::Pooler),
            other => anyhow::bail!("unknown pooling `{other}`: expected cls, mean, avg or pooler"),
        }
    }
}

/// Pools `hidden` `[batch, tokens, dim]`; `keep` `[batch, tokens]` is 1 for real tokens and 0 for padding.
pub fn pool<B: Backend>(pooling: Pooling, hidden: Tensor<B, 3>, keep: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
    let [batch, _, dim] = hidden.dims();
    match (pooling, keep) {
        (Pooling::Cls | Pooling::Pooler, _) => hidden.slice([0..batch, 0..1]).reshape([batch, dim]),
        (Pooling::Mean, Some(keep)) => {
            let weights = in_dtype_of(keep, &hidden).unsqueeze_dim::<3>(2);
            let count = weights.clone().sum_dim(1).clamp_min(1e-9).reshape([batch, 1]);
            (hidden * weights).sum_dim(1).reshape([batch, dim]) / count
        }
        (Pooling::Mean, None) => hidden.mean_dim(1).reshape([batch, dim]),
    }
}

/// `t` in the float type of `like` (a tower that computes in bf16 or f16 gets its masks and
/// tables in that type too).
pub fn in_dtype_of<B: Backend, const D: usize, const E: usize>(t: Tensor<B, D>, like: &Tensor<B, E>) -> Tensor<B, D> {
    match like.dtype() {
        dtype if dtype == t.dtype() => t,
        dtype => t.cast(burn::tensor::FloatDType::from(dtype)),
    }
}

/// Scales every row to unit L2 norm.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
