//! The JSON layout that COCO, KTVIC and the ViCLIP-OT internal files share:
//! `{"images": [{"id", ...}], "annotations": [{"image_id", "caption", ...}]}`. Each of those
//! formats names its image's file differently, so each brings its own image type.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::annotations::Id;
use crate::data::collector::Collector;

#[derive(Deserialize)]
pub struct CocoJson<I> {
    pub images: Vec<I>,
    pub annotations: Vec<Annotation>,
}

#[derive(Deserialize)]
pub struct Annotation {
    image_id: Id,
    caption: String,
    /// KTVIC's word-segmented caption (`đàn_ông`).
    #[serde(default)]
    segment_caption: Option<String>,
}

/// Which text of an annotation to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionField {
    Caption,
    SegmentCaption,
}

/// Emits the captions image by image, in the order of `images` (id, file relative to
/// `image_root`). An annotation whose `image_id` names no image, or two images with one id,
/// stop the read: the file is inconsistent.
pub fn collect(file: &Path, images: Vec<(Id, String)>, annotations: Vec<Annotation>, image_root: &Path, field: CaptionField) -> Result<Collector> {
    let mut by_image: HashMap<Id, Vec<(usize, String)>> = HashMap::new();
    let mut known: HashMap<&Id, usize> = HashMap::new();
    for (index, (id, _)) in images.iter().enumerate() {
        if let Some(first) = known.insert(id, index) {
            bail!(
                "{}: `images[{first}]` and `images[{index}]` both have the id {}; expected one entry per image id (their captions could not be told apart)",
                file.display(),
                id.0
            );
        }
    }
    for (index, annotation) in annotations.into_iter().enumerate() {
        if !known.contains_key(&annotation.image_id) {
            bail!(
                "{}: at `annotations[{index}].image_id`: {} names no entry of `images`; expected the id of an image",
                file.display(),
                annotation.image_id.0
            );
        }
        let text = match (field, annotation.segment_caption) {
            (CaptionField::SegmentCaption, Some(segmented)) => segmented,
            (CaptionField::SegmentCaption, None) => {
                bail!("{}: at `annotations[{index}]`: missing field `segment_caption` (text=segment_caption)", file.display())
            }
            (CaptionField::Caption, _) => annotation.caption,
        };
        by_image.entry(annotation.image_id).or_default().push((index, text));
    }
    let mut collector = Collector::new();
    for (id, relative) in images {
        for (index, caption) in by_image.remove(&id).unwrap_or_default() {
            collector.push(&id.0, image_root, &relative, &caption, || format!("{}: `annotations[{index}].caption`", file.display()));
        }
    }
    Ok(collector)
}
