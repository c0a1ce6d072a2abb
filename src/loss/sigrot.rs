//! SIGROT: an unbalanced entropic OT plan between image and text embeddings, pulled towards a
//! teacher's similarity graph (losses.md §3), and the "+UOT" soft-target baseline.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};

use super::clip::soft_cross_entropy_rows;
use super::sinkhorn::{solve, GradMode, SinkhornConfig};
use otclip_kernels::SinkhornBackend;

/// The sharpness κ of the teacher target Q = softmax_rows(κ S).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Kappa {
    /// `"scale"`: the model's own learnable temperature s (the paper-era code).
    Named(KappaSource),
    /// A fixed number (a later version of the code uses 20).
    Fixed(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KappaSource {
    Scale,
}

impl Default for Kappa {
    fn default() -> Self {
        Kappa::Named(KappaSource::Scale)
    }
}

/// S = ¼ (A + B)(A + B)ᵀ for L2-normalised teacher caption rows A and image rows B, one per pair.
pub fn teacher_graph<B: Backend>(captions: Tensor<B, 2>, images: Tensor<B, 2>) -> Tensor<B, 2> {
    let sum = captions + images;
    sum.clone().matmul(sum.transpose()).div_scalar(4.0)
}

/// The transport plan scaled by N (P = N·Γ*) between image rows x and text rows y, on the cost
/// C = 1 − x·yᵀ, with uniform marginals.
pub fn scaled_plan<B: SinkhornBackend>(image: Tensor<B, 2>, text: Tensor<B, 2>, config: &SinkhornConfig) -> (Tensor<B, 2>, usize) {
    let [n, _] = image.dims();
    let cost = image.matmul(text.transpose()).neg() + 1.0;
    let [_, m] = cost.dims();
    let solved = solve(cost.reshape([1, n, m]), None, None, config);
    (solved.plan.reshape([n, m]).mul_scalar(n as f64), solved.iterations)
}

/// Σ_ij [P (log P − log Q) − P + Q], with 0·log 0 = 0.
pub fn generalized_kl<B: Backend>(p: Tensor<B, 2>, log_q: Tensor<B, 2>) -> Tensor<B, 1> {
    let log_p = p.clone().clamp_min(1e-30).log();
    (p.clone() * (log_p - log_q.clone()) - p + log_q.exp()).sum()
}

// ANCHOR: sigrot
/// L_SIGROT = ½ [GKL(P ‖ Q) + GKL(Pᵀ ‖ Q)] / N, with Q = softmax_rows(κ S), and the plan's total
/// mass Σ Γ* (detached; 1 for a balanced plan).
pub fn sigrot_loss_and_mass<B: SinkhornBackend>(
    image: Tensor<B, 2>,
    text: Tensor<B, 2>,
    teacher_graph: Tensor<B, 2>,
    kappa: Tensor<B, 1>,
    config: &SinkhornConfig,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, _] = image.dims();
    let (p, _) = scaled_plan(image, text, config);
    let mass = p.clone().detach().sum().div_scalar(n as f64);
    let log_q = log_softmax(teacher_graph * kappa.reshape([1, 1]), 1);
    ((generalized_kl(p.clone(), log_q.clone()) + generalized_kl(p.transpose(), log_q)).div_scalar(2.0 * n as f64), mass)
}
// ANCHOR_END: sigrot

/// [`sigrot_loss_and_mass`]'s loss alone.
pub fn sigrot_loss<B: SinkhornBackend>(image: Tensor<B, 2>, text: Tensor<B, 2>, teacher_graph: Tensor<B, 2>, kappa: Tensor<B, 1>, config: &SinkhornConfig) -> Tensor<B, 1> {
    sigrot_loss_and_mass(image, text, teacher_graph, kappa, config).0
}

/// The "+UOT" baseline: the plan, without gradient or teacher, as soft targets for the scaled
/// logits L = s·x·yᵀ: ½ [CE(L, P) + CE(Lᵀ, Pᵀ)].
pub fn uot_loss<B: SinkhornBackend>(image: Tensor<B, 2>, text: Tensor<B, 2>, scale: Tensor<B, 1>, config: &SinkhornConfig) -> Tensor<B, 1> {
    uot_loss_and_mass(image, text, scale, config).0
}

/// [`uot_loss`] and the plan's total mass Σ Γ*.
pub fn uot_loss_and_mass<B: SinkhornBackend>(image: Tensor<B, 2>, text: Tensor<B, 2>, scale: Tensor<B, 1>, config: &SinkhornConfig) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, _] = image.dims();
    let detached = config.with_grad(GradMode::Detach);
    let (p, _) = scaled_plan(image.clone().detach(), text.clone().detach(), &detached);
    let mass = p.clone().sum().div_scalar(n as f64);
    let logits = image.matmul(text.transpose()) * scale.reshape([1, 1]);
    ((soft_cross_entropy_rows(logits.clone(), p.clone()) + soft_cross_entropy_rows(logits.transpose(), p.transpose())) / 2.0, mass)
}

/// Q as a probability matrix, for inspection.
pub fn teacher_target<B: Backend>(teacher_graph: Tensor<B, 2>, kappa: f64) -> Tensor<B, 2> {
    softmax(teacher_graph.mul_scalar(kappa), 1)
}
