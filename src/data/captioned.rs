//! Images grouped with their captions, the form the batcher, the loader and the evaluation use,
//! and how an epoch pairs them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use image::RgbImage;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::decode::{decode_image, ImageLimits};

/// Where an image's pixels come from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    Memory(Arc<RgbImage>),
    /// A file, decoded within the limits of its dataset.
    File(PathBuf, ImageLimits),
}

impl ImageSource {
    pub fn load(&self) -> Result<RgbImage> {
        match self {
            ImageSource::Memory(image) => Ok(image.as_ref().clone()),
            ImageSource::File(path, limits) => Ok(decode_image(path, *limits)
                .with_context(|| format!("cannot read image {}", path.display()))?
                .to_rgb8()),
        }
    }
}

/// One image and all of its captions.
#[derive(Debug, Clone)]
pub struct ImageEntry {
    /// The entry's number in this dataset (its position), which batches use to find shared images.
    pub image_id: u64,
    /// The dataset's own id of the image (a number, a file name or a hex key); teacher files
    /// are matched by it.
    pub key: String,
    pub image: ImageSource,
    pub captions: Vec<String>,
}

/// Frozen teacher embeddings of one entry: its image and each of its captions (L2-normalised).
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherRows {
    pub image: Vec<f32>,
    pub captions: Vec<Vec<f32>>,
}

/// An image–caption dataset: unique images, each with one or more captions, and optionally
/// teacher embeddings for SIGROT (one [`TeacherRows`] per entry).
#[derive(Debug, Clone)]
pub struct CaptionedImages {
    pub name: String,
    pub language: String,
    pub entries: Vec<ImageEntry>,
    pub teacher: Option<Vec<TeacherRows>>,
}

/// How an epoch pairs images with captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pairing {
    /// Each image once per epoch, with one of its captions drawn at random (open_clip on COCO).
    #[default]
    RandomCaption,
    /// Every (image, caption) pair once per epoch; an image repeats per caption (ViCLIP-OT).
    AllCaptions,
}

/// A (image entry, caption) index pair.
pub type PairIndex = (usize, usize);

impl CaptionedImages {
    pub fn caption_count(&self) -> usize {
        self.entries.iter().map(|e| e.captions.len()).sum()
    }

    /// Every caption as (entry, caption) in dataset order: the evaluation gallery.
    pub fn all_pairs(&self) -> Vec<PairIndex> {
        self.entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| (0..e.captions.len()).map(move |c| (i, c)))
            .collect()
    }

    /// The shuffled pairs of one training epoch.
    pub fn epoch_pairs(&self, pairing: Pairing, rng: &mut ChaCha8Rng) -> Vec<PairIndex> {
        let mut pairs: Vec<PairIndex> = match pairing {
            Pairing::AllCaptions => self.all_pairs(),
            Pairing::RandomCaption => self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.captions.is_empty())
                .map(|(i, e)| (i, *(0..e.captions.len()).collect::<Vec<_>>().choose(rng).unwrap()))
                .collect(),
        };
        pairs.shuffle(rng);
        pairs
    }
}
