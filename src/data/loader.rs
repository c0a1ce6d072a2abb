//! The loading pipeline: a producer thread decodes and transforms whole batches on a worker pool
//! and keeps at most `prefetch` of them ready, so the training step never waits on JPEG decoding.
//! Pairs whose image fails to load are dropped with a warning naming the image; [`Loader::failed`]
//! gives the total.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};

use super::batcher::{Batcher, HostBatch};
use super::captioned::{CaptionedImages, PairIndex};
use super::transform::TrainTransform;
use crate::seed::batch_augment;

/// How batches are built.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Decoding threads (0: all cores).
    pub workers: usize,
    /// Batches decoded ahead of the consumer.
    pub prefetch: usize,
    /// Training augmentation and the epoch's seed; the evaluation transform when `None`.
    pub augment: Option<(TrainTransform, u64)>,
    /// Batches to skip at the start (a run resumed mid-epoch); the rest keep their own index,
    /// and so their augmentation.
    pub skip: usize,
    /// Load only this data-parallel worker's part of every batch.
    pub shard: Option<Shard>,
}

/// One data-parallel worker's part of every update: whole chunks, contiguous, in rank order,
/// so that the workers' parts stacked in rank order are the update a single device trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker's rank.
    pub worker: usize,
    /// Workers in all.
    pub workers: usize,
    /// Pairs per chunk (`optim.chunk_size`); absent: the update split evenly over the workers.
    pub chunk_size: Option<usize>,
}

impl Shard {
    /// The chunk size for an update of `pairs` pairs.
    pub fn chunk_size(&self, pairs: usize) -> usize {
        self.chunk_size.unwrap_or_else(|| pairs.div_ceil(self.workers.max(1))).max(1)
    }

    /// This worker's pairs of an update of `pairs` pairs, and the index of its first chunk.
    pub fn part(&self, pairs: usize) -> (std::ops::Range<usize>, usize) {
        let chunk = self.chunk_size(pairs);
        let chunks = pairs.div_ceil(chunk);
        let first_chunk = chunks * self.worker / self.workers;
        let end_chunk = chunks * (self.worker + 1) / self.workers;
        ((first_chunk * chunk).min(pairs)..(end_chunk * chunk).min(pairs), first_chunk)
    }
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self { workers: 0, prefetch: 2, augment: None, skip: 0, shard: None }
    }
}

/// An iterator over host batches, produced in the background.
pub struct Loader {
    receiver: Receiver<HostBatch>,
    producer: Option<JoinHandle<()>>,
    failed: Arc<AtomicUsize>,
}

impl Loader {
    /// Starts producing `batches` (each a list of pairs) of `dataset`.
    pub fn spawn(batcher: Batcher, dataset: Arc<CaptionedImages>, batches: Vec<Vec<PairIndex>>, config: LoaderConfig) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.workers)
            .thread_name(|i| format!("otclip-loader-{i}"))
            .build()
            .map_err(|e| anyhow!("cannot start the loader's workers: {e}"))?;
        let (sender, receiver) = sync_channel(config.prefetch.max(1));
        let failed = Arc::new(AtomicUsize::new(0));
        let counter = failed.clone();
        let warned: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        let producer = std::thread::Builder::new()
            .name("otclip-loader".into())
            .spawn(move || {
                for (index, pairs) in batches.iter().enumerate().skip(config.skip) {
                    let augment = config.augment.as_ref().map(|(t, seed)| (t, batch_augment(*seed, index)));
                    let (part, first_chunk) = config.shard.map_or((0..pairs.len(), 0), |shard| shard.part(pairs.len()));
                    let mut batch = pool.install(|| batcher.host_batch(&dataset, &pairs[part.clone()], part.start, augment));
                    if config.shard.is_some() {
                        batch.update = pairs.clone();
                        batch.first_chunk = first_chunk;
                    }
                    for message in &batch.failed {
                        counter.fetch_add(1, Ordering::Relaxed);
                        if warned.lock().expect("warning set").insert(message.clone()) {
                            eprintln!("warning: skipped an image: {message}");
                        }
                    }
                    if sender.send(batch).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .map_err(|e| anyhow!("cannot start the loader thread: {e}"))?;
        Ok(Self { receiver, producer: Some(producer), failed })
    }

    /// Pairs dropped so far because their image failed to load.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }
}

impl Iterator for Loader {
    type Item = HostBatch;
    fn next(&mut self) -> Option<HostBatch> {
        self.receiver.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Unblock the producer (its send fails once the receiver is gone), then wait for it.
        let (_, dead) = sync_channel(1);
        drop(std::mem::replace(&mut self.receiver, dead));
        if let Some(handle) = self.producer.take() {
            let _ = handle.join();
        }
    }
}

/// How an epoch's shuffled pairs are cut into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    /// Consecutive chunks of the shuffled pairs.
    #[default]
    Random,
    /// Every caption of an image in the same batch (ViCLIP-OT's multi-positive targets).
    Grouped,
    /// No two different images in a batch share a caption (case and spacing aside), so that an
    /// identical caption of another image is never scored as a negative.
    CaptionAware,
}

