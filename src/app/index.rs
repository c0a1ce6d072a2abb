//! `otclip index`: embeds an image folder (or a dataset split, with its captions) once, into an
//! index folder that `search` and `serve` read. Resumable: rerunning the same command adds only
//! what is missing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;

use super::progress::progress_bar;
use super::trained::{ModelSource, TrainedModel};
use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::{CaptionedImages, DatasetSpec, ImageLimits, ImageSource, Split};
use crate::eval::index::{CaptionRow, FailedImage, ImageRow, Index, IndexManifest, IndexSource, INDEX_FORMAT};
use crate::train::{load_split, open_spec};

/// What to index.
#[derive(Debug, Clone)]
pub enum IndexInput {
    /// Every JPEG or PNG under a folder, sorted by path.
    Folder(PathBuf),
    /// A dataset split: its images and its captions. `spec` defaults to the run's own dataset.
    Dataset { spec: Option<DatasetSpec>, split: Split },
}

#[derive(Debug, Clone)]
pub struct IndexTask {
    pub model: ModelSource,
    pub input: IndexInput,
    pub out: PathBuf,
    pub batch_size: usize,
}

/// What one indexing run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexSummary {
    /// Image rows in the index now.
    pub images: usize,
    /// Caption rows in the index now.
    pub captions: usize,
    /// Images embedded by this run.
    pub added: usize,
    /// Images that could not be read (listed in INDEX/failed.jsonl), in all runs.
    pub failed: usize,
    /// Seconds spent reading and embedding (the model's loading not counted).
    pub seconds: f64,
}

