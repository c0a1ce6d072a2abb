//! MS-COCO captions: `annotations/captions_{train,val}2017.json` (or 2014), images named by
//! `file_name` in `{split}2017/` beside `annotations/`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use super::annotations::{image_dir, read_json, splits_on_disk, Id};
use super::coco_json::{collect, CaptionField, CocoJson};
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};
use crate::data::split::Split;

pub struct Coco;

impl DatasetFormat for Coco {
    fn name(&self) -> &'static str {
        "coco"
    }

    fn splits(&self) -> &'static [Split] {
        &[Split::Train, Split::Val]
    }

    fn has_splits(&self) -> bool {
        true
    }

    fn available_splits(&self, spec: &DatasetSpec) -> Vec<Split> {
        splits_on_disk(self, |split| captions_file(spec, split.name()).is_file())
    }

    fn default_language(&self) -> &'static str {
        "en"
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        // PATH may be one captions file; its name then says the split (`val2017`).
        let split = spec.split_to_read()?;
        let file = captions_file(spec, split.as_deref().unwrap_or(Split::Val.name()));
        let parsed: CocoJson<CocoImage> = read_json(&file)?;
        // `captions_val2017.json` → images in `val2017/`, beside `annotations/`.
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let folder = stem.strip_prefix("captions_").unwrap_or(&stem).to_string();
        let parent = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let root = if parent.file_name().is_some_and(|n| n == "annotations") { parent.parent().map(Path::to_path_buf).unwrap_or_default() } else { parent };
        let images: Vec<(Id, String)> = parsed.images.into_iter().map(|i| (i.id, i.file_name)).collect();
        let candidates = [root.join(&folder), root.join("images").join(&folder), root.join("images"), root.clone()];
        let dir = image_dir(spec, &root, &candidates, images.first().map(|i| i.1.as_str()));
        Ok(FormatRead { collector: collect(&file, images, parsed.annotations, &dir, CaptionField::Caption)?, split: split.or(Some(folder)) })
    }
}

#[derive(Deserialize)]
struct CocoImage {
    id: Id,
    file_name: String,
}

/// `annotations/captions_{split}2017.json` (or 2014), or PATH when it is the file itself.
fn captions_file(spec: &DatasetSpec, split: &str) -> PathBuf {
    if spec.path.is_file() {
        return spec.path.clone();
    }
    let annotations = spec.path.join("annotations");
    for year in ["2017", "2014"] {
        let file = annotations.join(format!("captions_{split}{year}.json"));
        if file.is_file() {
            return file;
        }
    }
    annotations.join(format!("captions_{split}2017.json"))
}
