//! The multi-positive CLIP loss (losses.md §1).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::same_image::SameImage;

/// G_ij = 1[id_i = id_j] / Σ_k 1[id_i = id_k]: every caption of the same image is a positive,
/// with the weight spread evenly. The relation is symmetric, and so is G.
pub fn multi_positive_targets<B: Backend>(image_ids: &[u64], device: &B::Device) -> Tensor<B, 2> {
    SameImage::new(image_ids).matrix(|same, positives| if same { 1.0 / positives } else { 0.0 }, device)
}

/// The soft-label cross-entropy of each row, −Σ_j G_ij log softmax_j(L_i·), averaged over rows.
pub fn soft_cross_entropy_rows<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
    (targets * log_softmax(logits, 1)).sum_dim(1).mean().neg()
}

/// L_CLIP = ½ [CE_rows(L, G) + CE_rows(Lᵀ, G)] with L = s · X Yᵀ.
///
/// `image` and `text` are `[n, d]` L2-normalised rows, one per pair; `scale` is s = exp(logit_scale),
/// shape `[1]`; `image_ids[i]` is the source image of pair i. With all ids distinct this is the
/// usual symmetric InfoNCE.
pub fn clip_loss<B: Backend>(
    image: Tensor<B, 2>,
    text: Tensor<B, 2>,
    scale: Tensor<B, 1>,
    image_ids: &[u64],
) -> Tensor<B, 1> {
    let [n, _] = image.dims();
    assert_eq!(n, image_ids.len(), "one image id per pair");
    let logits = image.matmul(text.transpose()) * scale.reshape([1, 1]);
    let targets = multi_positive_targets::<B>(image_ids, &logits.device());
    let rows = soft_cross_entropy_rows(logits.clone(), targets.clone());
    let columns = soft_cross_entropy_rows(logits.transpose(), targets);
    (rows + columns) / 2.0
}