impl InferenceTask for IndexTask {
    type Output = IndexSummary;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<IndexSummary> {
        let source = self.model.clone().absolute()?;
        let model = TrainedModel::<B>::load(&source, &device)?;
        let start = Instant::now();
        let manifest_for = |source_of_rows: IndexSource| IndexManifest {
            format: INDEX_FORMAT.into(),
            model: serde_json::to_value(&source).unwrap_or_default(),
            dim: model.dim(),
            source: source_of_rows,
        };
        let batch_size = self.batch_size.max(1);
        let (index, added) = match &self.input {
            IndexInput::Folder(root) => {
                let root = std::path::absolute(root).with_context(|| format!("cannot resolve {}", root.display()))?;
                let files = image_files(&root)?;
                let mut index = Index::create_or_resume(&self.out, manifest_for(IndexSource::Folder { root: root.clone() }))?;
                let added = index_files(&model, &mut index, &root, &files, batch_size)?;
                (index, added)
            }
            IndexInput::Dataset { spec, split } => {
                let dataset = match (spec, &model.config) {
                    (Some(spec), _) => open_spec(spec, *split)?,
                    (None, Some(config)) => load_split(config, *split)?,
                    (None, None) => anyhow::bail!("--split without --data: the export {source} has no dataset of its own; name one with --data"),
                };
                let manifest = manifest_for(IndexSource::Dataset { name: dataset.name.clone(), split: split.name().to_string() });
                let mut index = Index::create_or_resume(&self.out, manifest)?;
                let added = index_dataset(&model, &mut index, &dataset, batch_size)?;
                (index, added)
            }
        };
        Ok(IndexSummary {
            images: index.images.len(),
            captions: index.captions.len(),
            added,
            failed: index.failures()?.len(),
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

impl IndexTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<IndexSummary> {
        dispatch_inference(spec, false, self)
    }
}

/// Embeds the files not yet in the index (nor recorded as failed), a batch at a time.
fn index_files<B: Backend>(model: &TrainedModel<B>, index: &mut Index, root: &Path, files: &[PathBuf], batch_size: usize) -> Result<usize> {
    let mut done: HashSet<PathBuf> = index.images.items.iter().map(|row| row.path.clone()).collect();
    done.extend(index.failures()?.into_iter().map(|f| f.path));
    let todo: Vec<&PathBuf> = files.iter().filter(|f| !done.contains(*f)).collect();
    let bar = progress_bar(files.len(), files.len() - todo.len(), "images");
    let mut added = 0;
    for chunk in todo.chunks(batch_size) {
        let paths: Vec<PathBuf> = chunk.iter().map(|p| (*p).clone()).collect();
        let embedded = model.embed_files(&paths, ImageLimits::default(), batch_size)?;
        for (at, error) in embedded.failed {
            bar.suspend(|| eprintln!("skipped {error}"));
            index.record_failure(&FailedImage { path: paths[at].clone(), error })?;
        }
        let mut items = Vec::new();
        let mut rows = Vec::new();
        for (at, row) in embedded.rows {
            let key = paths[at].strip_prefix(root).unwrap_or(&paths[at]).to_string_lossy().into_owned();
            items.push(ImageRow { path: paths[at].clone(), key });
            rows.extend(row);
        }
        added += items.len();
        index.images.append(items, &rows)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(added)
}

/// Embeds a dataset split's images (in dataset order; those held in memory are saved as PNG
/// under INDEX/images/) and then the captions of the indexed images.
fn index_dataset<B: Backend>(model: &TrainedModel<B>, index: &mut Index, dataset: &CaptionedImages, batch_size: usize) -> Result<usize> {
    let mut done: HashSet<String> = index.images.items.iter().map(|row| row.key.clone()).collect();
    done.extend(index.failures()?.into_iter().map(|f| f.path.to_string_lossy().into_owned()));
    let todo: Vec<usize> = (0..dataset.entries.len()).filter(|&i| !done.contains(&dataset.entries[i].key)).collect();
    let bar = progress_bar(dataset.entries.len(), dataset.entries.len() - todo.len(), "images");
    let size = model.batcher.image_size as usize;
    let mut added = 0;
    for chunk in todo.chunks(batch_size) {
        let mut items = Vec::new();
        let mut pixels = Vec::new();
        for &entry_index in chunk {
            let entry = &dataset.entries[entry_index];
            let loaded = entry.image.load().and_then(|image| Ok((model.batcher.pixels(&image, None)?, image)));
            match loaded {
                Ok((values, image)) => {
                    let path = match &entry.image {
                        ImageSource::File(path, _) => std::path::absolute(path)?,
                        ImageSource::Memory(_) => save_png(&index.dir, entry_index, &image)?,
                    };
                    items.push(ImageRow { path, key: entry.key.clone() });
                    pixels.extend(values);
                }
                Err(error) => {
                    bar.suspend(|| eprintln!("skipped {}: {error:#}", entry.key));
                    index.record_failure(&FailedImage { path: PathBuf::from(&entry.key), error: format!("{error:#}") })?;
                }
            }
        }
        let rows = model.embed_pixels(&pixels, [size, size], batch_size)?;
        added += items.len();
        index.images.append(items, &rows)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    let row_of: std::collections::HashMap<&str, usize> = index.images.items.iter().enumerate().map(|(row, item)| (item.key.as_str(), row)).collect();
    let captions: Vec<CaptionRow> = dataset
        .entries
        .iter()
        .filter_map(|entry| row_of.get(entry.key.as_str()).map(|&row| (entry, row)))
        .flat_map(|(entry, row)| entry.captions.iter().map(move |text| CaptionRow { text: text.clone(), image: row }))
        .collect();
    for chunk in captions[index.captions.len().min(captions.len())..].chunks(batch_size) {
        let texts: Vec<&str> = chunk.iter().map(|c| c.text.as_str()).collect();
        let rows = model.embed_texts(&texts, batch_size)?;
        index.captions.append(chunk.to_vec(), &rows)?;
    }
    Ok(added)
}

/// Writes an in-memory image as INDEX/images/NNNNNN.png; returns the path relative to the index.
fn save_png(dir: &Path, entry_index: usize, image: &image::RgbImage) -> Result<PathBuf> {
    let relative = PathBuf::from("images").join(format!("{entry_index:06}.png"));
    let path = dir.join(&relative);
    std::fs::create_dir_all(dir.join("images")).with_context(|| format!("cannot create {}", dir.join("images").display()))?;
    image.save(&path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(relative)
}

/// Every `.jpg`, `.jpeg` or `.png` under `root` (hidden entries skipped), sorted.
pub fn image_files(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        anyhow::bail!("--images {}: not a folder", root.display());
    }
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).with_context(|| format!("cannot list {}", folder.display()))? {
            let path = entry.with_context(|| format!("cannot list {}", folder.display()))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
