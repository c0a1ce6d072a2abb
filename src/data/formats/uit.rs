//! UIT-OpenViIC: `uit-openviic-annotation-{train,dev,test}.json`, one JSON object keyed by image
//! file name (`{"00000005095.jpg": {"captions": ["...", ...]}}`), images in `images/`.

use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::annotations::{image_dir, read_json, root_of, splits_on_disk, UniqueMap};
use crate::data::collector::Collector;
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};
use crate::data::split::Split;

// ANCHOR: format
pub struct UitOpenViic;

impl DatasetFormat for UitOpenViic {
    fn name(&self) -> &'static str {
        "uit-openviic"
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

    fn default_language(&self) -> &'static str {
        "vi"
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        // PATH may be one annotation file, read as the split it is said to be (test by default).
        let split = spec.split_to_read()?.unwrap_or_else(|| "test".into());
        let file = annotation_file(spec, &split);
        let UniqueMap(entries) = read_json::<UniqueMap<Entry>>(&file)?;
        let root = root_of(spec);
        let on_disk = spelt_on_disk(&split);
        let candidates = [root.join("images"), root.join("images").join(on_disk), root.join(on_disk), root.clone()];
        let images = image_dir(spec, &root, &candidates, entries.keys().next().map(String::as_str));
        let mut collector = Collector::new();
        for (name, entry) in &entries {
            for (k, caption) in entry.captions.iter().enumerate() {
                collector.push(name, &images, name, caption, || format!("{}: `{name}.captions[{k}]`", file.display()));
            }
        }
        Ok(FormatRead { collector, split: Some(split) })
    }
}
// ANCHOR_END: format

#[derive(Deserialize)]
struct Entry {
    captions: Vec<String>,
}

/// `val` is spelt `dev` in the file names.
fn spelt_on_disk(split: &str) -> &str {
    if split == Split::Val.name() {
        "dev"
    } else {
        split
    }
}

/// The file of `split`, or PATH when it is the file itself.
fn annotation_file(spec: &DatasetSpec, split: &str) -> PathBuf {
    if spec.path.is_file() {
        return spec.path.clone();
    }
    spec.path.join(format!("uit-openviic-annotation-{}.json", spelt_on_disk(split)))
}
