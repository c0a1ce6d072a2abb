//! The gradients of one update, with the whole update encoded at once or in chunks through
//! GradCache (Gao et al., 2021), which gives the same gradients in the memory of one chunk.
//!
//! GradCache: pass 1 encodes every chunk without a tape; the loss runs once on all the
//! embeddings, and its gradient with respect to each embedding is kept; pass 2 encodes each chunk
//! again, with the same dropout, and backpropagates the kept gradient through it alone. The
//! temperature and SigLIP's bias get their gradient once, from the loss.

use std::ops::Range;

use anyhow::{bail, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::collective::Peer;
use crate::data::Batch;
use crate::loss::{LossInputs, LossTerms};
use crate::model::batch_norm::BatchNormStats;
use crate::model::{DualEncoder, Precision, TextBatch};

/// How the pairs of one update are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    /// Pairs encoded at once; the update's size encodes it in one chunk.
    pub chunk_size: usize,
    /// Backpropagate chunk by chunk (GradCache) rather than through every chunk at once.
    pub grad_cache: bool,
    /// What the towers compute in; the loss always sees embeddings in the masters' type.
    pub precision: Precision,
}

impl Encoding {
    /// The whole update at once, in the backend's own precision.
    pub fn whole(pairs: usize) -> Self {
        Self { chunk_size: pairs, grad_cache: false, precision: Precision::F32 }
    }

    /// GradCache in chunks of `chunk_size` pairs, in the backend's own precision.
    pub fn chunked(chunk_size: usize) -> Self {
        Self { chunk_size, grad_cache: true, precision: Precision::F32 }
    }
}

/// The parameter gradients of one update, its loss terms (detached, for logging), and the
/// BatchNorm statistics of its taped pass, merged over its chunks, for
/// [`DualEncoder::absorb_batch_norm`] after the optimiser step.
pub struct UpdateGradients<B: AutodiffBackend> {
    pub grads: GradientsParams,
    pub terms: LossTerms<B>,
    pub batch_norm: BatchNormStats<B>,
}

/// A data-parallel worker's part in an update ([`shared_update_gradients`]).
pub struct Shared<'a, B: AutodiffBackend> {
    pub peer: &'a Peer,
    /// The position in the update of each of this worker's pairs.
    pub positions: Vec<usize>,
    /// The update's index of this worker's first chunk (its dropout seed).
    pub first_chunk: usize,
    /// The image ids and teacher rows of the update's pairs at the given positions.
    #[allow(clippy::type_complexity)]
    pub metadata: Box<dyn Fn(&[usize]) -> (Vec<u64>, Option<(Tensor<B, 2>, Tensor<B, 2>)>) + 'a>,
}

/// The gradients of `loss` on `batch`. Chunk `k` is encoded after `B::seed(dropout_seed(k))`,
/// so both GradCache passes, and an encoding without GradCache, draw the same dropout masks.
pub fn update_gradients<B, L>(model: &DualEncoder<B>, batch: Batch<B>, encoding: Encoding, dropout_seed: impl Fn(usize) -> u64, loss: L) -> Result<UpdateGradients<B>>
where
    B: AutodiffBackend,
    L: FnOnce(LossInputs<B>) -> Result<LossTerms<B>>,
{
    gradients(model, batch, encoding, dropout_seed, loss, None)
}

