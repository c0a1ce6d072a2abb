//! Evaluation: embed a split with a trained model, rank, and report in CLIP_benchmark's shape;
//! and the run's PNG plots (`plots.rs`: training curves, and the embeddings' 2-D projection).

pub mod index;
pub mod metrics_log;
pub mod plots;
pub mod projection;
pub mod retrieval;

use anyhow::Result;
use burn::prelude::*;
use serde_json::json;

pub use retrieval::{embedding_geometry, retrieval_metrics, EmbeddingGeometry, RetrievalMetrics, RECALL_KS};

use crate::data::{Batcher, CaptionedImages};
use crate::model::DualEncoder;

/// L2-normalised embeddings of a split: one row per unique image and one per caption.
pub struct SplitEmbeddings {
    pub dim: usize,
    pub images: Vec<f32>,
    pub texts: Vec<f32>,
    /// For each caption row, the index of its image row.
    pub caption_image: Vec<usize>,
}

/// A tensor's values as f32, row-major.
pub fn to_vec<B: Backend>(tensor: Tensor<B, 2>) -> Result<Vec<f32>> {
    tensor.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("reading embeddings back: {e:?}"))
}

/// Embeds every image and every caption of `dataset`, `batch_size` at a time.
pub fn embed_split<B: Backend>(
    model: &DualEncoder<B>,
    batcher: &Batcher,
    dataset: &CaptionedImages,
    batch_size: usize,
    device: &B::Device,
) -> Result<SplitEmbeddings> {
    let batch_size = batch_size.max(1);
    let mut images = Vec::new();
    let entry_indices: Vec<usize> = (0..dataset.entries.len()).collect();
    for chunk in entry_indices.chunks(batch_size) {
        images.extend(to_vec(model.encode_image(batcher.images::<B>(dataset, chunk, device)?))?);
    }
    let pairs = dataset.all_pairs();
    let mut texts = Vec::new();
    for chunk in pairs.chunks(batch_size) {
        let captions: Vec<&str> = chunk.iter().map(|&(i, c)| dataset.entries[i].captions[c].as_str()).collect();
        texts.extend(to_vec(model.encode_text(&batcher.texts::<B>(&captions, device)?))?);
    }
    let dim = if pairs.is_empty() { 0 } else { texts.len() / pairs.len() };
    Ok(SplitEmbeddings { dim, images, texts, caption_image: pairs.iter().map(|p| p.0).collect() })
}

impl SplitEmbeddings {
    /// Cosine scores `[captions, images]`, row-major.
    pub fn scores(&self) -> Vec<f32> {
        let n_images = self.images.len() / self.dim.max(1);
        let mut scores = Vec::with_capacity(self.caption_image.len() * n_images);
        for text in self.texts.chunks(self.dim.max(1)) {
            for image in self.images.chunks(self.dim.max(1)) {
                scores.push(text.iter().zip(image).map(|(a, b)| a * b).sum());
            }
        }
        scores
    }

    pub fn metrics(&self) -> RetrievalMetrics {
        retrieval_metrics(&self.scores(), &self.caption_image, self.images.len() / self.dim.max(1))
    }

    pub fn geometry(&self) -> EmbeddingGeometry {
        embedding_geometry(&self.images, &self.texts, self.dim, &self.caption_image)
    }
}

/// One evaluation of one model on one split.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub dataset: String,
    pub model: String,
    pub language: String,
    pub metrics: RetrievalMetrics,
    pub geometry: EmbeddingGeometry,
}

impl EvalReport {
    /// CLIP_benchmark's result shape; `image_retrieval` is text → image there. Our extras share `metrics`.
    pub fn to_json(&self) -> serde_json::Value {
        let m = &self.metrics;
        let mut metrics = serde_json::Map::new();
        for (index, k) in RECALL_KS.iter().enumerate() {
            metrics.insert(format!("image_retrieval_recall@{k}"), json!(m.t2i_recall[index]));
            metrics.insert(format!("text_retrieval_recall@{k}"), json!(m.i2t_recall[index]));
            metrics.insert(format!("image_retrieval_map@{k}"), json!(m.t2i_map_at[index]));
            metrics.insert(format!("text_retrieval_map@{k}"), json!(m.i2t_map_at[index]));
        }
        let extra = json!({
            "mean_recall": m.mean_recall(),
            "rsum": m.rsum(),
            "chance_mean_recall": m.chance_mean_recall(),
            "image_retrieval_median_rank": m.t2i_median_rank,
            "text_retrieval_median_rank": m.i2t_median_rank,
            "image_retrieval_mean_rank": m.t2i_mean_rank,
            "text_retrieval_mean_rank": m.i2t_mean_rank,
            "image_retrieval_map": m.t2i_map,
            "text_retrieval_map": m.i2t_map,
            "map_definition": "AP over all relevant items in the full ranked gallery; t2i has one relevant image (AP = 1/rank); ties with negatives count against the query; map@K sums precision at the relevant ranks <= K and divides by min(K, relevant items)",
            "modality_gap": self.geometry.modality_gap,
            "alignment": self.geometry.alignment,
            "uniformity_image": self.geometry.uniformity_image,
            "uniformity_text": self.geometry.uniformity_text,
            "images": m.images,
            "captions": m.captions,
        });
        metrics.extend(extra.as_object().cloned().unwrap_or_default());
        json!({
            "dataset": self.dataset,
            "model": self.model,
            "task": "zeroshot_retrieval",
            "language": self.language,
            "metrics": metrics,
        })
    }

    /// A plain-text table of the figures, recalls in percent.
    pub fn table(&self) -> String {
        let m = &self.metrics;
        let pct = |x: f64| format!("{:6.2}", x * 100.0);
        format!(
            "{} ({} images, {} captions) — {}\n\
             direction       R@1    R@5   R@10   MedR    MAP\n\
             text→image   {} {} {} {:6.1} {:6.3}\n\
             image→text   {} {} {} {:6.1} {:6.3}\n\
             mean recall {}%  (chance {}%)   RSUM {:.2}   modality gap {:.3}\n",
            self.dataset,
            m.images,
            m.captions,
            self.model,
            pct(m.t2i_recall[0]),
            pct(m.t2i_recall[1]),
            pct(m.t2i_recall[2]),
            m.t2i_median_rank,
            m.t2i_map,
            pct(m.i2t_recall[0]),
            pct(m.i2t_recall[1]),
            pct(m.i2t_recall[2]),
            m.i2t_median_rank,
            m.i2t_map,
            pct(m.mean_recall()),
            pct(m.chance_mean_recall()).trim(),
            m.rsum(),
            self.geometry.modality_gap,
        )
    }
}

/// Several runs side by side on the same split: one line each, recalls in percent.
pub fn comparison_table(rows: &[(&str, &EvalReport)]) -> String {
    let mut text = String::from("method          T→I R@1    R@5   R@10 │ I→T R@1    R@5   R@10 │   Avg\n");
    for (name, report) in rows {
        let m = &report.metrics;
        let p = |x: f64| x * 100.0;
        text.push_str(&format!(
            "{name:<14} {:8.2} {:6.2} {:6.2} │ {:7.2} {:6.2} {:6.2} │ {:5.2}\n",
            p(m.t2i_recall[0]),
            p(m.t2i_recall[1]),
            p(m.t2i_recall[2]),
            p(m.i2t_recall[0]),
            p(m.i2t_recall[1]),
            p(m.i2t_recall[2]),
            p(m.mean_recall()),
        ));
    }
    text
}
