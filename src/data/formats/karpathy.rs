//! Karpathy's splits: `dataset_{flickr8k,flickr30k,coco}.json`,
//! `{"images": [{"filename", "imgid", "split", "sentences": [{"raw", ...}], "filepath"?}]}`.
//! `split=train` includes `restval`, as is usual for COCO (113,287 images).

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use super::{image_dir, read_json, requested_split, root_of, Id, Read};
use crate::data::collector::Collector;
use crate::data::spec::DatasetSpec;

#[derive(Deserialize)]
struct File {
    images: Vec<Image>,
}

#[derive(Deserialize)]
struct Image {
    filename: String,
    imgid: Id,
    split: String,
    sentences: Vec<Sentence>,
    #[serde(default)]
    filepath: Option<String>,
}

#[derive(Deserialize)]
struct Sentence {
    raw: String,
}

fn json_file(spec: &DatasetSpec) -> Result<PathBuf> {
    if spec.path.is_file() {
        return Ok(spec.path.clone());
    }
    let found: Vec<PathBuf> = std::fs::read_dir(&spec.path)
        .map_err(|e| anyhow!("cannot read folder {}: {e}", spec.path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("dataset_") && n.to_string_lossy().ends_with(".json")))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{}: no dataset_*.json in this folder", spec.path.display()),
        _ => bail!("{}: several dataset_*.json files; name one in the spec", spec.path.display()),
    }
}

fn wanted(requested: &str, split: &str) -> bool {
    requested == split || (requested == "train" && split == "restval")
}

/// Whether the JSON holds images of `split` (reads the file; used by `data check`).
pub fn has_split(spec: &DatasetSpec, split: &str) -> bool {
    json_file(spec).ok().and_then(|f| read_json::<File>(&f).ok()).is_some_and(|file| file.images.iter().any(|i| wanted(split, &i.split)))
}

pub fn read(spec: &DatasetSpec) -> Result<Read> {
    let file = json_file(spec)?;
    let split = requested_split(spec);
    if let Some(split) = &split {
        if !["train", "val", "test", "restval"].contains(&split.as_str()) {
            bail!("{spec}: no split `{split}` in the karpathy JSON; expected train, val, test or restval");
        }
    }
    let parsed: File = read_json(&file)?;
    let root = root_of(spec);
    let probe = parsed.images.first().map(|i| match &i.filepath {
        Some(path) => format!("{path}/{}", i.filename),
        None => i.filename.clone(),
    });
    let candidates: Vec<PathBuf> = ["images", "Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k-images", "flickr30k_images", "Images"]
        .iter()
        .map(|d| root.join(d))
        .chain([root.clone()])
        .collect();
    let images = image_dir(spec, &root, &candidates, probe.as_deref());
    let mut collector = Collector::new();
    for (i, image) in parsed.images.iter().enumerate() {
        if split.as_ref().is_some_and(|s| !wanted(s, &image.split)) {
            continue;
        }
        let relative = match &image.filepath {
            Some(path) => format!("{path}/{}", image.filename),
            None => image.filename.clone(),
        };
        for (k, sentence) in image.sentences.iter().enumerate() {
            collector.push(&image.imgid.0, &images, &relative, &sentence.raw, || format!("{}: `images[{i}].sentences[{k}].raw`", file.display()));
        }
    }
    Ok((collector, split))
}
