//! What a dataset format is, the [`DatasetFormat`] trait, and what its reader is given, a
//! [`DatasetSpec`]. They share this file because each names the other.
//!
//! The dataset-format layer imports one way, bottom to top: `split.rs` and `collector.rs`; this
//! file; the readers' shared files (`formats/annotations.rs`, `coco_json.rs`, `table.rs`); one file
//! per format in `formats/`; the registry, `formats/mod.rs`; `dataset.rs`; and `spec.rs`, which
//! parses spec strings and opens datasets.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};

use super::collector::Collector;
use super::split::Split;

/// One dataset format: its name in spec strings, the keys and splits its specs may name, and
/// its reader. Each format is one file in `formats/` and one line of `formats::FORMATS`.
pub trait DatasetFormat: Sync {
    /// The FORMAT of a spec string, e.g. `uit-openviic`.
    fn name(&self) -> &'static str;

    /// The spec keys it takes besides [`COMMON_KEYS`].
    fn own_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// The splits `split=` may name; empty when the format has no fixed splits.
    fn splits(&self) -> &'static [Split] {
        &[]
    }

    /// Whether it is read one split at a time, so that `split=` defaults to the caller's split.
    fn has_splits(&self) -> bool {
        false
    }

    /// The splits on disk for `spec` (ignoring its own `split=`), which `data check` opens one by
    /// one; empty: the dataset is opened whole.
    fn available_splits(&self, _spec: &DatasetSpec) -> Vec<Split> {
        Vec::new()
    }

    /// The language of the captions when the spec has no `lang=`.
    fn default_language(&self) -> &'static str {
        UNDETERMINED_LANGUAGE
    }

    /// The caption mode when the spec has no `captions=`.
    fn default_captions(&self) -> Captions {
        Captions::All
    }

    /// Whether a spec must name a PATH (a generated dataset has none).
    fn needs_path(&self) -> bool {
        true
    }

    /// Reads the annotation files of `spec` (the images are checked later, when the dataset opens).
    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead>;
}

/// The BCP 47 code for "not said".
pub const UNDETERMINED_LANGUAGE: &str = "und";

/// What a reader returns.
pub struct FormatRead {
    pub collector: Collector,
    /// The split read, as the dataset names it: `train`, `val`, `test`, or a name of the format's
    /// own (Karpathy's `restval`, COCO's `val2017`, a table's `split` column).
    pub split: Option<String>,
}

impl fmt::Display for dyn DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for dyn DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Formats are told apart by name: the registry holds each once.
impl PartialEq for dyn DatasetFormat {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for dyn DatasetFormat {}

/// Keys every format accepts.
pub const COMMON_KEYS: [&str; 7] = ["split", "lang", "captions", "images", "verify", "exclude", "max_pixels"];

/// Which captions of each image a dataset keeps (`captions=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Captions {
    All,
    /// The first caption of each image (CLIP_benchmark's XM3600).
    First,
}

impl Captions {
    pub fn name(&self) -> &'static str {
        match self {
            Captions::All => "all",
            Captions::First => "first",
        }
    }
}

impl FromStr for Captions {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "all" => Ok(Captions::All),
            "first" => Ok(Captions::First),
            _ => bail!("expected `first` or `all`"),
        }
    }
}

/// A parsed dataset spec, `FORMAT:PATH[?key=value&...]` (parsed and opened in `spec.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    pub format: &'static dyn DatasetFormat,
    /// The dataset folder or its annotation file (empty for `synthetic`).
    pub path: PathBuf,
    pub options: BTreeMap<String, String>,
}

impl DatasetSpec {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// The same spec with `split` set, unless the spec already names one.
    pub fn with_default_split(&self, split: &str) -> Self {
        let mut spec = self.clone();
        spec.options.entry("split".into()).or_insert_with(|| split.to_string());
        spec
    }

    pub fn with_option(&self, key: &str, value: &str) -> Self {
        let mut spec = self.clone();
        spec.options.insert(key.into(), value.into());
        spec
    }

    /// The splits that exist on disk for this dataset (empty when the format has none).
    pub fn available_splits(&self) -> Vec<Split> {
        self.format.available_splits(self)
    }

    /// `captions=`, or the format's default. A value that is no mode (only [`with_option`](Self::with_option)
    /// can set one) reads as `all`.
    pub fn captions(&self) -> Captions {
        match self.get("captions") {
            Some(mode) => mode.parse().unwrap_or(Captions::All),
            None => self.format.default_captions(),
        }
    }

    /// `split=` in its canonical spelling (`dev`, `valid`, `validation` → `val`); a name that is
    /// no [`Split`] (Karpathy's `restval`, a table's own) as written.
    pub fn requested_split(&self) -> Option<String> {
        self.get("split").map(|name| Split::canonical_name(name).to_string())
    }

    /// `split=`, which must be one of the format's splits; the error lists them.
    pub fn require_split(&self) -> Result<Split> {
        let known = self.format.splits();
        let names: Vec<&str> = known.iter().map(Split::name).collect();
        match self.requested_split() {
            Some(name) => match known.iter().find(|split| split.name() == name) {
                Some(split) => Ok(*split),
                None => bail!("{}: no split `{name}` in {}; expected one of {}", self, self.format, names.join(", ")),
            },
            None => bail!("{}: say which split to read (split={})", self, names.join("|")),
        }
    }

    /// The split to read, for a format with one annotation file per split: when PATH is that file
    /// itself, `split=` as written (`None`: the caller's default); when PATH is the folder,
    /// [`require_split`](Self::require_split).
    pub fn split_to_read(&self) -> Result<Option<String>> {
        if self.path.is_file() {
            Ok(self.requested_split())
        } else {
            Ok(Some(self.require_split()?.name().to_string()))
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.format)?;
        if !self.path.as_os_str().is_empty() {
            write!(f, ":{}", self.path.display())?;
        }
        let pairs: Vec<String> = self.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !pairs.is_empty() {
            write!(f, "?{}", pairs.join("&"))?;
        }
        Ok(())
    }
}
