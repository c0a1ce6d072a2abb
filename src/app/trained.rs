//! A trained dual encoder ready to embed: from a run's checkpoint or from an export folder, with
//! the tokenizer and the image preprocessing it was trained with. Used by `embed`, `index`,
//! `search` and `serve`; its embeddings are exactly those `otclip eval` ranks with.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::decode::decode_image;
use crate::data::resample::Interpolation;
use crate::data::{Batcher, ImageLimits, ImageNormalization};
use crate::model::DualEncoder;
use crate::text::CaptionTokenizer;
use crate::train::{load_run, TrainConfig};
use crate::weights::config::hf::HfPreprocessorConfig;
use crate::weights::config::JsonFile;
use crate::weights::load_exported;

/// Where a trained model comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    /// A run directory and one of its checkpoints (`best`, `best-2`, …, `last`).
    Run { dir: PathBuf, checkpoint: String },
    /// A folder written by `otclip export`.
    Export { dir: PathBuf },
}

impl ModelSource {
    /// The same source with an absolute path, so that an index still finds it from elsewhere.
    pub fn absolute(self) -> Result<Self> {
        let absolute = |dir: PathBuf| std::path::absolute(&dir).with_context(|| format!("cannot resolve {}", dir.display()));
        Ok(match self {
            Self::Run { dir, checkpoint } => Self::Run { dir: absolute(dir)?, checkpoint },
            Self::Export { dir } => Self::Export { dir: absolute(dir)? },
        })
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Run { dir, checkpoint } => write!(f, "{}:{checkpoint}", dir.display()),
            Self::Export { dir } => write!(f, "{}", dir.display()),
        }
    }
}

/// A loaded model with its preprocessing.
pub struct TrainedModel<B: Backend> {
    pub model: DualEncoder<B>,
    pub batcher: Batcher,
    pub source: ModelSource,
    pub device: B::Device,
    /// The run's training config (`None` for an export): its datasets, for `index --split`.
    pub config: Option<TrainConfig>,
    dim: usize,
}

/// Images embedded from files: the rows of those that decoded, and the errors of the others.
pub struct EmbeddedFiles {
    /// `(index into the files, embedding)` in the files' order.
    pub rows: Vec<(usize, Vec<f32>)>,
    /// `(index into the files, message)`.
    pub failed: Vec<(usize, String)>,
}

impl<B: Backend> TrainedModel<B> {
    pub fn load(source: &ModelSource, device: &B::Device) -> Result<Self> {
        let (model, batcher, dim, config) = match source {
            ModelSource::Run { dir, checkpoint } => {
                let run = load_run::<B>(dir, checkpoint, device)?;
                (run.model, run.batcher, run.model_config.projection_dim, Some(run.config))
            }
            ModelSource::Export { dir } => {
                let (model, config, _) = load_exported::<B>(dir, device)?;
                let tokenizer_path = dir.join("tokenizer.json");
                let max_length = exported_max_length(&tokenizer_path)?.unwrap_or(config.text.max_tokens()).min(config.text.max_tokens());
                let tokenizer = CaptionTokenizer::from_file(&tokenizer_path, max_length)?;
                tokenizer.check_fits(config.text.vocab_size, &format!("{} and {}", tokenizer_path.display(), dir.join("config.json").display()))?;
                let (image_size, normalization, interpolation) = exported_preprocessing(dir, config.vision.image_size() as u32)?;
                (model, Batcher { tokenizer, image_size, normalization, interpolation }, config.projection_dim, None)
            }
        };
        Ok(Self { model, batcher, source: source.clone(), device: device.clone(), config, dim })
    }

    /// The width of the shared embedding space.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// L2-normalised text embeddings, `batch_size` texts at a time, flattened `[texts, dim]`.
    pub fn embed_texts(&self, texts: &[&str], batch_size: usize) -> Result<Vec<f32>> {
        let mut rows = Vec::with_capacity(texts.len() * self.dim());
        for chunk in texts.chunks(batch_size.max(1)) {
            rows.extend(to_vec(self.model.encode_text(&self.batcher.texts::<B>(chunk, &self.device)?))?);
        }
        Ok(rows)
    }

