//! Near-duplicate images across datasets, by perceptual hash (DCT pHash, median threshold, 64 bits): the step that
//! removed KTVIC test images also found in UIT-OpenViIC before zero-shot evaluation.

use std::path::{Path, PathBuf};

use anyhow::Result;
use image_hasher::{HashAlg, HasherConfig, ImageHash};
use rayon::prelude::*;

use super::dataset::ImageTextDataset;

/// One image of the checked dataset and its nearest image in the reference set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Duplicate {
    pub image_id: String,
    pub image: PathBuf,
    pub matches: PathBuf,
    /// Hamming distance between the two 64-bit hashes.
    pub distance: u32,
}

/// Hashes each distinct image of `dataset` (unreadable images are left out).
pub fn hash_images(dataset: &ImageTextDataset) -> Vec<(String, PathBuf, ImageHash)> {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<(String, PathBuf)> =
        dataset.items.iter().filter(|i| seen.insert(i.image.clone())).map(|i| (i.image_id.clone(), i.image.clone())).collect();
    unique
        .into_par_iter()
        .filter_map(|(id, path)| {
            let hasher = HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Median).preproc_dct().to_hasher();
            let image = super::decode::decode_image(&path, dataset.limits).ok()?;
            Some((id, path, hasher.hash_image(&image)))
        })
        .collect()
}

/// Images of `dataset` within `max_distance` bits of some image of `against`.
pub fn find_duplicates(dataset: &ImageTextDataset, against: &ImageTextDataset, max_distance: u32) -> Vec<Duplicate> {
    let reference = hash_images(against);
    let mut found: Vec<Duplicate> = hash_images(dataset)
        .into_par_iter()
        .filter_map(|(image_id, image, hash)| {
            let (distance, matches) = reference.iter().map(|(_, path, other)| (hash.dist(other), path)).min_by_key(|(d, _)| *d)?;
            (distance <= max_distance).then(|| Duplicate { image_id, image, matches: matches.clone(), distance })
        })
        .collect();
    found.sort_by(|a, b| a.image.cmp(&b.image));
    found
}

/// Writes the ids of the images to drop, one per line (the form `exclude=FILE` reads).
pub fn write_drop_list(path: &Path, duplicates: &[Duplicate]) -> Result<()> {
    let text: String = duplicates.iter().map(|d| format!("{}\n", d.image_id)).collect();
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
