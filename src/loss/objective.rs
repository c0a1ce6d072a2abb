//! The training objective chosen in the config: CLIP, SigLIP, SIGROT and their hybrids.

use anyhow::{bail, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::sigrot::{sigrot_loss, teacher_graph, uot_loss, Kappa};
use super::sinkhorn::SinkhornConfig;
use otclip_kernels::SinkhornBackend;
use super::{clip_loss, siglip_loss};

/// `clip | siglip | sigrot | clip+sigrot | siglip+sigrot | clip+uot | siglip+uot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    #[serde(rename = "clip")]
    Clip,
    #[serde(rename = "siglip")]
    Siglip,
    #[serde(rename = "sigrot")]
    Sigrot,
    #[serde(rename = "clip+sigrot")]
    ClipSigrot,
    #[serde(rename = "siglip+sigrot")]
    SiglipSigrot,
    #[serde(rename = "clip+uot")]
    ClipUot,
    #[serde(rename = "siglip+uot")]
    SiglipUot,
}

impl Objective {
    /// The paper's name for the objective.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Clip => "CLIP",
            Objective::Siglip => "SigLIP",
            Objective::Sigrot => "SIGROT alone",
            Objective::ClipSigrot => "ViCLIP-OT (0.1·CLIP + SIGROT)",
            Objective::SiglipSigrot => "ViSigLIP-OT (0.1·SigLIP + SIGROT)",
            Objective::ClipUot => "CLIP + UOT",
            Objective::SiglipUot => "SigLIP + UOT",
        }
    }

    pub fn uses_siglip(&self) -> bool {
        matches!(self, Objective::Siglip | Objective::SiglipSigrot | Objective::SiglipUot)
    }

    pub fn needs_teacher(&self) -> bool {
        matches!(self, Objective::Sigrot | Objective::ClipSigrot | Objective::SiglipSigrot)
    }
}

/// The `[loss]` section of a training config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Which loss trains the towers.
    pub objective: Objective,
    /// λ in λ·CLIP + SIGROT (0.1 in ViCLIP-OT).
    pub lambda: f64,
    /// `"scale"` (the learnable temperature) or a number.
    pub kappa: Kappa,
    /// Epochs at the start that train with the contrastive term alone (SigLIP for the SigLIP
    /// objectives, CLIP otherwise), before the transport term joins.
    pub transport_warmup_epochs: usize,
    /// The Sinkhorn solver of the transport term (`[loss.sinkhorn]`).
    pub sinkhorn: SinkhornConfig,
}

/// What the loss sees of one batch.
pub struct LossInputs<B: Backend> {
    /// `[n, d]` L2-normalised image and text embeddings, one row per pair.
    pub image: Tensor<B, 2>,
    pub text: Tensor<B, 2>,
    /// The temperature s = exp(logit_scale), `[1]`.
    pub scale: Tensor<B, 1>,
    /// SigLIP's bias b, `[1]`.
    pub bias: Tensor<B, 1>,
    pub image_ids: Vec<u64>,
    /// Teacher rows for the captions (A) and the images (B), `[n, d_t]`, L2-normalised.
    pub teacher: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
}

/// The total loss and its two parts (for logging).
pub struct LossTerms<B: Backend> {
    pub total: Tensor<B, 1>,
    pub contrastive: Option<Tensor<B, 1>>,
    pub transport: Option<Tensor<B, 1>>,
}

/// The loss of `config.objective`. With `warmup` set, only its contrastive term (CLIP for
/// `sigrot`), at weight 1.
pub fn objective_loss<B: SinkhornBackend>(inputs: LossInputs<B>, config: &LossConfig, warmup: bool) -> Result<LossTerms<B>> {
    let LossInputs { image, text, scale, bias, image_ids, teacher } = inputs;
    let objective = config.objective;
    let contrastive = match objective {
        Objective::Sigrot if !warmup => None,
        o if o.uses_siglip() => Some(siglip_loss(image.clone(), text.clone(), scale.clone(), bias, &image_ids)),
        _ => Some(clip_loss(image.clone(), text.clone(), scale.clone(), &image_ids)),
    };
    let sinkhorn = &config.sinkhorn;
    let transport = match objective {
        _ if warmup => None,
        Objective::Clip | Objective::Siglip => None,
        Objective::ClipUot | Objective::SiglipUot => Some(uot_loss(image, text, scale, sinkhorn)),
        _ => {
            let Some((captions, images)) = teacher else {
                bail!("objective {objective:?} needs teacher embeddings, and the dataset has none");
            };
            let kappa = match config.kappa {
                Kappa::Fixed(k) => Tensor::from_floats([k as f32], &image.device()),
                Kappa::Named(_) => scale,
            };
            Some(sigrot_loss(image, text, teacher_graph(captions, images), kappa, sinkhorn))
        }
    };
    let total = match (&contrastive, &transport) {
        (Some(c), Some(t)) => c.clone().mul_scalar(config.lambda) + t.clone(),
        (Some(c), None) => c.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => unreachable!("every objective has a term"),
    };
    Ok(LossTerms { total, contrastive, transport })
}
