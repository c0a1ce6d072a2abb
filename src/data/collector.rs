//! What a reader produces while it walks its annotation files: one [`ImageTextItem`] per caption,
//! and a [`Skipped`] entry for each caption or image path it refuses. The [`Collector`] checks
//! paths (nothing leaves the dataset root) and cleans captions as they come.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

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
    /// The image declares more pixels than `max_pixels=` allows (a decompression bomb).
    ImageTooLarge,
    /// The image path leaves the dataset root (`../../etc/x`, an absolute path elsewhere, or a
    /// symlink that resolves outside the image folder).
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
            SkipReason::ImageTooLarge => "image_too_large",
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
    /// Whether each image path checked so far resolves inside its image folder.
    resolved: HashMap<PathBuf, bool>,
    /// The image folders with their symlinks resolved.
    real_roots: HashMap<PathBuf, Option<PathBuf>>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    pub fn new() -> Self {
        Self { items: Vec::new(), skipped: Vec::new(), unsafe_reported: HashSet::new(), resolved: HashMap::new(), real_roots: HashMap::new() }
    }

    /// Adds one caption of `image_id`, whose file is `relative` under `image_dir`. `origin` names
    /// the place in the annotation file (for the warning about an empty caption).
    pub fn push(&mut self, image_id: &str, image_dir: &Path, relative: &str, caption: &str, origin: impl FnOnce() -> String) {
        let Some(image) = safe_join(image_dir, relative).filter(|image| self.resolves_inside(image_dir, image)) else {
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

    /// Whether `image`, with its symlinks resolved, stays inside `image_dir` (itself resolved, so
    /// a symlinked image folder still works). A missing file passes: it is reported as missing.
    fn resolves_inside(&mut self, image_dir: &Path, image: &Path) -> bool {
        if let Some(&inside) = self.resolved.get(image) {
            return inside;
        }
        let root = self.real_roots.entry(image_dir.to_path_buf()).or_insert_with(|| image_dir.canonicalize().ok());
        let inside = match (root, image.canonicalize()) {
            (Some(root), Ok(real)) => real.starts_with(root),
            _ => true,
        };
        self.resolved.insert(image.to_path_buf(), inside);
        inside
    }

    pub fn skip(&mut self, item: String, reason: SkipReason) {
        self.skipped.push(Skipped { item, reason, detail: None });
    }
}
