//! The COCO-like formats: MS-COCO captions (`annotations/captions_{train,val}2017.json`), KTVIC
//! (`{train,test}_data.json`, `filename`, `segment_caption`) and the ViCLIP-OT internal JSON
//! (`{train,val,test}.json`, `image_path`). All are `{"images": [...], "annotations": [...]}`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Deserialize;

use super::{image_dir, read_json, require_split, requested_split, root_of, Id, Read};
use crate::data::collector::Collector;
use crate::data::spec::DatasetSpec;

#[derive(Deserialize)]
struct File<I> {
    images: Vec<I>,
    annotations: Vec<Annotation>,
}

#[derive(Deserialize)]
struct Annotation {
    image_id: Id,
    caption: String,
    #[serde(default)]
    segment_caption: Option<String>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: Id,
    file_name: String,
}

#[derive(Deserialize)]
struct KtvicImage {
    id: Id,
    filename: String,
}

#[derive(Deserialize)]
struct ViclipImage {
    id: Id,
    image_path: String,
}

/// Emits the captions image by image, in the order of `images`. An annotation whose `image_id`
/// names no image stops the read: the file is inconsistent.
fn collect(
    file: &Path,
    images: Vec<(Id, String)>,
    annotations: Vec<Annotation>,
    image_root: &Path,
    segmented: bool,
) -> Result<Collector> {
    let mut by_image: HashMap<Id, Vec<(usize, String)>> = HashMap::new();
    let known: HashMap<&Id, ()> = images.iter().map(|(id, _)| (id, ())).collect();
    for (index, annotation) in annotations.into_iter().enumerate() {
        if !known.contains_key(&annotation.image_id) {
            bail!(
                "{}: at `annotations[{index}].image_id`: {} names no entry of `images`; expected the id of an image",
                file.display(),
                annotation.image_id.0
            );
        }
        let text = match (segmented, annotation.segment_caption) {
            (true, Some(segmented)) => segmented,
            (true, None) => bail!("{}: at `annotations[{index}]`: missing field `segment_caption` (text=segment_caption)", file.display()),
            (false, _) => annotation.caption,
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

/// KTVIC's file and image folder for `split` (train or test).
pub fn ktvic_file(spec: &DatasetSpec, split: &str) -> Result<(PathBuf, &'static str)> {
    let folder = if split == "train" { "train-images" } else { "public-test-images" };
    if spec.path.is_file() {
        return Ok((spec.path.clone(), folder));
    }
    Ok((spec.path.join(format!("{split}_data.json")), folder))
}

pub fn read_ktvic(spec: &DatasetSpec) -> Result<Read> {
    let split = if spec.path.is_file() {
        requested_split(spec).unwrap_or_else(|| if spec.path.to_string_lossy().contains("train") { "train".into() } else { "test".into() })
    } else {
        require_split(spec, &["train", "test"])?
    };
    let segmented = match spec.get("text") {
        None | Some("caption") => false,
        Some("segment_caption") => true,
        Some(other) => bail!("{spec}: text={other}; expected `caption` or `segment_caption`"),
    };
    let (file, folder) = ktvic_file(spec, &split)?;
    let parsed: File<KtvicImage> = read_json(&file)?;
    let root = root_of(spec);
    let images: Vec<(Id, String)> = parsed.images.into_iter().map(|i| (i.id, i.filename)).collect();
    let dir = image_dir(spec, &root, &[root.join(folder), root.join("images"), root.clone()], images.first().map(|i| i.1.as_str()));
    Ok((collect(&file, images, parsed.annotations, &dir, segmented)?, Some(split)))
}

/// COCO's captions file for `split`: `annotations/captions_{split}2017.json` (or 2014).
pub fn coco_file(spec: &DatasetSpec, split: &str) -> Result<PathBuf> {
    if spec.path.is_file() {
        return Ok(spec.path.clone());
    }
    let annotations = spec.path.join("annotations");
    for year in ["2017", "2014"] {
        let file = annotations.join(format!("captions_{split}{year}.json"));
        if file.is_file() {
            return Ok(file);
        }
    }
    Ok(annotations.join(format!("captions_{split}2017.json")))
}

pub fn read_coco(spec: &DatasetSpec) -> Result<Read> {
    let split = if spec.path.is_file() { requested_split(spec) } else { Some(require_split(spec, &["train", "val"])?) };
    let file = coco_file(spec, split.as_deref().unwrap_or("val"))?;
    let parsed: File<CocoImage> = read_json(&file)?;
    // `captions_val2017.json` → images in `val2017/`, beside `annotations/`.
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let folder = stem.strip_prefix("captions_").unwrap_or(&stem).to_string();
    let parent = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = if parent.file_name().is_some_and(|n| n == "annotations") { parent.parent().map(Path::to_path_buf).unwrap_or_default() } else { parent };
    let images: Vec<(Id, String)> = parsed.images.into_iter().map(|i| (i.id, i.file_name)).collect();
    let candidates = [root.join(&folder), root.join("images").join(&folder), root.join("images"), root.clone()];
    let dir = image_dir(spec, &root, &candidates, images.first().map(|i| i.1.as_str()));
    Ok((collect(&file, images, parsed.annotations, &dir, false)?, split.or(Some(folder))))
}

pub fn viclip_ot_file(spec: &DatasetSpec, split: &str) -> Result<PathBuf> {
    if spec.path.is_file() {
        return Ok(spec.path.clone());
    }
    Ok(spec.path.join(format!("{split}.json")))
}

pub fn read_viclip_ot(spec: &DatasetSpec) -> Result<Read> {
    let split = if spec.path.is_file() { requested_split(spec) } else { Some(require_split(spec, &["train", "val", "test"])?) };
    let file = viclip_ot_file(spec, split.as_deref().unwrap_or("test"))?;
    let parsed: File<ViclipImage> = read_json(&file)?;
    let root = root_of(spec);
    // `image_path` is relative to the dataset folder ("images/x.jpg").
    let base = spec.get("images").map(|d| root.join(d)).unwrap_or_else(|| root.clone());
    let images: Vec<(Id, String)> = parsed.images.into_iter().map(|i| (i.id, i.image_path)).collect();
    Ok((collect(&file, images, parsed.annotations, &base, false)?, split))
}
