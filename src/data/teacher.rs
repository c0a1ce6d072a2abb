//! Teacher embeddings for SIGROT, stored as safetensors and matched to a dataset by its own
//! image ids (and caption texts, where the file has them), never by row position.
//!
//! ```text
// ANCHOR: format
//! image_embeds   [n_images, d]    one row per image       f32, f64, f16 or bf16
//! text_embeds    [n_captions, d]  one row per caption     the same dtype
//! __metadata__
//!   format             "otclip-teacher-v2"
//!   encoder            what made the embeddings (free text)
//!   image_ids          JSON list of strings, one per image row: the dataset's own image ids
//!   caption_image_ids  JSON list of strings, one per caption row: the image the caption describes
//!   captions           optional JSON list of strings, one per caption row: its text. With it,
//!                      captions match by text; without it, by order within their image
// ANCHOR_END: format
//! ```
//! Rows are L2-normalised on load. Files of the first format (`otclip-teacher-v1`: i64 tensors
//! `image_ids` and `caption_image_ids`) still load, their numbers read as ids.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::captioned::{CaptionedImages, TeacherRows};
use super::collector::clean_caption;

pub const FORMAT: &str = "otclip-teacher-v2";

/// How many ids an error or warning lists.
const EXAMPLES: usize = 5;

fn normalised(row: &[f32]) -> Vec<f32> {
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    row.iter().map(|x| x / norm).collect()
}

fn read_matrix(tensors: &SafeTensors, name: &str, origin: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let view = tensors.tensor(name).map_err(|_| anyhow!("{}: no tensor `{name}`", origin.display()))?;
    let bytes = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F64 => bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => bail!("{}: tensor `{name}` is {other:?}; expected f32, f64, f16 or bf16", origin.display()),
    };
    match view.shape() {
        &[rows, dim] if dim > 0 => {
            if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
                bail!("{}: tensor `{name}` holds a non-finite value in row {}", origin.display(), bad / dim);
            }
            Ok((values, rows, dim))
        }
        shape => bail!("{}: tensor `{name}` has shape {shape:?}; expected [rows, width] with width > 0", origin.display()),
    }
}

