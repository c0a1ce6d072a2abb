//! KTVIC: `{train,test}_data.json` (COCO-like, images named by `filename`, captions also
//! word-segmented in `segment_caption`), images in `train-images/` and `public-test-images/`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::annotations::{image_dir, read_json, root_of, splits_on_disk, Id};
use super::coco_json::{collect, CaptionField, CocoJson};
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};
use crate::data::split::Split;

pub struct Ktvic;

impl DatasetFormat for Ktvic {
    fn name(&self) -> &'static str {
        "ktvic"
    }

    /// `text=caption` (the default) or `text=segment_caption`.
    fn own_keys(&self) -> &'static [&'static str] {
        &["text"]
    }

    fn splits(&self) -> &'static [Split] {
        &[Split::Train, Split::Test]
    }

    fn has_splits(&self) -> bool {
        true
    }

    fn available_splits(&self, spec: &DatasetSpec) -> Vec<Split> {
        splits_on_disk(self, |split| annotation_file(spec, split.name()).is_file())
    }

    fn default_language(&self) -> &'static str {
        "vi"
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        // PATH may be one annotation file: its name says whether it is the train split.
        let split = spec.split_to_read()?.unwrap_or_else(|| if spec.path.to_string_lossy().contains("train") { "train".into() } else { "test".into() });
        let field = match spec.get("text") {
            None | Some("caption") => CaptionField::Caption,
            Some("segment_caption") => CaptionField::SegmentCaption,
            Some(other) => bail!("{spec}: text={other}; expected `caption` or `segment_caption`"),
        };
        let file = annotation_file(spec, &split);
        let parsed: CocoJson<KtvicImage> = read_json(&file)?;
        let root = root_of(spec);
        let images: Vec<(Id, String)> = parsed.images.into_iter().map(|i| (i.id, i.filename)).collect();
        let folder = if split == Split::Train.name() { "train-images" } else { "public-test-images" };
        let dir = image_dir(spec, &root, &[root.join(folder), root.join("images"), root.clone()], images.first().map(|i| i.1.as_str()));
        Ok(FormatRead { collector: collect(&file, images, parsed.annotations, &dir, field)?, split: Some(split) })
    }
}

#[derive(Deserialize)]
struct KtvicImage {
    id: Id,
    filename: String,
}

/// The file of `split`, or PATH when it is the file itself.
fn annotation_file(spec: &DatasetSpec, split: &str) -> PathBuf {
    if spec.path.is_file() {
        return spec.path.clone();
    }
    spec.path.join(format!("{split}_data.json"))
}
