//! An embedding index on disk: the rows of one modality, each with what it stands for, appended
//! in batches so that an interrupted indexing run resumes where it stopped.
//!
//! ```text
// ANCHOR: index_layout
//! INDEX/index.json        what was indexed, with which model, and the embedding width
//! INDEX/images.jsonl      one line per image row: {"path": ..., "key": ...}
//! INDEX/images.f32        the image rows, little-endian f32, `dim` per row
//! INDEX/captions.jsonl    (dataset indexes) one line per caption: {"text": ..., "image": row}
//! INDEX/captions.f32      the caption rows
//! INDEX/failed.jsonl      images that could not be read: {"path": ..., "error": ...}
//! INDEX/images/           (dataset indexes) the images that had no file, as PNG
// ANCHOR_END: index_layout
//! ```
//!
//! Each batch writes its rows first and its lines second, each flushed to disk, so after a crash
//! the shorter of the two says how many rows are whole; [`RowFile::open`] cuts the rest.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One indexed image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    /// The image file (absolute, or relative to the index folder for images it stores itself).
    pub path: PathBuf,
    /// The dataset's id of the image, or the path relative to the indexed folder.
    pub key: String,
}

/// One indexed caption of a dataset index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionRow {
    pub text: String,
    /// The row of its image.
    pub image: usize,
}

/// One image that could not be indexed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedImage {
    pub path: PathBuf,
    pub error: String,
}

/// Rows of one kind: `NAME.f32` (the embeddings) and `NAME.jsonl` (one line per row).
pub struct RowFile<T> {
    pub items: Vec<T>,
    /// `items.len() × dim` values, row-major.
    pub rows: Vec<f32>,
    dim: usize,
    vectors: PathBuf,
    lines: PathBuf,
}

impl<T: Serialize + DeserializeOwned> RowFile<T> {
    /// Opens (or creates) `dir/NAME.f32` and `dir/NAME.jsonl`, keeping only the rows present in
    /// both whole; a torn tail from an interrupted run is cut off.
    pub fn open(dir: &Path, name: &str, dim: usize) -> Result<Self> {
        let vectors = dir.join(format!("{name}.f32"));
        let lines = dir.join(format!("{name}.jsonl"));
        let read = |path: &Path| -> Result<Vec<u8>> {
            let mut bytes = Vec::new();
            if path.is_file() {
                File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).with_context(|| format!("cannot read {}", path.display()))?;
            }
            Ok(bytes)
        };
        // Only lines that end in a newline are whole; a torn last line is dropped.
        let text = read(&lines)?;
        let mut items = Vec::new();
        let mut ends = Vec::new();
        let mut start = 0;
        for (number, end) in text.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(at, _)| at).enumerate() {
            let item = serde_json::from_slice::<T>(&text[start..end])
                .map_err(|e| anyhow!("{} line {}: not an index row ({e}); expected one JSON object per line", lines.display(), number + 1))?;
            items.push(item);
            start = end + 1;
            ends.push(start as u64);
        }
        let bytes = read(&vectors)?;
        let mut rows: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let whole = items.len().min(rows.len() / dim.max(1));
        items.truncate(whole);
        rows.truncate(whole * dim);
        let file = Self { items, rows, dim, vectors, lines };
        file.cut(if whole == 0 { 0 } else { ends[whole - 1] })?;
        Ok(file)
    }

    /// Truncates both files to the rows kept.
    fn cut(&self, line_bytes: u64) -> Result<()> {
        for (path, length) in [(&self.vectors, (self.rows.len() * 4) as u64), (&self.lines, line_bytes)] {
            let file = OpenOptions::new().create(true).write(true).truncate(false).open(path).with_context(|| format!("cannot open {}", path.display()))?;
            file.set_len(length).with_context(|| format!("cannot truncate {}", path.display()))?;
        }
        Ok(())
    }

    /// Appends rows (embeddings first, then their lines), each file flushed to disk.
    pub fn append(&mut self, items: Vec<T>, rows: &[f32]) -> Result<()> {
        if rows.len() != items.len() * self.dim {
            bail!("{} rows of width {} for {} items", rows.len() / self.dim.max(1), self.dim, items.len());
        }
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        append_synced(&self.vectors, &bytes)?;
        let mut text = Vec::new();
        for item in &items {
            serde_json::to_writer(&mut text, item)?;
            text.push(b'\n');
        }
        append_synced(&self.lines, &text)?;
        self.rows.extend_from_slice(rows);
        self.items.extend(items);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Row `index` of the embeddings.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.rows[index * self.dim..(index + 1) * self.dim]
    }
}

