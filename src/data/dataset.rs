//! The common API of every real-dataset reader: [`ImageTextDataset`], a flat list of
//! (image id, image path, caption) items plus what was skipped and why.
//! Readers (in `formats/`) parse annotations; this module checks images and groups captions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use super::captioned::{CaptionedImages, ImageEntry, ImageSource};
use super::spec::Format;

/// One caption of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTextItem {
    /// The dataset's own id of the image (a number, a file name or a hex key).
    pub image_id: String,
    pub image: PathBuf,
    pub caption: String,
}

/// Why an item did not make it into the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The image file does not exist.
    MissingImage,
    /// The image file exists but does not decode.
    CorruptImage,
    /// The image file ends before its data does.
    TruncatedImage,
    /// The image path leaves the dataset root (`../../etc/x`, or an absolute path elsewhere).
    UnsafePath,
    /// A caption that is empty after trimming.
    EmptyCaption,
    /// An XM3600 line without the requested language.
    MissingLanguage,
    /// Listed in the `exclude=FILE` drop list (e.g. from `otclip data dedup`).
    Excluded,
}

impl SkipReason {
    pub fn name(&self) -> &'static str {
        match self {
            SkipReason::MissingImage => "missing_image",
            SkipReason::CorruptImage => "corrupt_image",
            SkipReason::TruncatedImage => "truncated_image",
            SkipReason::UnsafePath => "unsafe_path",
            SkipReason::EmptyCaption => "empty_caption",
            SkipReason::MissingLanguage => "missing_language",
            SkipReason::Excluded => "excluded",
        }
    }

    /// Whether the reason removes a whole image (else one caption).
    pub fn is_image(&self) -> bool {
        !matches!(self, SkipReason::EmptyCaption)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One skipped image or caption: what it was (a path, or `file:line`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub item: String,
    pub reason: SkipReason,
    /// The decoder's message, for corrupt and truncated images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A dataset read from its native format.
#[derive(Debug, Clone)]
pub struct ImageTextDataset {
    /// The canonical spec string, with defaults filled in (it records e.g. `captions=first`).
    pub name: String,
    pub format: Format,
    pub language: String,
    /// The split read, when the format has splits.
    pub split: Option<String>,
    pub items: Vec<ImageTextItem>,
    pub skipped: Vec<Skipped>,
}

/// How thoroughly [`ImageTextDataset::check_images`] looks at each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Only that the file exists.
    Exists,
    /// Decode every image fully (catches corrupt and truncated files).
    Decode,
}

impl ImageTextDataset {
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
            .filter_map(|path| probe_image(path, verify).err().map(|failure| (path.to_path_buf(), failure)))
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
                    image: ImageSource::File(item.image.clone()),
                    captions: Vec::new(),
                });
                entries.len() - 1
            });
            entries[slot].captions.push(item.caption.clone());
        }
        CaptionedImages { name: self.name.clone(), language: self.language.clone(), entries, teacher: None }
    }

    /// Drops the images whose id (or file name) is listed, one per line, in `list`.
    pub fn exclude(&mut self, list: &Path) -> anyhow::Result<()> {
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

/// Opens and (optionally) decodes one image; the error says why it is unusable.
pub fn probe_image(path: &Path, verify: Verify) -> Result<(), (SkipReason, Option<String>)> {
    if !path.is_file() {
        return Err((SkipReason::MissingImage, None));
    }
    if verify == Verify::Exists {
        return Ok(());
    }
    let decoded = image::ImageReader::open(path).and_then(|r| r.with_guessed_format()).map_err(image::ImageError::IoError);
    match decoded.and_then(|reader| reader.decode()) {
        Ok(image) if image.width() > 0 && image.height() > 0 => Ok(()),
        Ok(_) => Err((SkipReason::CorruptImage, Some("zero-sized image".into()))),
        Err(error) => Err(classify_decode_error(&error)),
    }
}

/// Truncated (the data ends early) or corrupt (anything else), with the decoder's message.
pub fn classify_decode_error(error: &image::ImageError) -> (SkipReason, Option<String>) {
    let message = error.to_string();
    let lower = message.to_lowercase();
    let truncated = matches!(error, image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        || ["eof", "end of file", "unexpected end", "truncat", "not enough data", "no more data"].iter().any(|k| lower.contains(k));
    (if truncated { SkipReason::TruncatedImage } else { SkipReason::CorruptImage }, Some(message))
}

/// Trims a caption, drops stray `\r`, folds inner whitespace runs and normalises to Unicode NFC
/// (so combining and precomposed Vietnamese diacritics tokenise alike).
pub fn clean_caption(raw: &str) -> String {
    let folded: Vec<&str> = raw.split_whitespace().collect();
    folded.join(" ").nfc().collect()
}

/// `base/relative`, or `None` when `relative` would leave `base` (`..` past the root, or an
/// absolute path elsewhere). Purely lexical, so a symlinked image folder still works.
pub fn safe_join(base: &Path, relative: &str) -> Option<PathBuf> {
    let relative = relative.trim();
    if relative.is_empty() || relative.contains('\0') {
        return None;
    }
    let candidate = Path::new(relative);
    if candidate.is_absolute() {
        let normal = normalize(candidate)?;
        let root = normalize(base)?;
        return normal.starts_with(&root).then_some(normal);
    }
    let mut depth: usize = 0;
    for component in candidate.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1)?,
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(base.join(candidate))
}

/// Resolves `.` and `..` lexically; `None` when `..` climbs above the start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// Collects items while a reader walks its annotations: checks paths and captions as they come.
pub struct Collector {
    pub items: Vec<ImageTextItem>,
    pub skipped: Vec<Skipped>,
    unsafe_reported: HashSet<String>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    pub fn new() -> Self {
        Self { items: Vec::new(), skipped: Vec::new(), unsafe_reported: HashSet::new() }
    }

    /// Adds one caption of `image_id`, whose file is `relative` under `image_dir`. `origin` names
    /// the place in the annotation file (for the warning about an empty caption).
    pub fn push(&mut self, image_id: &str, image_dir: &Path, relative: &str, caption: &str, origin: impl FnOnce() -> String) {
        let Some(image) = safe_join(image_dir, relative) else {
            if self.unsafe_reported.insert(relative.to_string()) {
                self.skip(format!("{} ({relative})", origin()), SkipReason::UnsafePath);
            }
            return;
        };
        let caption = clean_caption(caption);
        if caption.is_empty() {
            self.skip(origin(), SkipReason::EmptyCaption);
            return;
        }
        self.items.push(ImageTextItem { image_id: image_id.to_string(), image, caption });
    }

    pub fn skip(&mut self, item: String, reason: SkipReason) {
        self.skipped.push(Skipped { item, reason, detail: None });
    }
}