/// The images of `pairs` in order of first appearance, and each image's pairs.
fn group_by_image(pairs: &[PairIndex]) -> (Vec<usize>, std::collections::HashMap<usize, Vec<PairIndex>>) {
    let mut order: Vec<usize> = Vec::new();
    let mut groups: std::collections::HashMap<usize, Vec<PairIndex>> = std::collections::HashMap::new();
    for &pair in pairs {
        let group = groups.entry(pair.0).or_default();
        if group.is_empty() {
            order.push(pair.0);
        }
        group.push(pair);
    }
    (order, groups)
}

/// What a batch size counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchUnit {
    /// (image, caption) pairs: the rows the loss sees.
    #[default]
    Pairs,
    /// Images, each with all of its captions in the epoch (ViCLIP-OT's collation: 128 images
    /// of UIT-OpenViIC make about 600 pairs); needs the `grouped` sampler.
    Images,
}

/// Cuts `pairs` (already shuffled) into batches of at most `batch_size` `unit`s, as `sampler`
/// says. Only the grouped sampler counts images; the others always count pairs.
pub fn make_batches(dataset: &CaptionedImages, pairs: &[PairIndex], batch_size: usize, unit: BatchUnit, sampler: Sampler) -> Vec<Vec<PairIndex>> {
    let batch_size = batch_size.max(1);
    match sampler {
        Sampler::Random => pairs.chunks(batch_size).map(<[PairIndex]>::to_vec).collect(),
        Sampler::Grouped if unit == BatchUnit::Images => {
            let (order, mut groups) = group_by_image(pairs);
            order.chunks(batch_size).map(|images| images.iter().flat_map(|i| groups.remove(i).unwrap_or_default()).collect()).collect()
        }
        Sampler::Grouped => {
            let (order, mut groups) = group_by_image(pairs);
            let mut batches: Vec<Vec<PairIndex>> = vec![Vec::new()];
            for image in order {
                let group = groups.remove(&image).unwrap_or_default();
                let current = batches.last_mut().expect("one batch");
                if !current.is_empty() && current.len() + group.len() > batch_size {
                    batches.push(Vec::new());
                }
                for pair in group {
                    if batches.last().expect("one batch").len() == batch_size {
                        batches.push(Vec::new());
                    }
                    batches.last_mut().expect("one batch").push(pair);
                }
            }
            batches.retain(|b| !b.is_empty());
            batches
        }
        Sampler::CaptionAware => {
            let key = |&(i, c): &PairIndex| dataset.entries[i].captions[c].to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
            let mut batches = Vec::new();
            let mut waiting: std::collections::VecDeque<PairIndex> = pairs.iter().copied().collect();
            while !waiting.is_empty() {
                let mut batch: Vec<PairIndex> = Vec::new();
                let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
                let mut deferred = std::collections::VecDeque::new();
                while let Some(pair) = waiting.pop_front() {
                    if batch.len() == batch_size {
                        waiting.push_front(pair);
                        break;
                    }
                    let caption = key(&pair);
                    match seen.get(&caption) {
                        Some(&image) if image != pair.0 => deferred.push_back(pair),
                        _ => {
                            seen.insert(caption, pair.0);
                            batch.push(pair);
                        }
                    }
                }
                deferred.extend(waiting.drain(..));
                waiting = deferred;
                batches.push(batch);
            }
            batches
        }
    }
}
