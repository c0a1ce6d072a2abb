//! `otclip teacher`: embed a dataset with a trained run or with pretrained towers and write a
//! SIGROT teacher file, keyed by the dataset's own image ids and caption texts.

use std::path::PathBuf;

use anyhow::{bail, Result};
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;

use super::embed::{embed_pixels, embed_texts};
use super::eval::embed_run_split;
use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::transform::EvalTransform;
use crate::data::{teacher, CaptionedImages, DatasetSpec, Split, TeacherRows};
use crate::train::open_spec;
use crate::weights::{load_image_tower, load_text_tower, TowerSource};

/// What computes the teacher embeddings.
#[derive(Debug, Clone)]
pub enum TeacherEncoder {
    /// A trained otclip run: images and captions in its shared embedding space.
    Run { dir: PathBuf, checkpoint: String },
    /// Pretrained towers. With both, they must share one embedding space (one width). With the
    /// text tower alone, an image's row is the mean of its captions' rows; with the image tower
    /// alone, each caption's row is its image's row.
    Towers {
        image: Option<TowerSource>,
        text: Option<PathBuf>,
        /// Apply the image tower's own projection head (CLIP's `visual_projection`).
        project: bool,
        /// Captions are truncated to this many tokens.
        max_length: usize,
        batch_size: usize,
    },
}

pub struct TeacherTask {
    pub encoder: TeacherEncoder,
    /// The dataset to embed; absent: the run's own dataset.
    pub data: Option<DatasetSpec>,
    pub split: Split,
    pub out: PathBuf,
}

impl InferenceTask for TeacherTask {
    /// The number of images written.
    type Output = usize;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<usize> {
        let (dataset, rows, encoder) = match &self.encoder {
            TeacherEncoder::Run { dir, checkpoint } => {
                let (_, dataset, e) = embed_run_split::<B>(dir, checkpoint, self.split, self.data.as_ref(), &device)?;
                let mut captions = e.texts.chunks(e.dim);
                let rows: Vec<TeacherRows> = dataset
                    .entries
                    .iter()
                    .zip(e.images.chunks(e.dim))
                    .map(|(entry, image)| TeacherRows {
                        image: image.to_vec(),
                        captions: captions.by_ref().take(entry.captions.len()).map(<[f32]>::to_vec).collect(),
                    })
                    .collect();
                (dataset, rows, format!("otclip:{checkpoint}@{}", dir.display()))
            }
            TeacherEncoder::Towers { image, text, project, max_length, batch_size } => {
                let Some(spec) = &self.data else { bail!("--image-tower / --text-tower need --data SPEC: the dataset to embed") };
                let dataset = open_spec(spec, self.split)?;
                let images = match image {
                    Some(source) => Some(image_rows::<B>(source, &dataset, *project, *batch_size, &device)?),
                    None => None,
                };
                let texts = match text {
                    Some(dir) => {
                        let tower = load_text_tower::<B>(dir, None, *max_length, false, &device)?;
                        eprint!("{}", tower.report);
                        let captions: Vec<&str> = dataset.entries.iter().flat_map(|e| e.captions.iter().map(String::as_str)).collect();
                        Some(embed_texts(&tower, &captions, *batch_size, &device)?)
                    }
                    None => None,
                };
                let name = [image.as_ref().map(|s| format!("image:{s}")), text.as_ref().map(|d| format!("text:hf:{}", d.display()))];
                let rows = tower_rows(&dataset, images, texts)?;
                (dataset, rows, name.into_iter().flatten().collect::<Vec<_>>().join(" "))
            }
        };
        teacher::save(&self.out, &dataset, &rows, &encoder)?;
        Ok(rows.len())
    }
}

/// The image tower's embedding of every entry, with the tower's own preprocessing.
fn image_rows<B: Backend>(source: &TowerSource, dataset: &CaptionedImages, project: bool, batch_size: usize, device: &B::Device) -> Result<Vec<f32>> {
    let tower = load_image_tower::<B>(source, None, false, device)?;
    eprint!("{}", tower.report);
    if project && tower.model.projection.is_none() {
        bail!("--project: the image tower {source} has no projection head");
    }
    let size = tower.config.image_size;
    let transform = EvalTransform::new().with_resize(size as u32).with_crop(size as u32);
    let mut rows = Vec::new();
    for chunk in dataset.entries.chunks(batch_size.max(1)) {
        let mut pixels = Vec::with_capacity(chunk.len() * 3 * size * size);
        for entry in chunk {
            pixels.extend(transform.apply(&entry.image.load()?, &tower.normalization)?);
        }
        rows.extend(embed_pixels(&tower.model, &pixels, [size, size], batch_size, project, device)?);
    }
    Ok(rows)
}

/// Teacher rows from image rows `[entries, d]` and caption rows `[captions, d]`, either of which
/// may be absent (see [`TeacherEncoder::Towers`]).
fn tower_rows(dataset: &CaptionedImages, images: Option<Vec<f32>>, texts: Option<Vec<f32>>) -> Result<Vec<TeacherRows>> {
    let (n_images, n_texts) = (dataset.entries.len(), dataset.caption_count());
    let width = |rows: &Option<Vec<f32>>, n: usize| rows.as_ref().map(|r| if n == 0 { 0 } else { r.len() / n });
    let (image_dim, text_dim) = (width(&images, n_images), width(&texts, n_texts));
    if let (Some(i), Some(t)) = (image_dim, text_dim) {
        if i != t {
            bail!(
                "the image tower gives {i}-wide and the text tower {t}-wide embeddings; a teacher compares images with \
                 captions, so both must share one embedding space (or give one tower: the other modality is derived from it)"
            );
        }
    }
    let mut next_caption = 0;
    let mut rows = Vec::with_capacity(n_images);
    for (index, entry) in dataset.entries.iter().enumerate() {
        let range = next_caption..next_caption + entry.captions.len();
        next_caption = range.end;
        let captions: Option<Vec<Vec<f32>>> = texts.as_ref().zip(text_dim).map(|(t, d)| range.map(|c| t[c * d..(c + 1) * d].to_vec()).collect());
        let image = match (images.as_ref().zip(image_dim), &captions) {
            (Some((rows, d)), _) => rows[index * d..(index + 1) * d].to_vec(),
            (None, Some(captions)) => mean_row(captions),
            (None, None) => bail!("give --image-tower, --text-tower or both"),
        };
        let captions = captions.unwrap_or_else(|| vec![image.clone(); entry.captions.len()]);
        rows.push(TeacherRows { image, captions });
    }
    Ok(rows)
}

/// The mean of unit-normalised rows.
fn mean_row(rows: &[Vec<f32>]) -> Vec<f32> {
    let dim = rows.first().map_or(0, Vec::len);
    let mut mean = vec![0f32; dim];
    for row in rows {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        mean.iter_mut().zip(row).for_each(|(m, x)| *m += x / norm);
    }
    mean
}

impl TeacherTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<usize> {
        dispatch_inference(spec, false, self)
    }
}
