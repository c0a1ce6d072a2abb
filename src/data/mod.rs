//! Datasets, the pairing of images with captions, and the batcher.
//! Flow: dataset → pairs → batcher → towers.
//!
//! This file only declares and re-exports; no file here imports it, so the imports between the
//! files of `data/` run one way.

pub mod batcher;
pub mod captioned;
pub mod collector;
pub mod dataset;
pub mod decode;
pub mod dedup;
pub mod format;
pub mod formats;
pub mod loader;
pub mod resample;
pub mod spec;
pub mod split;
pub mod synthetic;
pub mod teacher;
pub mod transform;

pub use batcher::{Batch, Batcher, HostBatch};
pub use captioned::{CaptionedImages, ImageEntry, ImageSource, PairIndex, Pairing, TeacherRows};
pub use collector::{ImageTextItem, SkipReason, Skipped};
pub use dataset::{ImageTextDataset, Verify};
pub use decode::ImageLimits;
pub use format::{DatasetFormat, DatasetSpec};
pub use split::Split;
pub use transform::ImageNormalization;
