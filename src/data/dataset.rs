//! The common API of every real-dataset reader: [`ImageTextDataset`], a flat list of
//! (image id, image path, caption) items plus what was skipped and why.
//! Readers (in `formats/`) parse annotations; this module checks images and groups captions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Result;
use rayon::prelude::*;

use super::captioned::{CaptionedImages, ImageEntry, ImageSource};
use super::collector::{ImageTextItem, SkipReason, Skipped};
use super::decode::{decode_image, ImageLimits};
use super::format::{Captions, DatasetFormat, DatasetSpec};

/// A dataset read from its native format.
#[derive(Debug, Clone)]
pub struct ImageTextDataset {
    /// The canonical spec string, with defaults filled in (it records e.g. `captions=first`).
    pub name: String,
    pub format: &'static dyn DatasetFormat,
    pub language: String,
    /// The split read, when the format has splits.
    pub split: Option<String>,
    pub items: Vec<ImageTextItem>,
    pub skipped: Vec<Skipped>,
    /// The decoding limits (`max_pixels=`), for the check and for loading during training.
    pub limits: ImageLimits,
}

/// How thoroughly [`ImageTextDataset::check_images`] looks at each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Only that the file exists.
    Exists,
    /// Decode every image fully (catches corrupt and truncated files).
    Decode,
}

impl FromStr for Verify {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "exists" => Ok(Verify::Exists),
            "decode" => Ok(Verify::Decode),
            _ => anyhow::bail!("expected `decode` or `exists`"),
        }
    }
}

impl ImageTextDataset {
    /// Reads the annotations of `spec` and applies `exclude=` and `captions=first`; the images are
    /// checked later, by [`DatasetSpec::open`].
    pub fn read(spec: &DatasetSpec) -> Result<Self> {
        let read = spec.format.read(spec)?;
        let language = spec.get("lang").unwrap_or(spec.format.default_language()).to_string();
        // The name records a caption mode that differs from `all` even when it is the default.
        let captions = spec.captions();
        let mut canonical = spec.clone();
        if captions != Captions::All {
            canonical.options.entry("captions".into()).or_insert_with(|| captions.name().into());
        }
        let mut dataset = ImageTextDataset {
            name: canonical.to_string(),
            format: spec.format,
            language,
            split: read.split,
            items: read.collector.items,
            skipped: read.collector.skipped,
            limits: spec.image_limits()?,
        };
        dataset.check_unique_ids()?;
        if let Some(list) = spec.get("exclude") {
            dataset.exclude(Path::new(list))?;
        }
        if captions == Captions::First {
            dataset.keep_first_captions();
        }
        Ok(dataset)
    }

    /// An error when one image id names two different image files: their captions would be
    /// mixed under one image. (Several captions of one file under one id are the usual layout.)
    pub fn check_unique_ids(&self) -> Result<()> {
        let mut files: HashMap<&str, &Path> = HashMap::new();
        for item in &self.items {
            let first = *files.entry(item.image_id.as_str()).or_insert(item.image.as_path());
            if first != item.image.as_path() {
                anyhow::bail!(
                    "{}: image id `{}` names two images, {} and {}; expected one image per id (their captions would be mixed)",
                    self.name,
                    item.image_id,
                    first.display(),
                    item.image.display()
                );
            }
        }
        Ok(())
    }

    /// Distinct images, in first-appearance order.
    pub fn image_count(&self) -> usize {
        self.items.iter().map(|i| &i.image_id).collect::<HashSet<_>>().len()
    }

    pub fn caption_count(&self) -> usize {
        self.items.len()
    }

