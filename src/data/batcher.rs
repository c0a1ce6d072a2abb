//! Turns (image, caption) pairs into tensors: normalised pixels and padded token ids.

use anyhow::Result;
use burn::prelude::*;
use image::imageops::FilterType;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{CaptionedImages, PairIndex};
use crate::model::TextBatch;
use crate::text::CaptionTokenizer;

/// Per-channel mean and standard deviation applied after scaling pixels to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageNormalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl ImageNormalization {
    pub const IMAGENET: Self = Self { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    pub const CLIP: Self = Self {
        mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
        std: [0.268_629_54, 0.261_302_58, 0.275_777_11],
    };
}

impl Default for ImageNormalization {
    fn default() -> Self {
        Self::IMAGENET
    }
}

/// One training or evaluation batch.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    pub pixel_values: Tensor<B, 4>,
    pub text: TextBatch<B>,
    /// The source image of each pair, for the multi-positive targets.
    pub image_ids: Vec<u64>,
    /// Teacher rows for the captions (A) and the images (B), one per pair, when the dataset has them.
    pub teacher: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
}

/// Builds tensors from a dataset on one device.
#[derive(Clone)]
pub struct Batcher {
    pub tokenizer: CaptionTokenizer,
    pub image_size: u32,
    pub normalization: ImageNormalization,
}

impl Batcher {
    /// `[n, 3, size, size]` normalised pixels for the given entries, decoded in parallel.
    pub fn images<B: Backend>(&self, dataset: &CaptionedImages, entries: &[usize], device: &B::Device) -> Result<Tensor<B, 4>> {
        let size = self.image_size as usize;
        let plane = size * size;
        let pixels: Vec<Vec<f32>> = entries
            .par_iter()
            .map(|&i| {
                let mut image = dataset.entries[i].image.load()?;
                if image.dimensions() != (self.image_size, self.image_size) {
                    image = image::imageops::resize(&image, self.image_size, self.image_size, FilterType::CatmullRom);
                }
                let mut chw = vec![0f32; 3 * plane];
                for (index, pixel) in image.pixels().enumerate() {
                    for c in 0..3 {
                        let value = pixel.0[c] as f32 / 255.0;
                        chw[c * plane + index] = (value - self.normalization.mean[c]) / self.normalization.std[c];
                    }
                }
                Ok(chw)
            })
            .collect::<Result<_>>()?;
        let flat: Vec<f32> = pixels.concat();
        Ok(Tensor::<B, 1>::from_floats(flat.as_slice(), device).reshape([entries.len(), 3, size, size]))
    }

    /// Token ids and attention mask for `captions`, padded to the longest (at most the tokenizer's max length).
    pub fn texts<B: Backend>(&self, captions: &[&str], device: &B::Device) -> Result<TextBatch<B>> {
        let encoded = self.tokenizer.encode_batch(captions)?;
        let shape = [captions.len(), encoded.length];
        Ok(TextBatch {
            input_ids: Tensor::<B, 1, Int>::from_ints(encoded.ids.as_slice(), device).reshape(shape),
            attention_mask: Tensor::<B, 1, Int>::from_ints(encoded.mask.as_slice(), device).reshape(shape),
        })
    }

    pub fn batch<B: Backend>(&self, dataset: &CaptionedImages, pairs: &[PairIndex], device: &B::Device) -> Result<Batch<B>> {
        let entries: Vec<usize> = pairs.iter().map(|p| p.0).collect();
        let captions: Vec<&str> = pairs.iter().map(|&(i, c)| dataset.entries[i].captions[c].as_str()).collect();
        Ok(Batch {
            pixel_values: self.images(dataset, &entries, device)?,
            text: self.texts(&captions, device)?,
            image_ids: pairs.iter().map(|&(i, _)| dataset.entries[i].image_id).collect(),
            teacher: dataset.teacher.as_ref().map(|rows| {
                let dim = rows.first().map(|r| r.image.len()).unwrap_or(0);
                let captions: Vec<f32> = pairs.iter().flat_map(|&(i, c)| rows[i].captions[c].iter().copied()).collect();
                let images: Vec<f32> = pairs.iter().flat_map(|&(i, _)| rows[i].image.iter().copied()).collect();
                let tensor = |v: Vec<f32>| Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape([pairs.len(), dim]);
                (tensor(captions), tensor(images))
            }),
        })
    }
}
