//! The model card (`README.md`) of an export: the towers and heads, the dataset, the evaluation
//! table from `RUN/results.json` when there is one, how to load the folder in transformers, and
//! the training config (`RUN/config.toml`) as it was.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::data::transform::EvalTransform;
use crate::model::{DualEncoderConfig, HeadConfig, HeadKind};
use crate::train::{DataSource, TrainConfig, TrainState};
use crate::weights::config::JsonFile;
use crate::weights::export::VisionFamily;

/// The figures of `results.json` (as `otclip eval` writes it) that the card shows.
#[derive(Debug, Deserialize)]
struct Results {
    dataset: String,
    metrics: ResultMetrics,
}

#[derive(Debug, Deserialize)]
struct ResultMetrics {
    #[serde(rename = "image_retrieval_recall@1")]
    t2i_r1: f64,
    #[serde(rename = "image_retrieval_recall@5")]
    t2i_r5: f64,
    #[serde(rename = "image_retrieval_recall@10")]
    t2i_r10: f64,
    #[serde(rename = "text_retrieval_recall@1")]
    i2t_r1: f64,
    #[serde(rename = "text_retrieval_recall@5")]
    i2t_r5: f64,
    #[serde(rename = "text_retrieval_recall@10")]
    i2t_r10: f64,
    mean_recall: f64,
    images: usize,
    captions: usize,
}

/// How to load an export (`src/app/load_export.py`, also shown in the book); the card puts the
/// folder in place of [`SNIPPET_PATH`].
pub const LOAD_SNIPPET: &str = include_str!("load_export.py");
/// The folder's placeholder in [`LOAD_SNIPPET`].
pub const SNIPPET_PATH: &str = "path/to/the/export";

fn head(h: &HeadConfig) -> String {
    let bias = if h.bias { " with bias" } else { "" };
    let dropout = if h.dropout > 0.0 { format!(", dropout {} before it", h.dropout) } else { String::new() };
    match h.kind {
        HeadKind::Linear => format!("linear{bias}{dropout}"),
        HeadKind::Mlp => format!("MLP (linear, GELU, linear){bias}{dropout}"),
        HeadKind::None => "none (the pooled output itself)".to_string(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}", x * 100.0)
}

/// The card of checkpoint `checkpoint` of the run in `run_dir`. Errors name the file that is bad.
pub fn model_card(run_dir: &Path, checkpoint: &str, config: &TrainConfig, model: &DualEncoderConfig, state: &TrainState) -> Result<String> {
    let config_path = run_dir.join("config.toml");
    let config_text = std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let results = match JsonFile::read_if_present(&run_dir.join("results.json"))? {
        Some(file) => Some(file.parse::<Results>()?),
        None => None,
    };
    let (v, t) = (&model.vision, &model.text);
    let image_size = config.model.image_size.unwrap_or(v.image_size() as u32);
    let v = v.vit().ok_or_else(|| anyhow::anyhow!("a model card describes an exported (ViT) model; this image tower is convolutional"))?;
    let mut card = String::from("---\nlibrary_name: transformers\ntags:\n- otclip\n- clip\n- image-text-retrieval\n---\n\n");
    let run_name = run_dir.file_name().map_or_else(|| run_dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    writeln!(card, "# otclip dual encoder: {run_name}\n")?;
    writeln!(
        card,
        "A CLIP-style image–text dual encoder trained with otclip, exported from checkpoint `{checkpoint}` \
         (epoch {}, step {}). It loads in Hugging Face transformers with `trust_remote_code=True`: the modelling \
         code is `modeling_otclip.py` in this folder, and its embeddings equal otclip's.\n",
        state.epoch, state.step
    )?;
    writeln!(card, "## Model\n")?;
    writeln!(
        card,
        "- Image tower: `{}`, {} layers, width {}, {} heads, {} px images in {} px patches, pooling `{}`",
        VisionFamily::of(v).model_type(),
        v.num_hidden_layers,
        v.hidden_size,
        v.num_attention_heads,
        v.image_size,
        v.patch_size,
        serde_json::to_value(v.pooling)?.as_str().unwrap_or_default()
    )?;
    writeln!(
        card,
        "- Text tower: `{}`, {} layers, width {}, {} heads, a vocabulary of {} tokens, at most {} tokens per caption, pooling `{}`",
        if t.roberta_positions { "roberta" } else { "bert" },
        t.num_hidden_layers,
        t.hidden_size,
        t.num_attention_heads,
        t.vocab_size,
        config.tokenizer.max_length,
        serde_json::to_value(t.pooling)?.as_str().unwrap_or_default()
    )?;
    writeln!(card, "- Heads: image {}, text {}; embeddings of width {}, L2-normalised", head(&model.image_head), head(&model.text_head), model.projection_dim)?;
    writeln!(card, "- Objective: {} (λ = {})\n", config.loss.objective(), config.loss.lambda)?;
    writeln!(card, "## Dataset\n")?;
    match &config.data.source {
        DataSource::Synthetic(s) => writeln!(
            card,
            "otclip's built-in synthetic dataset: coloured shapes with `{}` captions, {} training, {} validation and {} test \
             images of {} px with {} captions each, drawn from seed {}.\n",
            s.lang, s.train_images, s.val_images, s.test_images, s.image_size, s.captions_per_image, s.seed
        )?,
        DataSource::Dataset(spec) => {
            writeln!(card, "`{spec}` (training split{}).\n", config.data.val.as_ref().map_or(String::new(), |v| format!("; validation: `{v}`")))?
        }
    }
    writeln!(card, "## Evaluation\n")?;
    match results {
        Some(r) => {
            let m = &r.metrics;
            writeln!(card, "Zero-shot retrieval on {} ({} images, {} captions), from `results.json`; recalls in %.\n", r.dataset, m.images, m.captions)?;
            writeln!(card, "| direction | R@1 | R@5 | R@10 |\n|---|---|---|---|")?;
            writeln!(card, "| text → image | {} | {} | {} |", pct(m.t2i_r1), pct(m.t2i_r5), pct(m.t2i_r10))?;
            writeln!(card, "| image → text | {} | {} | {} |\n", pct(m.i2t_r1), pct(m.i2t_r5), pct(m.i2t_r10))?;
            writeln!(card, "Mean recall: {} %.\n", pct(m.mean_recall))?;
        }
        None => writeln!(card, "None: the run has no `results.json` (write one with `otclip eval --run RUN`).\n")?,
    }
    writeln!(card, "## Use it\n")?;
    writeln!(card, "```python\n{}```\n", LOAD_SNIPPET.replace(SNIPPET_PATH, "path/to/this/folder"))?;
    writeln!(
        card,
        "The image processor is otclip's evaluation transform: the shorter side resized to {} px (bicubic), a centre \
         crop of {} px, pixels scaled to [0, 1] and normalised with the run's mean and std. otclip resizes with its own \
         bicubic filter, so pixels from PIL may differ slightly; images already {} × {} px are used as they are by otclip.\n",
        EvalTransform::for_size(image_size).resize,
        image_size,
        image_size,
        image_size
    )?;
    writeln!(card, "## Training config\n\n`config.toml` of the run:\n\n```toml\n{}```", config_text.trim_end().to_string() + "\n")?;
    Ok(card)
}