    /// Skips every image that is missing (or, with [`Verify::Decode`], fails to decode), with all its captions.
    pub fn check_images(&mut self, verify: Verify) {
        let mut unique: Vec<&Path> = Vec::new();
        let mut seen = HashSet::new();
        for item in &self.items {
            if seen.insert(item.image.as_path()) {
                unique.push(item.image.as_path());
            }
        }
        let failures: HashMap<PathBuf, (SkipReason, Option<String>)> = unique
            .par_iter()
            .filter_map(|path| probe_image(path, verify, self.limits).err().map(|failure| (path.to_path_buf(), failure)))
            .collect();
        if failures.is_empty() {
            return;
        }
        let mut reported = HashSet::new();
        for item in &self.items {
            if let Some((reason, detail)) = failures.get(&item.image) {
                if reported.insert(item.image.clone()) {
                    self.skipped.push(Skipped { item: item.image.display().to_string(), reason: *reason, detail: detail.clone() });
                }
            }
        }
        self.items.retain(|item| !failures.contains_key(&item.image));
    }

    /// Skipped items counted by reason.
    pub fn skipped_by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.reason.name()).or_insert(0) += 1;
        }
        counts
    }

    /// Prints one warning per skipped item and a total, to stderr.
    pub fn warn_skipped(&self) {
        for s in &self.skipped {
            match &s.detail {
                Some(detail) => eprintln!("warning: skipped {} ({}: {detail})", s.item, s.reason),
                None => eprintln!("warning: skipped {} ({})", s.item, s.reason),
            }
        }
        if !self.skipped.is_empty() {
            let parts: Vec<String> = self.skipped_by_reason().iter().map(|(r, n)| format!("{n} {r}")).collect();
            eprintln!("warning: {}: skipped {} items in total ({})", self.name, self.skipped.len(), parts.join(", "));
        }
    }

    /// Groups the captions by image: the form the batcher and the evaluation use.
    pub fn to_captioned(&self) -> CaptionedImages {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut entries: Vec<ImageEntry> = Vec::new();
        for item in &self.items {
            let slot = *index.entry(item.image_id.as_str()).or_insert_with(|| {
                entries.push(ImageEntry {
                    image_id: entries.len() as u64,
                    key: item.image_id.clone(),
                    image: ImageSource::File(item.image.clone(), self.limits),
                    captions: Vec::new(),
                });
                entries.len() - 1
            });
            entries[slot].captions.push(item.caption.clone());
        }
        CaptionedImages { name: self.name.clone(), language: self.language.clone(), entries, teacher: None }
    }

    /// Drops the images whose id (or file name) is listed, one per line, in `list`.
    pub fn exclude(&mut self, list: &Path) -> Result<()> {
        let text = std::fs::read_to_string(list).map_err(|e| anyhow::anyhow!("cannot read the exclude list {}: {e}", list.display()))?;
        let drop: HashSet<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let listed = |item: &ImageTextItem| {
            drop.contains(item.image_id.as_str()) || item.image.file_name().is_some_and(|n| drop.contains(n.to_string_lossy().as_ref()))
        };
        let mut reported = HashSet::new();
        for item in self.items.iter().filter(|i| listed(i)) {
            if reported.insert(item.image_id.clone()) {
                self.skipped.push(Skipped { item: item.image.display().to_string(), reason: SkipReason::Excluded, detail: None });
            }
        }
        self.items.retain(|i| !listed(i));
        Ok(())
    }

    /// Keeps only the first caption of each image.
    pub fn keep_first_captions(&mut self) {
        let mut seen = HashSet::new();
        self.items.retain(|item| seen.insert(item.image_id.clone()));
    }
}

/// Opens and (optionally) decodes one image within `limits`; the error says why it is unusable.
pub fn probe_image(path: &Path, verify: Verify, limits: ImageLimits) -> Result<(), (SkipReason, Option<String>)> {
    if !path.is_file() {
        return Err((SkipReason::MissingImage, None));
    }
    if verify == Verify::Exists {
        return Ok(());
    }
    match decode_image(path, limits) {
        Ok(image) if image.width() > 0 && image.height() > 0 => Ok(()),
        Ok(_) => Err((SkipReason::CorruptImage, Some("zero-sized image".into()))),
        Err(error) => Err(error.skip_reason()),
    }
}
