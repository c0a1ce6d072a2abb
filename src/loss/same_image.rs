//! The ground truth that CLIP and SigLIP share: which pairs of a batch show the same image.

use burn::prelude::*;

/// For a batch of n pairs, whether pairs i and j come from the same image, and how many pairs
/// share each pair's image (the pair itself included). The relation is symmetric.
#[derive(Debug, Clone)]
pub struct SameImage {
    image_ids: Vec<u64>,
    /// `positives[i]`: the pairs whose image is pair i's.
    positives: Vec<usize>,
}

impl SameImage {
    /// `image_ids[i]` is the source image of pair i.
    pub fn new(image_ids: &[u64]) -> Self {
        let positives = image_ids.iter().map(|id_i| image_ids.iter().filter(|id_j| *id_j == id_i).count()).collect();
        Self { image_ids: image_ids.to_vec(), positives }
    }

    /// The number of pairs, n.
    pub fn len(&self) -> usize {
        self.image_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image_ids.is_empty()
    }

    /// The n × n matrix whose entry (i, j) is `value(same, positives_i)`, where `same` says
    /// whether pairs i and j share an image and `positives_i` counts the pairs that share
    /// pair i's.
    pub fn matrix<B: Backend>(&self, value: impl Fn(bool, f32) -> f32, device: &B::Device) -> Tensor<B, 2> {
        let n = self.len();
        let mut entries = vec![0f32; n * n];
        for (i, id_i) in self.image_ids.iter().enumerate() {
            let positives = self.positives[i] as f32;
            for (j, id_j) in self.image_ids.iter().enumerate() {
                entries[i * n + j] = value(id_i == id_j, positives);
            }
        }
        Tensor::<B, 1>::from_floats(entries.as_slice(), device).reshape([n, n])
    }
}
