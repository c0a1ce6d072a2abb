//! UIT-OpenViIC: `uit-openviic-annotation-{train,dev,test}.json`, one JSON object keyed by image
//! file name (`{"00000005095.jpg": {"captions": ["...", ...]}}`), images in `images/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::{image_dir, read_json, require_split, root_of, Read};
use crate::data::collector::Collector;
use crate::data::spec::DatasetSpec;

#[derive(Deserialize)]
struct Entry {
    captions: Vec<String>,
}

/// The file of `split` (`val` is spelt `dev` on disk); PATH may also be the file itself.
pub fn annotation_file(spec: &DatasetSpec, split: &str) -> Result<PathBuf> {
    if spec.path.is_file() {
        return Ok(spec.path.clone());
    }
    let on_disk = if split == "val" { "dev" } else { split };
    Ok(spec.path.join(format!("uit-openviic-annotation-{on_disk}.json")))
}

pub fn read(spec: &DatasetSpec) -> Result<Read> {
    let split = if spec.path.is_file() { super::requested_split(spec).unwrap_or_else(|| "test".into()) } else { require_split(spec, &["train", "val", "test"])? };
    let file = annotation_file(spec, &split)?;
    let entries: BTreeMap<String, Entry> = read_json(&file)?;
    let root = root_of(spec);
    let on_disk = if split == "val" { "dev" } else { split.as_str() };
    let candidates = [root.join("images"), root.join("images").join(on_disk), root.join(on_disk), root.clone()];
    let images = image_dir(spec, &root, &candidates, entries.keys().next().map(String::as_str));
    let mut collector = Collector::new();
    for (name, entry) in &entries {
        for (k, caption) in entry.captions.iter().enumerate() {
            collector.push(name, &images, name, caption, || format!("{}: `{name}.captions[{k}]`", file.display()));
        }
    }
    Ok((collector, Some(split)))
}