/// One data-parallel worker's gradients of `loss` on the whole update, of which `batch` is its
/// part: GradCache, with pass 1's embeddings gathered from every worker so that the loss sees
/// the whole update, and the parameter gradients summed over the workers. Every worker gets
/// the same gradients as one device encoding the whole update in the same chunks.
pub fn shared_update_gradients<B, L>(model: &DualEncoder<B>, batch: Batch<B>, encoding: Encoding, dropout_seed: impl Fn(usize) -> u64, loss: L, shared: Shared<'_, B>) -> Result<UpdateGradients<B>>
where
    B: AutodiffBackend,
    L: FnOnce(LossInputs<B>) -> Result<LossTerms<B>>,
{
    gradients(model, batch, encoding, dropout_seed, loss, Some(shared))
}

fn gradients<B, L>(model: &DualEncoder<B>, batch: Batch<B>, encoding: Encoding, dropout_seed: impl Fn(usize) -> u64, loss: L, shared: Option<Shared<'_, B>>) -> Result<UpdateGradients<B>>
where
    B: AutodiffBackend,
    L: FnOnce(LossInputs<B>) -> Result<LossTerms<B>>,
{
    let Batch { pixel_values, text, image_ids, teacher } = batch;
    let pairs = pixel_values.dims()[0];
    if encoding.chunk_size == 0 {
        bail!("optim.chunk_size = 0: expected at least 1 pair per chunk");
    }
    initialise(model);
    let chunks: Vec<Range<usize>> = (0..pairs).step_by(encoding.chunk_size).map(|start| start..(start + encoding.chunk_size).min(pairs)).collect();
    let first_chunk = shared.as_ref().map_or(0, |s| s.first_chunk);
    let device = pixel_values.device();
    let dtype = encoding.precision.dtype();
    // The model the towers run as: cast to the low precision in the graph, once per backward.
    let lowered = |model: &DualEncoder<B>| dtype.map_or_else(|| model.clone(), |dtype| model.in_precision(dtype));
    let encode = |model: &DualEncoder<B>, k: usize| -> (Tensor<B, 2>, Tensor<B, 2>, BatchNormStats<B>) {
        let Range { start, end } = chunks[k].clone();
        // Workers of one process share the generator: one at a time seeds it and draws.
        let _turn = shared.as_ref().and_then(|s| s.peer.take_turn());
        B::seed(&device, dropout_seed(first_chunk + k));
        let pixels = pixel_values.clone().narrow(0, start, end - start);
        let (image, stats) = model.encode_image_with_stats(match dtype {
            Some(dtype) => pixels.cast(dtype),
            None => pixels,
        });
        let text = model.encode_text(&text_rows(&text, start, end - start));
        (image, text, stats)
    };
    let inputs = |image: Tensor<B, 2>, text: Tensor<B, 2>, image_ids: Vec<u64>, teacher: Option<(Tensor<B, 2>, Tensor<B, 2>)>| LossInputs {
        image,
        text,
        scale: model.scale(),
        bias: model.logit_bias.val(),
        image_ids,
        teacher,
    };

    // ANCHOR: grad_cache
    if shared.is_none() && (!encoding.grad_cache || chunks.len() == 1) {
        let lowered = lowered(model);
        let (mut images, mut texts, mut stats) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..chunks.len() {
            let (image, text, chunk_stats) = encode(&lowered, k);
            images.push(image);
            texts.push(text);
            stats.push(chunk_stats);
        }
        let terms = loss(inputs(Tensor::cat(images, 0), Tensor::cat(texts, 0), image_ids, teacher))?;
        let grads = GradientsParams::from_grads(terms.total.backward(), model);
        return Ok(UpdateGradients { grads, terms: detached(terms), batch_norm: BatchNormStats::merge(stats) });
    }

    // Pass 1: the embeddings without a tape (the parameters untracked, dropout still on, and
    // BatchNorm normalising with each chunk's statistics as pass 2 will).
    let untracked = lowered(&model.clone().no_grad());
    let (images, texts): (Vec<_>, Vec<_>) = (0..chunks.len()).map(|k| encode(&untracked, k)).map(|(image, text, _)| (image, text)).unzip();
    let (own_rows, image, text, image_ids, teacher) = match &shared {
        None => (0..pairs, Tensor::cat(images, 0).detach(), Tensor::cat(texts, 0).detach(), image_ids, teacher),
        Some(shared) => gather(shared, images, texts, &device)?,
    };
    let (image, text) = (image.require_grad(), text.require_grad());
    let terms = loss(inputs(image.clone(), text.clone(), image_ids, teacher))?;
    let loss_grads = terms.total.backward();
    let own = |embeddings: &Tensor<B, 2>| {
        let grad = embeddings.grad(&loss_grads).map(Tensor::from_inner).unwrap_or_else(|| embeddings.zeros_like().detach());
        grad.narrow(0, own_rows.start, own_rows.len())
    };
    let (image_grad, text_grad) = (own(&image), own(&text));
    let mut accumulator = GradientsAccumulator::<DualEncoder<B>>::new();
    // The temperature and bias: their only path to the loss is the loss itself (counted once
    // over the workers, by the leader).
    if shared.as_ref().is_none_or(|s| s.peer.is_leader()) {
        accumulator.accumulate(model, GradientsParams::from_grads(loss_grads, model));
    }

    // Pass 2: each chunk again, with the tape, backpropagating its slice of the kept gradient.
    let mut stats = Vec::new();
    for (k, range) in chunks.iter().enumerate() {
        let (chunk_image, chunk_text, chunk_stats) = encode(&lowered(model), k);
        if shared.is_some() && chunk_stats.uses_batch_statistics() && !chunk_stats.is_empty() {
            bail!("data-parallel training keeps one model on every worker, and BatchNorm in train mode would give each worker its own running statistics; set model.convnet.batch_norm = \"frozen\" or train on one device");
        }
        stats.push(chunk_stats);
        let rows = range.end - range.start;
        let surrogate = (chunk_image * image_grad.clone().narrow(0, range.start, rows)).sum()
            + (chunk_text * text_grad.clone().narrow(0, range.start, rows)).sum();
        accumulator.accumulate(model, GradientsParams::from_grads(surrogate.backward(), model));
    }
    let grads = match &shared {
        None => accumulator.grads(),
        Some(shared) => shared.peer.sum_gradients(model, accumulator.grads())?,
    };
    Ok(UpdateGradients { grads, terms: detached(terms), batch_norm: BatchNormStats::merge(stats) })
    // ANCHOR_END: grad_cache
}

// ANCHOR: gather
/// Every worker's pass-1 embeddings stacked in rank order, this worker's rows among them, and
/// the image ids and teacher rows of the gathered pairs. Each worker sends its rows with their
/// positions in the update (an image that failed to load leaves its worker with fewer).
#[allow(clippy::type_complexity)]
fn gather<B: AutodiffBackend>(
    shared: &Shared<'_, B>,
    images: Vec<Tensor<B, 2>>,
    texts: Vec<Tensor<B, 2>>,
    device: &B::Device,
) -> Result<(Range<usize>, Tensor<B, 2>, Tensor<B, 2>, Vec<u64>, Option<(Tensor<B, 2>, Tensor<B, 2>)>)> {
    let peer = shared.peer;
    let own = shared.positions.len();
    let widths = images.first().zip(texts.first()).map(|(i, t)| (i.dims()[1], t.dims()[1]));
    // Rows and widths of every worker (a worker without rows knows no widths: 0).
    let mut sizes = vec![0.0f32; 3 * peer.world];
    let (image_width, text_width) = widths.unwrap_or((0, 0));
    sizes[3 * peer.rank..3 * peer.rank + 3].copy_from_slice(&[own as f32, image_width as f32, text_width as f32]);
    let sizes = peer.sum(Tensor::<B::InnerBackend, 1>::from_floats(sizes.as_slice(), device))?.into_data().convert::<f32>();
    let sizes: Vec<usize> = sizes.iter::<f32>().map(|v| v as usize).collect();
    let counts: Vec<usize> = sizes.chunks(3).map(|s| s[0]).collect();
    let image_width = sizes.chunks(3).map(|s| s[1]).max().unwrap_or(0);
    let text_width = sizes.chunks(3).map(|s| s[2]).max().unwrap_or(0);
    let total: usize = counts.iter().sum();
    if total == 0 {
        bail!("worker {}: no worker holds a pair of this update", peer.rank);
    }
    let positions = Tensor::<B::InnerBackend, 1>::from_floats(shared.positions.iter().map(|&p| p as f32).collect::<Vec<_>>().as_slice(), device);
    let rows = (own > 0).then(|| Tensor::cat(vec![Tensor::cat(images, 0).inner(), Tensor::cat(texts, 0).inner(), positions.reshape([own, 1])], 1));
    let all = peer.gather_rows(rows, image_width + text_width + 1, &counts, device)?;
    let start: usize = counts[..peer.rank].iter().sum();
    let image = Tensor::from_inner(all.clone().narrow(1, 0, image_width));
    let text = Tensor::from_inner(all.clone().narrow(1, image_width, text_width));
    let positions: Vec<usize> = all.narrow(1, image_width + text_width, 1).into_data().convert::<f32>().iter::<f32>().map(|p| p.round() as usize).collect();
    let (image_ids, teacher) = (shared.metadata)(&positions);
    Ok((start..start + own, image, text, image_ids, teacher))
}
// ANCHOR_END: gather

/// Initialises every parameter of `model` in place. burn initialises parameters lazily, from
/// the random generator that seeds the dropout, and a clone of an uninitialised parameter draws
/// its own values: the training loop initialises every one before it clones or shares the model.
pub fn initialise<B: Backend>(model: &DualEncoder<B>) {
    model.visit(&mut Initialise);
}

struct Initialise;

impl<B: Backend> ModuleVisitor<B> for Initialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// Rows `start..start + len` of a text batch.
fn text_rows<B: Backend>(text: &TextBatch<B>, start: usize, len: usize) -> TextBatch<B> {
    TextBatch { input_ids: text.input_ids.clone().narrow(0, start, len), attention_mask: text.attention_mask.clone().narrow(0, start, len) }
}

fn detached<B: AutodiffBackend>(terms: LossTerms<B>) -> LossTerms<B> {
    LossTerms {
        total: terms.total.detach(),
        contrastive: terms.contrastive.map(Tensor::detach),
        transport: terms.transport.map(Tensor::detach),
        plan_mass: terms.plan_mass.map(Tensor::detach),
    }
}
