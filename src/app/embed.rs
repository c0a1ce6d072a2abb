//! `otclip embed`: texts or images in, an f32 `.npy` of shape [n, d] out, with one pretrained
//! tower or with a trained model (a run or an export: projected and normalised as it scores).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use otclip_kernels::SinkhornBackend;

use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::transform::EvalTransform;
use crate::data::decode::decode_image;
use crate::data::{ImageLimits, ImageNormalization};
use crate::model::{Pooling, TextBatch, VitConfig, VitModel};
use crate::model::batch_norm::BatchNormMode;
use crate::weights::{conv_config, load_conv_tower, load_image_tower, load_text_tower, ConvTowerSource, TextTower, TowerSource};
use super::trained::{ModelSource, TrainedModel};

/// What to embed.
#[derive(Debug, Clone)]
pub enum EmbedInput {
    /// One text per line.
    Texts(PathBuf),
    /// A folder of images (sorted by name) or a file listing image paths, one per line.
    Images(PathBuf),
    /// Preprocessed pixels `[n, 3, H, W]`, f32 or f64 `.npy`.
    PixelValues(PathBuf),
}

/// What embeds.
#[derive(Debug, Clone)]
pub enum Embedder {
    /// One pretrained tower: its pooled features (or, with `project`, its own projection).
    Tower(TowerSource),
    /// A trained dual encoder: its normalised embeddings in the shared space.
    Trained(ModelSource),
}

#[derive(Debug, Clone)]
pub struct EmbedTask {
    pub embedder: Embedder,
    pub input: EmbedInput,
    pub pooling: Option<Pooling>,
    pub project: bool,
    pub batch_size: usize,
    pub max_length: usize,
    pub allow_partial: bool,
    pub out: PathBuf,
}

/// Rows written and their width.
#[derive(Debug, Clone, Copy)]
pub struct EmbedSummary {
    pub rows: usize,
    pub dim: usize,
}

impl InferenceTask for EmbedTask {
    type Output = EmbedSummary;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<EmbedSummary> {
        let (rows, count) = match &self.embedder {
            Embedder::Trained(source) => self.with_trained::<B>(source, &device)?,
            Embedder::Tower(tower) => self.with_tower::<B>(tower, &device)?,
        };
        if rows.iter().any(|v| !v.is_finite()) {
            bail!("the embeddings came out non-finite (NaN or infinite); the checkpoint's weights may be corrupt; nothing was written to {}", self.out.display());
        }
        let dim = if count == 0 { 0 } else { rows.len() / count };
        crate::npy::write_f32(&self.out, &[count, dim], &rows)?;
        Ok(EmbedSummary { rows: count, dim })
    }
}