fn append_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(bytes).and_then(|_| file.sync_data()).with_context(|| format!("cannot write {}", path.display()))
}

/// What an index holds (`index.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexManifest {
    /// Always [`INDEX_FORMAT`].
    pub format: String,
    /// The model that embedded the rows, as its source (`{"run": {...}}` or `{"export": {...}}`).
    pub model: serde_json::Value,
    pub dim: usize,
    /// What was indexed: a folder, or a dataset split.
    pub source: IndexSource,
}

pub const INDEX_FORMAT: &str = "otclip-index-1";

/// What an index was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexSource {
    /// Every image under a folder (absolute path).
    Folder { root: PathBuf },
    /// The images and captions of a dataset split.
    Dataset { name: String, split: String },
}

/// An index folder: its manifest and its rows.
pub struct Index {
    pub dir: PathBuf,
    pub manifest: IndexManifest,
    pub images: RowFile<ImageRow>,
    pub captions: RowFile<CaptionRow>,
}

impl Index {
    /// Opens an existing index.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("index.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (is {} an index made by `otclip index`?)", path.display(), dir.display()))?;
        let manifest: IndexManifest = serde_json::from_str(&text).map_err(|e| anyhow!("{}: not an otclip index manifest: {e}", path.display()))?;
        if manifest.format != INDEX_FORMAT {
            bail!("{}: format `{}`; expected `{INDEX_FORMAT}`", path.display(), manifest.format);
        }
        Self::with_manifest(dir, manifest)
    }

    /// Opens `dir` to add to it: creates it with `manifest`, or resumes it when its manifest
    /// is the same; any other folder that is not empty is refused.
    pub fn create_or_resume(dir: &Path, manifest: IndexManifest) -> Result<Self> {
        let path = dir.join("index.json");
        if path.is_file() {
            let existing = Self::open(dir)?;
            if existing.manifest != manifest {
                bail!(
                    "{}: this index was made from {:?} with model {} (width {}); not from {:?} with {}. Choose another --out (nothing was changed)",
                    path.display(),
                    existing.manifest.source,
                    existing.manifest.model,
                    existing.manifest.dim,
                    manifest.source,
                    manifest.model
                );
            }
            return Ok(existing);
        }
        if dir.exists() && std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?.next().is_some() {
            bail!("--out {}: the folder is not empty and holds no otclip index; choose an empty folder or a new path (nothing was written)", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&path, serde_json::to_string_pretty(&manifest)?).with_context(|| format!("cannot write {}", path.display()))?;
        Self::with_manifest(dir, manifest)
    }

    fn with_manifest(dir: &Path, manifest: IndexManifest) -> Result<Self> {
        let images = RowFile::open(dir, "images", manifest.dim)?;
        let captions = RowFile::open(dir, "captions", manifest.dim)?;
        Ok(Self { dir: dir.to_path_buf(), manifest, images, captions })
    }

    /// The file of image row `row`: absolute, or inside the index folder.
    pub fn image_path(&self, row: usize) -> PathBuf {
        self.dir.join(&self.images.items[row].path)
    }

    /// Records an image that could not be read.
    pub fn record_failure(&self, failure: &FailedImage) -> Result<()> {
        let mut line = serde_json::to_vec(failure)?;
        line.push(b'\n');
        append_synced(&self.dir.join("failed.jsonl"), &line)
    }

    /// The images recorded as failed.
    pub fn failures(&self) -> Result<Vec<FailedImage>> {
        let path = self.dir.join("failed.jsonl");
        if !path.is_file() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
    }
}

/// One search result: a row and its cosine score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    pub row: usize,
    pub score: f32,
}

/// The `k` rows of `rows` (`dim` wide) with the highest dot product with `query`, best first;
/// equal scores keep row order, and NaN scores rank last.
pub fn top_k(query: &[f32], rows: &[f32], dim: usize, k: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = rows
        .chunks_exact(dim.max(1))
        .enumerate()
        .map(|(row, values)| Hit { row, score: values.iter().zip(query).map(|(a, b)| a * b).sum() })
        .collect();
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    hits.sort_by(|a, b| key(b.score).total_cmp(&key(a.score)).then(a.row.cmp(&b.row)));
    hits.truncate(k);
    hits
}
