//! Teacher embeddings for SIGROT, stored as safetensors.
//!
//! ```text
// ANCHOR: format
//! image_embeds        f32 [n_images, d]    one row per unique image
//! text_embeds         f32 [n_captions, d]  one row per caption
//! image_ids           i64 [n_images]       the dataset image id of each image row
//! caption_image_ids   i64 [n_captions]     the image id of each caption row; an image's captions
//!                                          appear in dataset order
//! __metadata__        {"format": "otclip-teacher-v1", "encoder": "..."}
// ANCHOR_END: format
//! ```
//! Rows are L2-normalised on load.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::captioned::{CaptionedImages, TeacherRows};

pub const FORMAT: &str = "otclip-teacher-v1";

fn normalised(row: &[f32]) -> Vec<f32> {
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    row.iter().map(|x| x / norm).collect()
}

fn read_f32(tensors: &SafeTensors, name: &str, origin: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let view = tensors.tensor(name).map_err(|_| anyhow!("{}: no tensor `{name}`", origin.display()))?;
    if view.dtype() != Dtype::F32 || view.shape().len() != 2 {
        bail!("{}: `{name}` must be a 2-D f32 tensor, found {:?} {:?}", origin.display(), view.dtype(), view.shape());
    }
    let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((values, view.shape().to_vec()))
}

fn read_ids(tensors: &SafeTensors, name: &str, origin: &Path) -> Result<Vec<i64>> {
    let view = tensors.tensor(name).map_err(|_| anyhow!("{}: no tensor `{name}`", origin.display()))?;
    if view.dtype() != Dtype::I64 || view.shape().len() != 1 {
        bail!("{}: `{name}` must be a 1-D i64 tensor, found {:?} {:?}", origin.display(), view.dtype(), view.shape());
    }
    Ok(view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect())
}

/// Reads a teacher file and matches its rows to `dataset`'s entries by image id.
pub fn load(path: &Path, dataset: &CaptionedImages) -> Result<Vec<TeacherRows>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read teacher file {}", path.display()))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("{} is not a safetensors file: {e}", path.display()))?;
    let (images, image_shape) = read_f32(&tensors, "image_embeds", path)?;
    let (texts, text_shape) = read_f32(&tensors, "text_embeds", path)?;
    let image_ids = read_ids(&tensors, "image_ids", path)?;
    let caption_ids = read_ids(&tensors, "caption_image_ids", path)?;
    let dim = image_shape[1];
    if text_shape[1] != dim || image_ids.len() != image_shape[0] || caption_ids.len() != text_shape[0] {
        bail!(
            "{}: inconsistent shapes: image_embeds {image_shape:?}, text_embeds {text_shape:?}, image_ids [{}], caption_image_ids [{}]",
            path.display(),
            image_ids.len(),
            caption_ids.len()
        );
    }
    let image_row: HashMap<i64, usize> = image_ids.iter().enumerate().map(|(row, &id)| (id, row)).collect();
    let mut caption_rows: HashMap<i64, Vec<usize>> = HashMap::new();
    for (row, &id) in caption_ids.iter().enumerate() {
        caption_rows.entry(id).or_default().push(row);
    }
    dataset
        .entries
        .iter()
        .map(|entry| {
            let id = entry.image_id as i64;
            let row = *image_row.get(&id).ok_or_else(|| anyhow!("{}: no teacher row for image id {id}", path.display()))?;
            let rows = caption_rows.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            if rows.len() != entry.captions.len() {
                bail!(
                    "{}: image id {id} has {} caption rows, the dataset has {} captions",
                    path.display(),
                    rows.len(),
                    entry.captions.len()
                );
            }
            Ok(TeacherRows {
                image: normalised(&images[row * dim..(row + 1) * dim]),
                captions: rows.iter().map(|&r| normalised(&texts[r * dim..(r + 1) * dim])).collect(),
            })
        })
        .collect()
}

/// Writes teacher rows (one [`TeacherRows`] per dataset entry) in the format above.
pub fn save(path: &Path, dataset: &CaptionedImages, rows: &[TeacherRows], encoder: &str) -> Result<()> {
    let dim = rows.first().map(|r| r.image.len()).unwrap_or(0);
    let images: Vec<f32> = rows.iter().flat_map(|r| r.image.iter().copied()).collect();
    let texts: Vec<f32> = rows.iter().flat_map(|r| r.captions.iter().flatten().copied()).collect();
    let image_ids: Vec<i64> = dataset.entries.iter().map(|e| e.image_id as i64).collect();
    let caption_ids: Vec<i64> =
        dataset.entries.iter().zip(rows).flat_map(|(e, r)| std::iter::repeat_n(e.image_id as i64, r.captions.len())).collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let ids = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (image_bytes, text_bytes) = (bytes(&images), bytes(&texts));
    let (image_id_bytes, caption_id_bytes) = (ids(&image_ids), ids(&caption_ids));
    let views = vec![
        ("image_embeds", TensorView::new(Dtype::F32, vec![rows.len(), dim], &image_bytes)?),
        ("text_embeds", TensorView::new(Dtype::F32, vec![caption_ids.len(), dim], &text_bytes)?),
        ("image_ids", TensorView::new(Dtype::I64, vec![image_ids.len()], &image_id_bytes)?),
        ("caption_image_ids", TensorView::new(Dtype::I64, vec![caption_ids.len()], &caption_id_bytes)?),
    ];
    let metadata = HashMap::from([("format".to_string(), FORMAT.to_string()), ("encoder".to_string(), encoder.to_string())]);
    let serialized = safetensors::serialize(views, Some(metadata))?;
    std::fs::write(path, serialized).with_context(|| format!("cannot write {}", path.display()))
}