    /// L2-normalised image embeddings of preprocessed pixels `[n, 3, size, size]` (flattened).
    pub fn embed_pixels(&self, pixels: &[f32], size: [usize; 2], batch_size: usize) -> Result<Vec<f32>> {
        let per = 3 * size[0] * size[1];
        let mut rows = Vec::new();
        for chunk in pixels.chunks(per * batch_size.max(1)) {
            let x = Tensor::<B, 1>::from_floats(chunk, &self.device).reshape([chunk.len() / per, 3, size[0], size[1]]);
            rows.extend(to_vec(self.model.encode_image(x))?);
        }
        Ok(rows)
    }

    /// Decodes `files` in parallel with the evaluation transform and embeds those that decode,
    /// `batch_size` at a time; the others are reported, not fatal.
    pub fn embed_files(&self, files: &[PathBuf], limits: ImageLimits, batch_size: usize) -> Result<EmbeddedFiles> {
        let decoded: Vec<Result<Vec<f32>, String>> = files
            .par_iter()
            .map(|path| {
                let image = decode_image(path, limits).map_err(|e| format!("{}: {e}", path.display()))?;
                self.batcher.pixels(&image.to_rgb8(), None).map_err(|e| format!("{}: {e:#}", path.display()))
            })
            .collect();
        let mut failed = Vec::new();
        let mut kept = Vec::new();
        let mut pixels = Vec::new();
        for (index, result) in decoded.into_iter().enumerate() {
            match result {
                Ok(values) => {
                    kept.push(index);
                    pixels.extend(values);
                }
                Err(message) => failed.push((index, message)),
            }
        }
        let size = self.batcher.image_size as usize;
        let flat = self.embed_pixels(&pixels, [size, size], batch_size)?;
        let dim = self.dim();
        let rows = kept.into_iter().zip(flat.chunks(dim.max(1)).map(<[f32]>::to_vec)).collect();
        Ok(EmbeddedFiles { rows, failed })
    }
}

fn to_vec<B: Backend>(tensor: Tensor<B, 2>) -> Result<Vec<f32>> {
    let rows = crate::eval::to_vec(tensor)?;
    if rows.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the embeddings came out non-finite (NaN or infinite); the model's weights may be corrupt");
    }
    Ok(rows)
}

/// The truncation length an exported `tokenizer.json` was saved with, if it records one.
fn exported_max_length(path: &Path) -> Result<Option<usize>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    Ok(json.pointer("/truncation/max_length").and_then(serde_json::Value::as_u64).map(|n| n as usize).filter(|&n| n > 0))
}

/// The crop size, normalisation and resize filter of an export's `preprocessor_config.json`
/// (CLIP's `crop_size` or ViT's `size`); the tower's image size, the default normalisation and
/// bicubic when absent.
fn exported_preprocessing(dir: &Path, image_size: u32) -> Result<(u32, ImageNormalization, Interpolation)> {
    let path = dir.join("preprocessor_config.json");
    let Some(json) = JsonFile::read_if_present(&path)? else {
        return Ok((image_size, ImageNormalization::default(), Interpolation::default()));
    };
    let preprocessor = json.parse::<HfPreprocessorConfig>()?;
    let side = preprocessor.image_side().map_or(image_size, |side| side as u32);
    let default = ImageNormalization::default();
    let normalization = ImageNormalization { mean: preprocessor.image_mean.unwrap_or(default.mean), std: preprocessor.image_std.unwrap_or(default.std) };
    if side == 0 || normalization.std.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
        anyhow::bail!("{}: expected a positive image size and positive, finite image_std", path.display());
    }
    let interpolation = match preprocessor.resample {
        None => Interpolation::default(),
        Some(code) => Interpolation::from_pil_code(code).with_context(|| format!("{}: key `resample` = {code}: expected 2 (bilinear) or 3 (bicubic)", path.display()))?,
    };
    Ok((side, normalization, interpolation))
}
