//! Flickr8k / Flickr30k: the token files (`<img>.jpg#<n>\t<caption>`, `Flickr8k.token.txt`,
//! `results_20130124.token`) with the split lists `Flickr_8k.{train,dev,test}Images.txt`, and
//! Kaggle's CSVs (`captions.txt`: `image,caption`; `results.csv`: `image_name| comment_number| comment`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::{image_dir, numbered_lines, read_text, requested_split, root_of, Read};
use crate::data::collector::Collector;
use crate::data::spec::DatasetSpec;

const TOKEN_FILES: [&str; 3] = ["Flickr8k.token.txt", "results_20130124.token", "results.token"];

fn image_candidates(root: &Path) -> Vec<PathBuf> {
    ["Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k-images", "flickr30k_images/flickr30k_images", "flickr30k_images", "Images", "images"]
        .iter()
        .map(|d| root.join(d))
        .chain([root.to_path_buf()])
        .collect()
}

/// `Flickr_8k.{train,dev,test}Images.txt` beside the token file, when present.
pub fn split_list_file(spec: &DatasetSpec, split: &str) -> Option<PathBuf> {
    let on_disk = if split == "val" { "dev" } else { split };
    let file = root_of(spec).join(format!("Flickr_8k.{on_disk}Images.txt"));
    file.is_file().then_some(file)
}

fn token_file(spec: &DatasetSpec) -> Result<PathBuf> {
    if spec.path.is_file() {
        return Ok(spec.path.clone());
    }
    TOKEN_FILES
        .iter()
        .map(|name| spec.path.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{}: no token file ({}) in this folder", spec.path.display(), TOKEN_FILES.join(", ")))
}

/// The image names listed for the requested split, if a split was asked for.
fn split_members(spec: &DatasetSpec) -> Result<Option<(String, HashSet<String>)>> {
    let Some(split) = requested_split(spec) else { return Ok(None) };
    if !["train", "val", "test"].contains(&split.as_str()) {
        bail!("{spec}: no split `{split}` in flickr-token; expected train, dev or test");
    }
    let file = split_list_file(spec, &split).ok_or_else(|| {
        anyhow!("{spec}: split={split} needs Flickr_8k.{}Images.txt beside the token file (or use the karpathy JSON)", if split == "val" { "dev" } else { &split })
    })?;
    let names = numbered_lines(&read_text(&file)?).map(|(_, l)| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    Ok(Some((split, names)))
}

pub fn read_token(spec: &DatasetSpec) -> Result<Read> {
    let file = token_file(spec)?;
    let members = split_members(spec)?;
    let text = read_text(&file)?;
    let origin = file.display().to_string();
    let root = root_of(spec);
    let mut collector = Collector::new();
    let mut images: Option<PathBuf> = None;
    for (number, line) in numbered_lines(&text) {
        if line.trim().is_empty() {
            continue;
        }
        let expected = "expected `<image>#<n><TAB><caption>`";
        let (key, caption) = line.split_once('\t').ok_or_else(|| anyhow!("{origin}:{number}: no tab; {expected}"))?;
        let (name, index) = key.rsplit_once('#').ok_or_else(|| anyhow!("{origin}:{number}: no `#<n>` after the image name; {expected}"))?;
        if name.is_empty() || index.trim().parse::<u32>().is_err() {
            bail!("{origin}:{number}: `{key}` is not `<image>#<n>`; {expected}");
        }
        if members.as_ref().is_some_and(|(_, names)| !names.contains(name)) {
            continue;
        }
        let dir = images.get_or_insert_with(|| image_dir(spec, &root, &image_candidates(&root), Some(name)));
        collector.push(name, dir, name, caption, || format!("{origin}:{number}"));
    }
    Ok((collector, members.map(|(split, _)| split)))
}

pub fn read_csv(spec: &DatasetSpec) -> Result<Read> {
    if let Some(split) = spec.get("split") {
        bail!("{spec}: Kaggle's Flickr CSVs have no splits (split={split}); use the karpathy JSON for splits");
    }
    let file = if spec.path.is_file() {
        spec.path.clone()
    } else {
        ["captions.txt", "results.csv"]
            .iter()
            .map(|name| spec.path.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| anyhow!("{}: neither captions.txt nor results.csv in this folder", spec.path.display()))?
    };
    let text = read_text(&file)?;
    let origin = file.display().to_string();
    let header = text.lines().next().unwrap_or("");
    // Flickr30k's results.csv is `|`-separated with a space after each `|`.
    let (delimiter, image_col, caption_col) = if header.contains('|') { (b'|', "image_name", "comment") } else { (b',', "image", "caption") };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| anyhow!("{origin}:1: cannot read the header: {e}"))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            anyhow!("{origin}:1: expected a column `{name}` in the header, found {}", headers.iter().collect::<Vec<_>>().join(", "))
        })
    };
    let (image_at, caption_at) = (column(image_col)?, column(caption_col)?);
    let root = root_of(spec);
    let mut collector = Collector::new();
    let mut images: Option<PathBuf> = None;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            anyhow!("{origin}:{line}: {e}")
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let (Some(name), Some(caption)) = (record.get(image_at), record.get(caption_at)) else {
            bail!("{origin}:{line}: expected {} fields ({image_col}, …, {caption_col}), found {}", headers.len(), record.len());
        };
        let dir = images.get_or_insert_with(|| image_dir(spec, &root, &image_candidates(&root), Some(name)));
        collector.push(name, dir, name, caption, || format!("{origin}:{line}"));
    }
    Ok((collector, None))
}
