//! Retrieval metrics on a caption × image score matrix (evaluation.md §1–5).
//!
//! Ranks are 1-based ranks of the first positive. Ties with a negative count against the query,
//! and a NaN score ranks below everything, so a collapsed model can never look good.

use serde::{Deserialize, Serialize};

/// Recall, rank and MAP figures for both directions. Recalls are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    pub images: usize,
    pub captions: usize,
    /// image → text: a hit at K when any of the image's captions is in the top K.
    pub i2t_recall: [f64; 3],
    /// text → image: a hit at K when the caption's own image is in the top K.
    pub t2i_recall: [f64; 3],
    pub i2t_median_rank: f64,
    pub t2i_median_rank: f64,
    pub i2t_mean_rank: f64,
    pub t2i_mean_rank: f64,
    /// Mean average precision over all relevant items (for t2i, AP = 1 / rank).
    pub i2t_map: f64,
    pub t2i_map: f64,
    /// MAP@K for K in [`RECALL_KS`]: AP@K = Σ_{relevant at rank r ≤ K} P(r) / min(K, relevant).
    #[serde(default)]
    pub i2t_map_at: [f64; 3],
    #[serde(default)]
    pub t2i_map_at: [f64; 3],
}

pub const RECALL_KS: [usize; 3] = [1, 5, 10];

impl RetrievalMetrics {
    /// The mean of the six recalls ("Avg." in ViCLIP-OT), as a fraction.
    pub fn mean_recall(&self) -> f64 {
        (self.i2t_recall.iter().sum::<f64>() + self.t2i_recall.iter().sum::<f64>()) / 6.0
    }

    /// The sum of the six recalls, in percent (RSUM, out of 600).
    pub fn rsum(&self) -> f64 {
        self.mean_recall() * 600.0
    }

    /// The expected mean recall of random scores on a gallery of this size, for comparison.
    pub fn chance_mean_recall(&self) -> f64 {
        let per_image = self.captions as f64 / self.images.max(1) as f64;
        let t2i: f64 = RECALL_KS.iter().map(|&k| (k as f64 / self.images as f64).min(1.0)).sum();
        let i2t: f64 = RECALL_KS
            .iter()
            .map(|&k| 1.0 - (1.0 - k as f64 / self.captions as f64).powf(per_image))
            .sum();
        (t2i + i2t) / 6.0
    }
}

/// Whether `other` ranks at or above `positive` (ties and NaN count against the query).
fn at_or_above(other: f32, positive: f32) -> bool {
    !(other < positive) || positive.is_nan()
}

fn median(values: &mut [usize]) -> f64 {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2] as f64,
        _ => (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0,
    }
}

// ANCHOR: average_precision
/// Average precision of one query whose relevant items sit at the 1-based, increasing `ranks`,
/// counting those at rank ≤ `k` and dividing by min(`k`, relevant items): plain AP for
/// `k = usize::MAX`, and for one relevant item 1 / rank, or 0 beyond `k`.
pub fn average_precision(ranks: &[usize], k: usize) -> f64 {
    // A fold from +0.0: `sum` of nothing is −0.0, which would print as such.
    let hits = ranks.iter().enumerate().filter(|&(_, &r)| r <= k).fold(0.0, |sum, (j, &r)| sum + (j + 1) as f64 / r as f64);
    hits / ranks.len().min(k).max(1) as f64
}
// ANCHOR_END: average_precision