impl EmbedTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<EmbedSummary> {
        dispatch_inference(spec, false, self)
    }

    /// Rows and their count, embedded by a trained model.
    fn with_trained<B: Backend>(&self, source: &ModelSource, device: &B::Device) -> Result<(Vec<f32>, usize)> {
        if self.project || self.pooling.is_some() || self.allow_partial {
            bail!("--project, --pooling and --allow-partial apply to one tower; a trained model embeds as it was trained");
        }
        let model = TrainedModel::<B>::load(source, device)?;
        match &self.input {
            EmbedInput::Texts(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                let texts: Vec<&str> = text.lines().collect();
                Ok((model.embed_texts(&texts, self.batch_size)?, texts.len()))
            }
            EmbedInput::Images(path) => {
                let files = image_list(path)?;
                let mut rows = Vec::with_capacity(files.len() * model.dim());
                // A batch at a time, so that a large folder's pixels are never all in memory.
                for chunk in files.chunks(self.batch_size.max(1)) {
                    let embedded = model.embed_files(chunk, ImageLimits::default(), self.batch_size)?;
                    if let Some((_, error)) = embedded.failed.first() {
                        bail!("cannot embed {error}; nothing was written to {}", self.out.display());
                    }
                    rows.extend(embedded.rows.into_iter().flat_map(|(_, row)| row));
                }
                Ok((rows, files.len()))
            }
            EmbedInput::PixelValues(path) => {
                let array = crate::npy::read(path)?;
                let side = model.batcher.image_size as usize;
                if !matches!(array.shape.as_slice(), [_, 3, h, w] if *h == side && *w == side) {
                    bail!("{}: pixel values of shape {:?}; expected [n, 3, {side}, {side}] for this model", path.display(), array.shape);
                }
                check_finite(path, &array)?;
                let data: Vec<f32> = array.data.iter().map(|&v| v as f32).collect();
                Ok((model.embed_pixels(&data, [side, side], self.batch_size)?, array.shape[0]))
            }
        }
    }

    /// Rows and their count, embedded by one pretrained tower.
    fn with_tower<B: Backend>(&self, tower_source: &TowerSource, device: &B::Device) -> Result<(Vec<f32>, usize)> {
        let device = device.clone();
        let (rows, count) = match &self.input {
            EmbedInput::Texts(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                let texts: Vec<&str> = text.lines().collect();
                let tower = load_text_tower::<B>(tower_source.dir(), self.pooling, self.max_length, self.allow_partial, &device)?;
                eprint!("{}", tower.report);
                if self.project {
                    bail!("--project: BERT-family text towers have no projection head of their own");
                }
                (embed_texts(&tower, &texts, self.batch_size, &device)?, texts.len())
            }
            EmbedInput::Images(_) | EmbedInput::PixelValues(_) if matches!(tower_source, TowerSource::Conv(_)) => {
                let TowerSource::Conv(source) = tower_source else { unreachable!() };
                self.with_conv_tower::<B>(source, &device)?
            }
            EmbedInput::Images(_) | EmbedInput::PixelValues(_) => {
                let tower = load_image_tower::<B>(tower_source, self.pooling, self.allow_partial, &device)?;
                eprint!("{}", tower.report);
                if self.project && tower.model.projection.is_none() {
                    bail!("--project: this image tower has no projection head");
                }
                let (pixels, n, size) = match &self.input {
                    EmbedInput::PixelValues(path) => {
                        let array = crate::npy::read(path)?;
                        check_pixel_values(path, &array, &tower.config)?;
                        let data: Vec<f32> = array.data.iter().map(|&v| v as f32).collect();
                        (data, array.shape[0], [array.shape[2], array.shape[3]])
                    }
                    EmbedInput::Images(path) => {
                        let s = tower.config.image_size;
                        let files = image_list(path)?;
                        let mut data = Vec::with_capacity(files.len() * 3 * s * s);
                        for file in &files {
                            data.extend(preprocess(file, s, &tower.normalization)?);
                        }
                        (data, files.len(), [s, s])
                    }
                    EmbedInput::Texts(_) => unreachable!(),
                };
                (embed_pixels(&tower.model, &pixels, size, self.batch_size, self.project, &device)?, n)
            }
        };
        Ok((rows, count))
    }

    /// Rows and their count, the pooled features of a convolutional tower (eval mode).
    fn with_conv_tower<B: Backend>(&self, source: &ConvTowerSource, device: &B::Device) -> Result<(Vec<f32>, usize)> {
        if self.project || self.pooling.is_some() {
            bail!("--project and --pooling: a convolutional tower has global average pooling and no projection head of its own");
        }
        let side = CONV_IMAGE_SIZE;
        let config = conv_config(&source.preset(), BatchNormMode::Frozen, side)?;
        let (tower, report) = load_conv_tower::<B>(&config, source.source, &source.path, self.allow_partial, device)?;
        eprint!("{report}");
        let (pixels, n, size) = match &self.input {
            EmbedInput::PixelValues(path) => {
                let array = crate::npy::read(path)?;
                if !matches!(array.shape.as_slice(), [_, 3, h, w] if (16..=MAX_PIXEL_SIDE).contains(h) && (16..=MAX_PIXEL_SIDE).contains(w)) {
                    bail!("{}: pixel values of shape {:?}; expected [n, 3, H, W] with sides from 16 to {MAX_PIXEL_SIDE}", path.display(), array.shape);
                }
                check_finite(path, &array)?;
                (array.data.iter().map(|&v| v as f32).collect::<Vec<f32>>(), array.shape[0], [array.shape[2], array.shape[3]])
            }
            EmbedInput::Images(path) => {
                let files = image_list(path)?;
                let mut data = Vec::with_capacity(files.len() * 3 * side * side);
                for file in &files {
                    let image = decode_image(file, ImageLimits::default()).with_context(|| format!("cannot decode image {}", file.display()))?.to_rgb8();
                    // The weights' ImageNet evaluation preset: shorter side to 256/224 of the crop.
                    let transform = EvalTransform::for_size(side as u32).with_interpolation(source.interpolation());
                    data.extend(transform.apply(&image, &source.normalization())?);
                }
                (data, files.len(), [side, side])
            }
            EmbedInput::Texts(_) => unreachable!("texts go to a text tower"),
        };
        let per = 3 * size[0] * size[1];
        let mut rows = Vec::with_capacity(n * config.output_width());
        for chunk in pixels.chunks(per * self.batch_size.max(1)) {
            let x = Tensor::<B, 1>::from_floats(chunk, device).reshape([chunk.len() / per, 3, size[0], size[1]]);
            let (pooled, _) = tower.forward(x);
            rows.extend(pooled.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
        }
        Ok((rows, n))
    }
}