/// The ids of a v1 file (i64 tensors) or of a v2 file (JSON lists in the metadata).
fn read_ids(tensors: &SafeTensors, metadata: &HashMap<String, String>, name: &str, origin: &Path) -> Result<Vec<String>> {
    if let Some(json) = metadata.get(name) {
        return serde_json::from_str(json).with_context(|| format!("{}: metadata `{name}`: expected a JSON list of strings", origin.display()));
    }
    let view = tensors.tensor(name).map_err(|_| anyhow!("{}: no `{name}`: expected a JSON list of ids in the metadata", origin.display()))?;
    if view.dtype() != Dtype::I64 || view.shape().len() != 1 {
        bail!("{}: `{name}` must be a 1-D i64 tensor, found {:?} {:?}", origin.display(), view.dtype(), view.shape());
    }
    Ok(view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")).to_string()).collect())
}

/// The first few of `items`, for messages.
fn examples(items: &[String]) -> String {
    let more = if items.len() > EXAMPLES { ", …" } else { "" };
    format!("{}{more}", items[..items.len().min(EXAMPLES)].join(", "))
}

/// A teacher file matched to a dataset: one [`TeacherRows`] per dataset entry, and what the
/// file has that the dataset does not use.
#[derive(Debug, Clone)]
pub struct MatchedTeacher {
    pub rows: Vec<TeacherRows>,
    /// Image ids of the file that the dataset does not have (a teacher of a larger set).
    pub unused_images: Vec<String>,
    /// Caption rows of the file that no caption of the dataset matched.
    pub unused_captions: usize,
}

impl MatchedTeacher {
    /// One line on stderr when the file holds more than the dataset uses.
    pub fn warn_unused(&self, path: &Path) {
        if !self.unused_images.is_empty() || self.unused_captions > 0 {
            eprintln!(
                "note: teacher {}: {} image ids not in the dataset ({}), {} caption rows unused",
                path.display(),
                self.unused_images.len(),
                examples(&self.unused_images),
                self.unused_captions
            );
        }
    }
}

/// Reads a teacher file and matches its rows to `dataset`'s entries by image id, and captions by
/// text (or by order within their image when the file has no texts). Every dataset image and
/// caption must find its row; the error counts and names the ones that do not.
pub fn load(path: &Path, dataset: &CaptionedImages) -> Result<MatchedTeacher> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read teacher file {}", path.display()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| anyhow!("{} is not a safetensors file: {e}", path.display()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("{} is not a safetensors file: {e}", path.display()))?;
    let (images, n_images, dim) = read_matrix(&tensors, "image_embeds", path)?;
    let (texts, n_texts, text_dim) = read_matrix(&tensors, "text_embeds", path)?;
    let image_ids = read_ids(&tensors, &metadata, "image_ids", path)?;
    let caption_ids = read_ids(&tensors, &metadata, "caption_image_ids", path)?;
    let captions: Option<Vec<String>> = match metadata.get("captions") {
        Some(json) => Some(serde_json::from_str(json).with_context(|| format!("{}: metadata `captions`: expected a JSON list of strings", path.display()))?),
        None => None,
    };
    if text_dim != dim || image_ids.len() != n_images || caption_ids.len() != n_texts || captions.as_ref().is_some_and(|c| c.len() != n_texts) {
        bail!(
            "{}: inconsistent sizes: image_embeds [{n_images}, {dim}], text_embeds [{n_texts}, {text_dim}], image_ids {}, caption_image_ids {}{}; \
             expected one id per row and one width",
            path.display(),
            image_ids.len(),
            caption_ids.len(),
            captions.as_ref().map(|c| format!(", captions {}", c.len())).unwrap_or_default()
        );
    }

    let mut image_row: HashMap<&str, usize> = HashMap::new();
    for (row, id) in image_ids.iter().enumerate() {
        if let Some(first) = image_row.insert(id, row) {
            bail!("{}: image id `{id}` names two image rows ({first} and {row}); expected each id once", path.display());
        }
    }
    // The caption rows of each image, in file order.
    let mut caption_rows: HashMap<&str, Vec<usize>> = HashMap::new();
    for (row, id) in caption_ids.iter().enumerate() {
        caption_rows.entry(id).or_default().push(row);
    }
    let cleaned: Option<Vec<String>> = captions.map(|c| c.iter().map(|t| clean_caption(t)).collect());

    let mut missing_images = Vec::new();
    let mut missing_captions = Vec::new();
    let mut used_captions = HashSet::new();
    let mut rows = Vec::with_capacity(dataset.entries.len());
    for entry in &dataset.entries {
        let Some(&row) = image_row.get(entry.key.as_str()) else {
            missing_images.push(entry.key.clone());
            continue;
        };
        let own = caption_rows.get(entry.key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let mut matched = Vec::with_capacity(entry.captions.len());
        for (k, caption) in entry.captions.iter().enumerate() {
            let found = match &cleaned {
                Some(texts) => {
                    let caption = clean_caption(caption);
                    own.iter().copied().find(|&r| texts[r] == caption)
                }
                None => own.get(k).copied().filter(|_| own.len() == entry.captions.len()),
            };
            match found {
                Some(r) => {
                    used_captions.insert(r);
                    matched.push(normalised(&texts[r * dim..(r + 1) * dim]));
                }
                None => missing_captions.push(format!("{}: \"{caption}\"", entry.key)),
            }
        }
        rows.push(TeacherRows { image: normalised(&images[row * dim..(row + 1) * dim]), captions: matched });
    }
    if !missing_images.is_empty() {
        bail!(
            "{}: no teacher row for {} of the dataset's {} images (ids {}); write the teacher for this dataset (`otclip teacher`)",
            path.display(),
            missing_images.len(),
            dataset.entries.len(),
            examples(&missing_images)
        );
    }
    if !missing_captions.is_empty() {
        let how = if cleaned.is_some() { "by text" } else { "by order: the file has another number of captions for these images" };
        bail!(
            "{}: no teacher row for {} captions (matched {how}): {}",
            path.display(),
            missing_captions.len(),
            examples(&missing_captions)
        );
    }
    let keys: HashSet<&str> = dataset.entries.iter().map(|e| e.key.as_str()).collect();
    let unused_images = image_ids.iter().filter(|id| !keys.contains(id.as_str())).cloned().collect();
    Ok(MatchedTeacher { rows, unused_images, unused_captions: n_texts - used_captions.len() })
}

/// Writes teacher rows (one [`TeacherRows`] per dataset entry) in the format above, with the
/// caption texts, so that the file matches the dataset by id and text.
pub fn save(path: &Path, dataset: &CaptionedImages, rows: &[TeacherRows], encoder: &str) -> Result<()> {
    let dim = rows.first().map(|r| r.image.len()).unwrap_or(0);
    let images: Vec<f32> = rows.iter().flat_map(|r| r.image.iter().copied()).collect();
    let texts: Vec<f32> = rows.iter().flat_map(|r| r.captions.iter().flatten().copied()).collect();
    let image_ids: Vec<&str> = dataset.entries.iter().map(|e| e.key.as_str()).collect();
    let caption_ids: Vec<&str> = dataset.entries.iter().zip(rows).flat_map(|(e, r)| std::iter::repeat_n(e.key.as_str(), r.captions.len())).collect();
    let captions: Vec<&str> = dataset.entries.iter().flat_map(|e| e.captions.iter().map(String::as_str)).collect();
    if captions.len() != caption_ids.len() {
        bail!("teacher rows for {}: {} caption rows for {} captions", path.display(), caption_ids.len(), captions.len());
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (image_bytes, text_bytes) = (bytes(&images), bytes(&texts));
    let views = vec![
        ("image_embeds", TensorView::new(Dtype::F32, vec![rows.len(), dim], &image_bytes)?),
        ("text_embeds", TensorView::new(Dtype::F32, vec![caption_ids.len(), dim], &text_bytes)?),
    ];
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("encoder".to_string(), encoder.to_string()),
        ("image_ids".to_string(), serde_json::to_string(&image_ids)?),
        ("caption_image_ids".to_string(), serde_json::to_string(&caption_ids)?),
        ("captions".to_string(), serde_json::to_string(&captions)?),
    ]);
    let serialized = safetensors::serialize(views, Some(metadata))?;
    std::fs::write(path, serialized).with_context(|| format!("cannot write {}", path.display()))
}
