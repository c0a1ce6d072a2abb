//! The training objective chosen in the config, on two axes: a contrastive term (CLIP, SigLIP or
//! none) and a transport term (SIGROT, UOT or none), weighted λ·contrastive + transport.

use anyhow::{bail, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::sigrot::{sigrot_loss_and_mass, teacher_graph, uot_loss_and_mass, Kappa};
use super::sinkhorn::SinkhornConfig;
use otclip_kernels::SinkhornBackend;
use super::{clip_loss, siglip_loss};

/// The contrastive term of the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Contrastive {
    /// The multi-positive CLIP loss.
    Clip,
    /// SigLIP's pairwise sigmoid loss.
    Siglip,
    /// No contrastive term (the transport term alone; CLIP during a transport warm-up).
    None,
}

/// The optimal-transport term of the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// SIGROT: the plan pulled towards the teacher's similarity graph (needs a teacher).
    Sigrot,
    /// The unbalanced plan as a fixed target (the UOT baseline).
    Uot,
    /// No transport term.
    None,
}

/// The two axes together: λ·contrastive + transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objective {
    pub contrastive: Contrastive,
    pub transport: Transport,
}

impl Objective {
    /// The paper's name for the objective.
    pub fn name(&self) -> &'static str {
        use {Contrastive as C, Transport as T};
        match (self.contrastive, self.transport) {
            (C::Clip, T::None) => "CLIP",
            (C::Siglip, T::None) => "SigLIP",
            (C::None, T::Sigrot) => "SIGROT alone",
            (C::Clip, T::Sigrot) => "ViCLIP-OT (0.1·CLIP + SIGROT)",
            (C::Siglip, T::Sigrot) => "ViSigLIP-OT (0.1·SigLIP + SIGROT)",
            (C::Clip, T::Uot) => "CLIP + UOT",
            (C::Siglip, T::Uot) => "SigLIP + UOT",
            (C::None, T::Uot) => "UOT alone",
            (C::None, T::None) => "nothing",
        }
    }

    pub fn uses_siglip(&self) -> bool {
        self.contrastive == Contrastive::Siglip
    }

    pub fn needs_teacher(&self) -> bool {
        self.transport == Transport::Sigrot
    }
}

impl Contrastive {
    pub fn as_str(self) -> &'static str {
        match self {
            Contrastive::Clip => "clip",
            Contrastive::Siglip => "siglip",
            Contrastive::None => "none",
        }
    }
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sigrot => "sigrot",
            Transport::Uot => "uot",
            Transport::None => "none",
        }
    }
}

/// `clip`, `siglip`, `sigrot`, `uot`, or a contrastive and a transport name joined by `+`
/// (`clip+sigrot`), as the flagship's `--objective` takes it.
impl std::str::FromStr for Objective {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        let (contrastive, transport) = match text.split_once('+') {
            Some(pair) => pair,
            None if matches!(text, "sigrot" | "uot") => ("none", text),
            None => (text, "none"),
        };
        let contrastive = [Contrastive::Clip, Contrastive::Siglip, Contrastive::None].into_iter().find(|c| c.as_str() == contrastive);
        let transport = [Transport::Sigrot, Transport::Uot, Transport::None].into_iter().find(|t| t.as_str() == transport);
        match (contrastive, transport) {
            (Some(contrastive), Some(transport)) => Ok(Objective { contrastive, transport }),
            _ => bail!("objective `{text}`: expected clip, siglip, sigrot, uot, or CONTRASTIVE+TRANSPORT such as clip+sigrot"),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.contrastive, self.transport) {
            (Contrastive::None, t) => f.write_str(t.as_str()),
            (c, Transport::None) => f.write_str(c.as_str()),
            (c, t) => write!(f, "{}+{}", c.as_str(), t.as_str()),
        }
    }
}

/// The `[loss]` section of a training config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// The contrastive term: `clip`, `siglip` or `none`.
    pub contrastive: Contrastive,
    /// The transport term: `sigrot` (needs a teacher), `uot` or `none`.
    pub transport: Transport,
    /// λ, the contrastive term's weight when both terms train (0.1 in ViCLIP-OT).
    pub lambda: f64,
    /// `"scale"` (the learnable temperature) or a number.
    pub kappa: Kappa,
    /// Epochs at the start that train with the contrastive term alone (SigLIP for the SigLIP
    /// objectives, CLIP otherwise), before the transport term joins.
    pub transport_warmup_epochs: usize,
    /// The Sinkhorn solver of the transport term (`[loss.sinkhorn]`).
    pub sinkhorn: SinkhornConfig,
}

impl LossConfig {
    pub fn objective(&self) -> Objective {
        Objective { contrastive: self.contrastive, transport: self.transport }
    }

    /// Checks what no single key's type can.
    pub fn validate(&self) -> Result<()> {
        if self.objective() == (Objective { contrastive: Contrastive::None, transport: Transport::None }) {
            bail!("loss.contrastive and loss.transport are both `none`: nothing would train");
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            bail!("loss.lambda = {}: expected a finite weight of at least 0", self.lambda);
        }
        self.sinkhorn.validate().map_err(|e| anyhow::anyhow!("loss.sinkhorn: {e}"))
    }
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
    /// The transport plan's total mass Σ Γ* (detached): 1 for a balanced plan, near 0 when an
    /// unbalanced plan collapses.
    pub plan_mass: Option<Tensor<B, 1>>,
}

/// The loss of `config`'s objective. With `warmup` set, only its contrastive term (CLIP when it
/// has none), at weight 1.
pub fn objective_loss<B: SinkhornBackend>(inputs: LossInputs<B>, config: &LossConfig, warmup: bool) -> Result<LossTerms<B>> {
    let LossInputs { image, text, scale, bias, image_ids, teacher } = inputs;
    let objective = config.objective();
    let contrastive = match objective.contrastive {
        Contrastive::None if !warmup => None,
        Contrastive::Siglip => Some(siglip_loss(image.clone(), text.clone(), scale.clone(), bias, &image_ids)),
        Contrastive::Clip | Contrastive::None => Some(clip_loss(image.clone(), text.clone(), scale.clone(), &image_ids)),
    };
    let sinkhorn = &config.sinkhorn;
    let transport = match objective.transport {
        _ if warmup => None,
        Transport::None => None,
        Transport::Uot => Some(uot_loss_and_mass(image, text, scale, sinkhorn)),
        Transport::Sigrot => {
            let Some((captions, images)) = teacher else {
                bail!("objective {objective} needs teacher embeddings, and the dataset has none");
            };
            let kappa = match config.kappa {
                Kappa::Fixed(k) => Tensor::from_floats([k as f32], &image.device()),
                Kappa::Named(_) => scale,
            };
            Some(sigrot_loss_and_mass(image, text, teacher_graph(captions, images), kappa, sinkhorn))
        }
    };
    let (transport, plan_mass) = transport.unzip();
    let total = match (&contrastive, &transport) {
        (Some(c), Some(t)) => c.clone().mul_scalar(config.lambda) + t.clone(),
        (Some(c), None) => c.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => bail!("the objective {objective} has no term; set loss.contrastive or loss.transport"),
    };
    Ok(LossTerms { total, contrastive, transport, plan_mass })
}