/// `scores` is `[captions, images]` row-major; `caption_image[c]` is the image of caption c.
pub fn retrieval_metrics(scores: &[f32], caption_image: &[usize], images: usize) -> RetrievalMetrics {
    let captions = caption_image.len();
    assert_eq!(scores.len(), captions * images, "scores must be captions × images");
    let score = |c: usize, i: usize| scores[c * images + i];

    // text → image: one relevant image per caption.
    let mut t2i_ranks: Vec<usize> = (0..captions)
        .map(|c| {
            let positive = score(c, caption_image[c]);
            1 + (0..images).filter(|&i| i != caption_image[c] && at_or_above(score(c, i), positive)).count()
        })
        .collect();

    // image → text: every caption of the image is relevant.
    let mut captions_of: Vec<Vec<usize>> = vec![Vec::new(); images];
    for (c, &i) in caption_image.iter().enumerate() {
        captions_of[i].push(c);
    }
    let mut i2t_ranks = Vec::with_capacity(images);
    let mut i2t_ap = Vec::with_capacity(images);
    let mut i2t_ap_at = Vec::with_capacity(images);
    for (i, positives) in captions_of.iter().enumerate() {
        if positives.is_empty() {
            continue;
        }
        let mut positive_scores: Vec<f32> = positives.iter().map(|&c| score(c, i)).collect();
        positive_scores.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Greater));
        let negatives: Vec<f32> =
            (0..captions).filter(|&c| caption_image[c] != i).map(|c| score(c, i)).collect();
        let above = |s: f32| negatives.iter().filter(|&&n| at_or_above(n, s)).count();
        i2t_ranks.push(1 + above(positive_scores[0]));
        // The j-th positive (0-based) sits at rank j + 1 + the negatives at or above it.
        let ranks: Vec<usize> = positive_scores.iter().enumerate().map(|(j, &s)| j + 1 + above(s)).collect();
        i2t_ap.push(average_precision(&ranks, usize::MAX));
        i2t_ap_at.push(RECALL_KS.map(|k| average_precision(&ranks, k)));
    }

    let recall = |ranks: &[usize]| RECALL_KS.map(|k| ranks.iter().filter(|&&r| r <= k).count() as f64 / ranks.len().max(1) as f64);
    let mean = |ranks: &[usize]| ranks.iter().sum::<usize>() as f64 / ranks.len().max(1) as f64;
    RetrievalMetrics {
        images,
        captions,
        i2t_recall: recall(&i2t_ranks),
        t2i_recall: recall(&t2i_ranks),
        i2t_mean_rank: mean(&i2t_ranks),
        t2i_mean_rank: mean(&t2i_ranks),
        i2t_map: i2t_ap.iter().sum::<f64>() / i2t_ap.len().max(1) as f64,
        t2i_map: t2i_ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / captions.max(1) as f64,
        i2t_map_at: std::array::from_fn(|index| i2t_ap_at.iter().map(|ap: &[f64; 3]| ap[index]).sum::<f64>() / i2t_ap_at.len().max(1) as f64),
        t2i_map_at: RECALL_KS.map(|k| t2i_ranks.iter().map(|&r| average_precision(&[r], k)).sum::<f64>() / captions.max(1) as f64),
        i2t_median_rank: median(&mut i2t_ranks),
        t2i_median_rank: median(&mut t2i_ranks),
    }
}

/// Where the two modalities sit on the sphere (Liang et al. 2022; Wang & Isola 2020).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingGeometry {
    /// ‖mean image − mean text‖₂.
    pub modality_gap: f64,
    /// Mean ‖x_i − y_i‖² over true (caption, image) pairs.
    pub alignment: f64,
    /// log E exp(−2‖u − v‖²) within each modality (over at most 2,000 rows).
    pub uniformity_image: f64,
    pub uniformity_text: f64,
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

fn uniformity(rows: &[f32], dim: usize) -> f64 {
    let n = (rows.len() / dim).min(2000);
    let mut total = 0.0;
    let mut count = 0usize;
    for i in 0..n {
        for j in (i + 1)..n {
            total += (-2.0 * squared_distance(&rows[i * dim..(i + 1) * dim], &rows[j * dim..(j + 1) * dim])).exp();
            count += 1;
        }
    }
    (total / count.max(1) as f64).ln()
}

/// `images` `[n_images, dim]` and `texts` `[n_captions, dim]`, both L2-normalised, row-major.
pub fn embedding_geometry(images: &[f32], texts: &[f32], dim: usize, caption_image: &[usize]) -> EmbeddingGeometry {
    let mean = |rows: &[f32]| {
        let n = rows.len() / dim;
        (0..dim).map(|d| (0..n).map(|r| rows[r * dim + d] as f64).sum::<f64>() / n.max(1) as f64).collect::<Vec<_>>()
    };
    let (mi, mt) = (mean(images), mean(texts));
    let gap = mi.iter().zip(&mt).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let alignment = caption_image
        .iter()
        .enumerate()
        .map(|(c, &i)| squared_distance(&texts[c * dim..(c + 1) * dim], &images[i * dim..(i + 1) * dim]))
        .sum::<f64>()
        / caption_image.len().max(1) as f64;
    EmbeddingGeometry {
        modality_gap: gap,
        alignment,
        uniformity_image: uniformity(images, dim),
        uniformity_text: uniformity(texts, dim),
    }
}
