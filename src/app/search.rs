//! `otclip search`: the closest images of an index to a text or an image, or the closest
//! captions of a dataset index to an image. The model is the one the index was made with.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;
use serde::Serialize;

use super::trained::{ModelSource, TrainedModel};
use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::ImageLimits;
use crate::eval::index::{top_k, Hit, Index};

/// What to search with.
#[derive(Debug, Clone)]
pub enum Query {
    Text(String),
    /// An image file, embedded with the model's evaluation transform.
    Image(PathBuf),
    /// An image already in the index, by row.
    IndexedImage(usize),
}

/// What to search among.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gallery {
    /// The index's images.
    Images,
    /// The captions of a dataset index.
    Captions,
}

/// The longest text query, in characters.
pub const MAX_QUERY_CHARS: usize = 2000;

/// One result, ready to print or to send.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Found {
    pub rank: usize,
    pub score: f32,
    /// The image row (for a caption: its image's row).
    pub image: usize,
    /// The image's key (its dataset id, or its path under the indexed folder).
    pub key: String,
    /// The image file.
    pub path: PathBuf,
    /// The caption, when searching captions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

/// An index with the model that made it, loaded once to answer many queries.
pub struct Searcher<B: Backend> {
    pub model: TrainedModel<B>,
    pub index: Index,
}

impl<B: Backend> Searcher<B> {
    /// Opens `index` with its own model, or with `model` when given (it must have the same width).
    pub fn open(index: &std::path::Path, model: Option<&ModelSource>, device: &B::Device) -> Result<Self> {
        let index = Index::open(index)?;
        let source = match model {
            Some(source) => source.clone(),
            None => serde_json::from_value::<ModelSource>(index.manifest.model.clone())
                .map_err(|e| anyhow!("{}: the model entry is not a run or an export: {e}", index.dir.join("index.json").display()))?,
        };
        let model = TrainedModel::<B>::load(&source, device)?;
        if model.dim() != index.manifest.dim {
            bail!("the model {source} embeds into {} dimensions, the index {} holds {}", model.dim(), index.dir.display(), index.manifest.dim);
        }
        Ok(Self { model, index })
    }

    /// The query's embedding.
    pub fn embed(&self, query: &Query) -> Result<Vec<f32>> {
        match query {
            Query::Text(text) => {
                let text = text.trim();
                if text.is_empty() {
                    bail!("the query is empty: type what the image should show");
                }
                if text.chars().count() > MAX_QUERY_CHARS {
                    bail!("the query has {} characters; at most {MAX_QUERY_CHARS} are taken", text.chars().count());
                }
                self.model.embed_texts(&[text], 1)
            }
            Query::Image(path) => {
                let mut embedded = self.model.embed_files(std::slice::from_ref(path), ImageLimits::default(), 1)?;
                if let Some((_, error)) = embedded.failed.pop() {
                    bail!("cannot use the query image: {error}");
                }
                Ok(embedded.rows.pop().map(|(_, row)| row).unwrap_or_default())
            }
            Query::IndexedImage(row) => {
                if *row >= self.index.images.len() {
                    bail!("image {row} is not in the index (it has {} images)", self.index.images.len());
                }
                Ok(self.index.images.row(*row).to_vec())
            }
        }
    }

    /// The `k` best results for one query.
    pub fn search(&self, query: &Query, gallery: Gallery, k: usize) -> Result<Vec<Found>> {
        let embedding = self.embed(query)?;
        self.rank(&embedding, gallery, k)
    }

    /// The `k` best results for an embedding.
    pub fn rank(&self, embedding: &[f32], gallery: Gallery, k: usize) -> Result<Vec<Found>> {
        let dim = self.index.manifest.dim;
        let hits = match gallery {
            Gallery::Images => top_k(embedding, &self.index.images.rows, dim, k),
            Gallery::Captions if self.index.captions.is_empty() => {
                bail!("the index {} holds no captions: index a dataset split (--split) to search captions", self.index.dir.display())
            }
            Gallery::Captions => top_k(embedding, &self.index.captions.rows, dim, k),
        };
        Ok(hits.into_iter().enumerate().map(|(rank, hit)| self.found(rank + 1, hit, gallery)).collect())
    }

    fn found(&self, rank: usize, hit: Hit, gallery: Gallery) -> Found {
        let (image, caption) = match gallery {
            Gallery::Images => (hit.row, None),
            Gallery::Captions => {
                let row = &self.index.captions.items[hit.row];
                (row.image, Some(row.text.clone()))
            }
        };
        let item = &self.index.images.items[image];
        Found { rank, score: hit.score, image, key: item.key.clone(), path: self.index.image_path(image), caption }
    }
}

#[derive(Debug, Clone)]
pub struct SearchTask {
    pub index: PathBuf,
    /// Another model than the index's own (same embedding width).
    pub model: Option<ModelSource>,
    pub queries: Vec<Query>,
    pub gallery: Gallery,
    pub k: usize,
}

impl InferenceTask for SearchTask {
    type Output = Vec<Vec<Found>>;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<Vec<Vec<Found>>> {
        let searcher = Searcher::<B>::open(&self.index, self.model.as_ref(), &device)?;
        self.queries.iter().map(|query| searcher.search(query, self.gallery, self.k)).collect()
    }
}

impl SearchTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<Vec<Vec<Found>>> {
        dispatch_inference(spec, false, self)
    }
}

/// Results as a plain-text table.
pub fn table(found: &[Found]) -> String {
    let mut text = String::from(" rank   score  image\n");
    for f in found {
        let what = match &f.caption {
            Some(caption) => format!("{caption}  ({})", f.key),
            None => format!("{}  {}", f.key, f.path.display()),
        };
        text.push_str(&format!("{:5}  {:6.4}  {what}\n", f.rank, f.score));
    }
    text
}
