//! Flickr8k / Flickr30k token files: `<img>.jpg#<n>\t<caption>` lines (`Flickr8k.token.txt`,
//! `results_20130124.token`), with the split lists `Flickr_8k.{train,dev,test}Images.txt`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::annotations::{image_dir, numbered_lines, read_text, root_of, splits_on_disk};
use crate::data::collector::Collector;
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};
use crate::data::split::Split;

pub struct FlickrToken;

impl DatasetFormat for FlickrToken {
    fn name(&self) -> &'static str {
        "flickr-token"
    }

    fn splits(&self) -> &'static [Split] {
        &[Split::Train, Split::Val, Split::Test]
    }

    /// Without `split=` the whole token file is read.
    fn has_splits(&self) -> bool {
        false
    }

    fn available_splits(&self, spec: &DatasetSpec) -> Vec<Split> {
        splits_on_disk(self, |split| split_list_file(spec, split).is_some())
    }

    fn default_language(&self) -> &'static str {
        "en"
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
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
        Ok(FormatRead { collector, split: members.map(|(split, _)| split.name().to_string()) })
    }
}

const TOKEN_FILES: [&str; 3] = ["Flickr8k.token.txt", "results_20130124.token", "results.token"];

/// The image folders of Flickr8k and Flickr30k, as their archives and Kaggle name them.
pub fn image_candidates(root: &Path) -> Vec<PathBuf> {
    ["Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k-images", "flickr30k_images/flickr30k_images", "flickr30k_images", "Images", "images"]
        .iter()
        .map(|d| root.join(d))
        .chain([root.to_path_buf()])
        .collect()
}

/// `val` is spelt `dev` in the split lists' names.
fn spelt_on_disk(split: Split) -> &'static str {
    match split {
        Split::Val => "dev",
        other => other.name(),
    }
}

/// `Flickr_8k.{train,dev,test}Images.txt` beside the token file, when present.
fn split_list_file(spec: &DatasetSpec, split: Split) -> Option<PathBuf> {
    let file = root_of(spec).join(format!("Flickr_8k.{}Images.txt", spelt_on_disk(split)));
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
fn split_members(spec: &DatasetSpec) -> Result<Option<(Split, HashSet<String>)>> {
    let Some(name) = spec.requested_split() else { return Ok(None) };
    let Ok(split) = name.parse::<Split>() else {
        bail!("{spec}: no split `{name}` in flickr-token; expected train, dev or test");
    };
    let file = split_list_file(spec, split).ok_or_else(|| {
        anyhow!("{spec}: split={name} needs Flickr_8k.{}Images.txt beside the token file (or use the karpathy JSON)", spelt_on_disk(split))
    })?;
    let names = numbered_lines(&read_text(&file)?).map(|(_, l)| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    Ok(Some((split, names)))
}