/// The side a convolutional tower's images are resized and cropped to (its ImageNet weights').
const CONV_IMAGE_SIZE: usize = 224;

/// A text tower's pooled embeddings of `texts`, `batch_size` at a time: `[texts, width]` flattened.
pub(crate) fn embed_texts<B: Backend>(tower: &TextTower<B>, texts: &[&str], batch_size: usize, device: &B::Device) -> Result<Vec<f32>> {
    let mut rows = Vec::new();
    for chunk in texts.chunks(batch_size.max(1)) {
        let encoded = tower.tokenizer.encode_batch(chunk)?;
        let shape = [chunk.len(), encoded.length];
        let batch = TextBatch {
            input_ids: Tensor::<B, 1, Int>::from_ints(encoded.ids.as_slice(), device).reshape(shape),
            attention_mask: Tensor::<B, 1, Int>::from_ints(encoded.mask.as_slice(), device).reshape(shape),
        };
        rows.extend(tower.model.embed(&batch).into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    Ok(rows)
}

/// An image tower's embeddings of preprocessed pixels `[n, 3, H, W]` (flattened), pooled or,
/// with `project`, through the tower's own projection head.
pub(crate) fn embed_pixels<B: Backend>(model: &VitModel<B>, pixels: &[f32], size: [usize; 2], batch_size: usize, project: bool, device: &B::Device) -> Result<Vec<f32>> {
    let per = 3 * size[0] * size[1];
    let mut rows = Vec::new();
    for chunk in pixels.chunks(per * batch_size.max(1)) {
        let x = Tensor::<B, 1>::from_floats(chunk, device).reshape([chunk.len() / per, 3, size[0], size[1]]);
        let pooled = model.embed(x);
        let out = if project { model.project(pooled).ok_or_else(|| anyhow::anyhow!("this image tower has no projection head"))? } else { pooled };
        rows.extend(out.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    Ok(rows)
}

/// An error unless `array` is `[n, 3, H, W]` with H and W positive multiples of the patch size
/// (the positions are resized to other grids) up to [`MAX_PIXEL_SIDE`], and every value is finite.
fn check_pixel_values(path: &Path, array: &crate::npy::NpyArray, config: &VitConfig) -> Result<()> {
    let (side, patch) = (config.image_size, config.patch_size);
    let expected = format!("[n, 3, {side}, {side}] (or sides that are multiples of {patch}, up to {MAX_PIXEL_SIDE})");
    let fits = |d: usize| d >= patch && d % patch == 0 && d <= MAX_PIXEL_SIDE;
    match array.shape.as_slice() {
        [_, 3, h, w] if fits(*h) && fits(*w) => {}
        shape => bail!("{}: pixel values of shape {shape:?}; expected {expected} for this tower", path.display()),
    }
    check_finite(path, array)
}

/// An error naming the first pixel value that is NaN or infinite.
fn check_finite(path: &Path, array: &crate::npy::NpyArray) -> Result<()> {
    if let Some(at) = array.data.iter().position(|v| !v.is_finite()) {
        bail!("{}: pixel value {at} (flat index) is {}; expected finite pixel values", path.display(), array.data[at]);
    }
    Ok(())
}

/// The largest image side `--pixel-values` takes.
const MAX_PIXEL_SIDE: usize = 4096;

/// The images of a folder (sorted, by extension) or the paths listed in a file.
fn image_list(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")))
            .collect();
        files.sort();
        Ok(files)
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the image list {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(text.lines().filter(|l| !l.trim().is_empty()).map(|l| base.join(l.trim())).collect())
    }
}

/// Resizes the shorter side to `size` (Pillow's bicubic), crops the centre and normalises: CHW,
/// as HF's CLIP image processor does.
fn preprocess(path: &Path, size: usize, normalization: &ImageNormalization) -> Result<Vec<f32>> {
    let image = decode_image(path, ImageLimits::default()).with_context(|| format!("cannot decode image {}", path.display()))?.to_rgb8();
    let size = size as u32;
    EvalTransform::new().with_resize(size).with_crop(size).apply(&image, normalization)
}
