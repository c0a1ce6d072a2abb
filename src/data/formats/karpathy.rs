//! Karpathy's splits: `dataset_{flickr8k,flickr30k,coco}.json`,
//! `{"images": [{"filename", "imgid", "split", "sentences": [{"raw", ...}], "filepath"?}]}`.
//! `split=train` includes `restval`, as is usual for COCO (113,287 images); `split=restval` reads
//! `restval` alone.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use super::annotations::{image_dir, read_json, root_of, Id};
use crate::data::collector::Collector;
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};
use crate::data::split::Split;

pub struct Karpathy;

impl DatasetFormat for Karpathy {
    fn name(&self) -> &'static str {
        "karpathy"
    }

    fn splits(&self) -> &'static [Split] {
        &[Split::Train, Split::Val, Split::Test]
    }

    fn has_splits(&self) -> bool {
        true
    }

    /// The splits that some image of the JSON belongs to (reads the whole file).
    fn available_splits(&self, spec: &DatasetSpec) -> Vec<Split> {
        let Some(file) = json_file(spec).ok().and_then(|f| read_json::<File>(&f).ok()) else { return Vec::new() };
        self.splits().iter().copied().filter(|split| file.images.iter().any(|i| wanted(split.name(), &i.split))).collect()
    }

    fn default_language(&self) -> &'static str {
        "en"
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        let file = json_file(spec)?;
        let split = spec.requested_split();
        if let Some(split) = &split {
            if !NATIVE_SPLITS.iter().any(|(native, _)| *native == split.as_str()) {
                bail!("{spec}: no split `{split}` in the karpathy JSON; expected train, val, test or restval");
            }
        }
        let parsed: File = read_json(&file)?;
        let root = root_of(spec);
        let probe = parsed.images.first().map(Image::relative_path);
        let candidates: Vec<PathBuf> = ["images", "Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k-images", "flickr30k_images", "Images"]
            .iter()
            .map(|d| root.join(d))
            .chain([root.clone()])
            .collect();
        let images = image_dir(spec, &root, &candidates, probe.as_deref());
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for (i, image) in parsed.images.iter().enumerate() {
            if let Some(first) = first_of.insert(&image.imgid.0, i) {
                bail!(
                    "{}: `images[{first}]` ({}) and `images[{i}]` ({}) both have imgid {}; expected one entry per imgid (their captions would be mixed)",
                    file.display(),
                    parsed.images[first].relative_path(),
                    image.relative_path(),
                    image.imgid.0
                );
            }
        }
        let mut collector = Collector::new();
        for (i, image) in parsed.images.iter().enumerate() {
            if split.as_ref().is_some_and(|s| !wanted(s, &image.split)) {
                continue;
            }
            let relative = image.relative_path();
            for (k, sentence) in image.sentences.iter().enumerate() {
                collector.push(&image.imgid.0, &images, &relative, &sentence.raw, || format!("{}: `images[{i}].sentences[{k}].raw`", file.display()));
            }
        }
        Ok(FormatRead { collector, split })
    }
}

/// The JSON's split names and the split each belongs to: `restval` is part of train.
const NATIVE_SPLITS: [(&str, Split); 4] = [("train", Split::Train), ("restval", Split::Train), ("val", Split::Val), ("test", Split::Test)];

/// Whether an image of the JSON's split `native` is read for `split=requested`: `requested` is
/// that native split itself, or the typed split it belongs to.
fn wanted(requested: &str, native: &str) -> bool {
    requested == native || NATIVE_SPLITS.iter().any(|(name, split)| *name == native && split.name() == requested)
}

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

impl Image {
    /// `filepath/filename` (COCO's `val2014/...`), or the file name alone.
    fn relative_path(&self) -> String {
        match &self.filepath {
            Some(path) => format!("{path}/{}", self.filename),
            None => self.filename.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Sentence {
    raw: String,
}

/// PATH itself, or the one `dataset_*.json` in the folder PATH.
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
