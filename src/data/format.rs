//! The dataset formats otclip reads natively, by name.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;

/// The dataset formats otclip reads natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    UitOpenViic,
    Ktvic,
    Xm3600,
    FlickrToken,
    FlickrCsv,
    Karpathy,
    Coco,
    ViclipOt,
    Csv,
    Jsonl,
    Synthetic,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::UitOpenViic,
        Format::Ktvic,
        Format::Xm3600,
        Format::FlickrToken,
        Format::FlickrCsv,
        Format::Karpathy,
        Format::Coco,
        Format::ViclipOt,
        Format::Csv,
        Format::Jsonl,
        Format::Synthetic,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Format::UitOpenViic => "uit-openviic",
            Format::Ktvic => "ktvic",
            Format::Xm3600 => "xm3600",
            Format::FlickrToken => "flickr-token",
            Format::FlickrCsv => "flickr-csv",
            Format::Karpathy => "karpathy",
            Format::Coco => "coco",
            Format::ViclipOt => "viclip-ot",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Synthetic => "synthetic",
        }
    }

    /// The query keys this format understands, beyond the common ones.
    pub fn own_keys(&self) -> &'static [&'static str] {
        match self {
            Format::Ktvic => &["text"],
            Format::Csv => &["image_column", "caption_column", "id_column", "sep"],
            Format::Jsonl => &["image_column", "caption_column", "id_column"],
            _ => &[],
        }
    }

    /// Whether the format has named splits (`split=` defaults to the caller's split).
    pub fn has_splits(&self) -> bool {
        matches!(self, Format::UitOpenViic | Format::Ktvic | Format::Karpathy | Format::Coco | Format::ViclipOt)
    }

    /// The language a dataset is in when the spec does not say (`lang=`).
    pub fn default_language(&self) -> &'static str {
        match self {
            Format::UitOpenViic | Format::Ktvic => "vi",
            Format::FlickrToken | Format::FlickrCsv | Format::Karpathy | Format::Coco => "en",
            _ => "und",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        Format::ALL.into_iter().find(|f| f.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(Format::name).collect();
            anyhow::anyhow!("unknown dataset format `{text}`: expected one of {}", names.join(", "))
        })
    }
}
