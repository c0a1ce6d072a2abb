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

use super::batcher::HostBatch;
use super::transform::TrainTransform;
use super::{Batcher, CaptionedImages, PairIndex};

/// How batches are built.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Decoding threads (0: all cores).
    pub workers: usize,
    /// Batches decoded ahead of the consumer.
    pub prefetch: usize,
    /// Training augmentation and the epoch's seed; the evaluation transform when `None`.
    pub augment: Option<(TrainTransform, u64)>,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self { workers: 0, prefetch: 2, augment: None }
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
                for (index, pairs) in batches.iter().enumerate() {
                    let augment = config.augment.as_ref().map(|(t, seed)| (t, seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)));
                    let batch = pool.install(|| batcher.host_batch(&dataset, pairs, augment));
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
