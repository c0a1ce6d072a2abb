//! Turns (image, caption) pairs into tensors: normalised pixels and padded token ids.

use anyhow::Result;
use burn::prelude::*;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::captioned::{CaptionedImages, PairIndex};
use super::resample::Interpolation;
use super::transform::{to_chw, EvalTransform, ImageNormalization, TrainTransform};
use crate::model::TextBatch;
use crate::seed::sample_augment;
use crate::text::CaptionTokenizer;

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
    /// The evaluation transform's resize filter.
    pub interpolation: Interpolation,
}

impl Batcher {
    /// `[3, size, size]` normalised pixels of one image: as-is when already `size` × `size`
    /// (synthetic), else the evaluation transform (short side to size·256/224, centre crop) or,
    /// with `augment`, the training augmentation seeded by `seed`.
    pub fn pixels(&self, image: &RgbImage, augment: Option<(&TrainTransform, u64)>) -> Result<Vec<f32>> {
        match augment {
            Some((transform, seed)) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                transform.apply(image, &self.normalization, &mut rng)
            }
            None if image.dimensions() == (self.image_size, self.image_size) => Ok(to_chw(image, &self.normalization)),
            None => EvalTransform::for_size(self.image_size).with_interpolation(self.interpolation).apply(image, &self.normalization),
        }
    }

    /// `[n, 3, size, size]` normalised pixels for the given entries, decoded in parallel.
    pub fn images<B: Backend>(&self, dataset: &CaptionedImages, entries: &[usize], device: &B::Device) -> Result<Tensor<B, 4>> {
        let size = self.image_size as usize;
        let pixels: Vec<Vec<f32>> = entries
            .par_iter()
            .map(|&i| self.pixels(&dataset.entries[i].image.load()?, None))
            .collect::<Result<_>>()?;
        let flat: Vec<f32> = pixels.concat();
        Ok(Tensor::<B, 1>::from_floats(flat.as_slice(), device).reshape([entries.len(), 3, size, size]))
    }

    /// Decodes and transforms the images of `pairs` in parallel (on the current rayon pool). Pairs
    /// whose image fails to load are dropped and reported in [`HostBatch::failed`]. `pairs` start
    /// at position `first` of their update (not 0 for a data-parallel worker's part); with
    /// `augment`, the pair at position k is seeded by `(seed, k)`, so an update reproduces exactly.
    pub fn host_batch(&self, dataset: &CaptionedImages, pairs: &[PairIndex], first: usize, augment: Option<(&TrainTransform, u64)>) -> HostBatch {
        let decoded: Vec<std::result::Result<Vec<f32>, String>> = pairs
            .par_iter()
            .enumerate()
            .map(|(k, &(i, _))| {
                let sample_seed = augment.map(|(t, seed)| (t, sample_augment(seed, first + k)));
                let entry = &dataset.entries[i];
                entry.image.load().and_then(|image| self.pixels(&image, sample_seed)).map_err(|e| format!("{e:#}"))
            })
            .collect();
        let mut batch = HostBatch { pairs: Vec::with_capacity(pairs.len()), ..Default::default() };
        for (k, (pair, result)) in pairs.iter().zip(decoded).enumerate() {
            match result {
                Ok(pixels) => {
                    batch.pairs.push(*pair);
                    batch.positions.push(first + k);
                    batch.pixels.extend(pixels);
                }
                Err(message) => batch.failed.push(message),
            }
        }
        batch
    }

    /// Tensors of a host batch: pixels, tokens, image ids and teacher rows.
    pub fn to_batch<B: Backend>(&self, dataset: &CaptionedImages, host: HostBatch, device: &B::Device) -> Result<Batch<B>> {
        let size = self.image_size as usize;
        let pairs = &host.pairs;
        let captions: Vec<&str> = pairs.iter().map(|&(i, c)| dataset.entries[i].captions[c].as_str()).collect();
        Ok(Batch {
            pixel_values: Tensor::<B, 1>::from_floats(host.pixels.as_slice(), device).reshape([pairs.len(), 3, size, size]),
            text: self.texts(&captions, device)?,
            image_ids: Self::image_ids(dataset, pairs),
            teacher: Self::teacher_rows(dataset, pairs, device),
        })
    }

    /// The source image of each pair.
    pub fn image_ids(dataset: &CaptionedImages, pairs: &[PairIndex]) -> Vec<u64> {
        pairs.iter().map(|&(i, _)| dataset.entries[i].image_id).collect()
    }

    /// The teacher's rows for the captions and the images of `pairs`, when the dataset has them.
    pub fn teacher_rows<B: Backend>(dataset: &CaptionedImages, pairs: &[PairIndex], device: &B::Device) -> Option<(Tensor<B, 2>, Tensor<B, 2>)> {
        dataset.teacher.as_ref().map(|rows| {
            let dim = rows.first().map(|r| r.image.len()).unwrap_or(0);
            let captions: Vec<f32> = pairs.iter().flat_map(|&(i, c)| rows[i].captions[c].iter().copied()).collect();
            let images: Vec<f32> = pairs.iter().flat_map(|&(i, _)| rows[i].image.iter().copied()).collect();
            let tensor = |v: Vec<f32>| Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape([pairs.len(), dim]);
            (tensor(captions), tensor(images))
        })
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

    /// A batch of `pairs` with the evaluation transform; an image that fails to load is an error.
    pub fn batch<B: Backend>(&self, dataset: &CaptionedImages, pairs: &[PairIndex], device: &B::Device) -> Result<Batch<B>> {
        let host = self.host_batch(dataset, pairs, 0, None);
        if let Some(message) = host.failed.first() {
            anyhow::bail!("{message}");
        }
        self.to_batch(dataset, host, device)
    }
}

/// Decoded, transformed pixels of a batch, before they become tensors (what the loader's workers
/// produce ahead of the training step).
#[derive(Debug, Clone, Default)]
pub struct HostBatch {
    /// The pairs whose images loaded, in order.
    pub pairs: Vec<PairIndex>,
    /// `[pairs, 3, size, size]`, flattened.
    pub pixels: Vec<f32>,
    /// Why each dropped pair's image failed.
    pub failed: Vec<String>,
    /// Each loaded pair's position in its update.
    pub positions: Vec<usize>,
    /// A data-parallel worker's batch: every pair of the update, of which `pairs` are its part
    /// (empty for a whole update).
    pub update: Vec<PairIndex>,
    /// A data-parallel worker's batch: the update's index of its first chunk.
    pub first_chunk: usize,
}
