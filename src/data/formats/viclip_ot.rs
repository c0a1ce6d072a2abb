//! The ViCLIP-OT internal JSON: `{train,val,test}.json` (COCO-like, `id` a number or a string,
//! images named by `image_path` relative to the dataset folder, e.g. `images/x.jpg`).

use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::annotations::{read_json, root_of, splits_on_disk, Id};
use super::coco_json::{collect, CaptionField, CocoJson};
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};
use crate::data::split::Split;

pub struct ViclipOt;

impl DatasetFormat for ViclipOt {
    fn name(&self) -> &'static str {
        "viclip-ot"
    }

    fn splits(&self) -> &'static [Split] {
        &[Split::Train, Split::Val, Split::Test]
    }

    fn has_splits(&self) -> bool {
        true
    }

    fn available_splits(&self, spec: &DatasetSpec) -> Vec<Split> {
        splits_on_disk(self, |split| annotation_file(spec, split.name()).is_file())
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        let split = spec.split_to_read()?;
        let file = annotation_file(spec, split.as_deref().unwrap_or(Split::Test.name()));
        let parsed: CocoJson<ViclipImage> = read_json(&file)?;
        let root = root_of(spec);
        // `image_path` is relative to the dataset folder ("images/x.jpg").
        let base = spec.get("images").map(|d| root.join(d)).unwrap_or_else(|| root.clone());
        let images: Vec<(Id, String)> = parsed.images.into_iter().map(|i| (i.id, i.image_path)).collect();
        Ok(FormatRead { collector: collect(&file, images, parsed.annotations, &base, CaptionField::Caption)?, split })
    }
}

#[derive(Deserialize)]
struct ViclipImage {
    id: Id,
    image_path: String,
}

/// `{split}.json`, or PATH when it is the file itself.
fn annotation_file(spec: &DatasetSpec, split: &str) -> PathBuf {
    if spec.path.is_file() {
        return spec.path.clone();
    }
    spec.path.join(format!("{split}.json"))
}
