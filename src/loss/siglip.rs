//! The multi-positive SigLIP loss (losses.md §2).

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;

use super::same_image::SameImage;

/// ViCLIP-OT's SigLIP initial temperature, 0.06 (so s = 1/0.06), and initial bias, −9.
pub const SIGLIP_INIT_LOGIT_SCALE: f32 = 2.813_410_7;
pub const SIGLIP_INIT_LOGIT_BIAS: f32 = -9.0;

/// Per row i: −Σ_j w_ij · log σ(z_ij · (s · x_i·y_j + b)), averaged over rows, where z_ij = +1 when
/// pairs i and j share an image and −1 otherwise, and w_ij = 1/(positives in row i) for positives
/// and 1 for negatives.
pub fn siglip_loss<B: Backend>(
    image: Tensor<B, 2>,
    text: Tensor<B, 2>,
    scale: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    image_ids: &[u64],
) -> Tensor<B, 1> {
    let device = image.device();
    let truth = SameImage::new(image_ids);
    let signs = truth.matrix(|same, _| if same { 1.0 } else { -1.0 }, &device);
    let weights = truth.matrix(|same, positives| if same { 1.0 / positives } else { 1.0 }, &device);
    let logits = image.matmul(text.transpose()) * scale.reshape([1, 1]) + bias.reshape([1, 1]);
    (log_sigmoid(logits * signs) * weights).sum_dim(1).mean().neg()
}
