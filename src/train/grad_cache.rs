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

use crate::data::Batch;
use crate::loss::{LossInputs, LossTerms};
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

/// The parameter gradients of one update and its loss terms (detached, for logging).
pub struct UpdateGradients<B: AutodiffBackend> {
    pub grads: GradientsParams,
    pub terms: LossTerms<B>,
}

/// The gradients of `loss` on `batch`. Chunk `k` is encoded after `B::seed(dropout_seed(k))`,
/// so both GradCache passes, and an encoding without GradCache, draw the same dropout masks.
pub fn update_gradients<B, L>(model: &DualEncoder<B>, batch: Batch<B>, encoding: Encoding, dropout_seed: impl Fn(usize) -> u64, loss: L) -> Result<UpdateGradients<B>>
where
    B: AutodiffBackend,
    L: FnOnce(LossInputs<B>) -> Result<LossTerms<B>>,
{
    let Batch { pixel_values, text, image_ids, teacher } = batch;
    let pairs = pixel_values.dims()[0];
    if encoding.chunk_size == 0 {
        bail!("optim.chunk_size = 0: expected at least 1 pair per chunk");
    }
    // burn initialises parameters lazily, from the random generator that seeds the dropout, and a
    // clone of an uninitialised parameter draws its own values: initialise every one first.
    model.visit(&mut Initialise);
    let chunks: Vec<Range<usize>> = (0..pairs).step_by(encoding.chunk_size).map(|start| start..(start + encoding.chunk_size).min(pairs)).collect();
    let device = pixel_values.device();
    let dtype = encoding.precision.dtype();
    // The model the towers run as: cast to the low precision in the graph, once per backward.
    let lowered = |model: &DualEncoder<B>| dtype.map_or_else(|| model.clone(), |dtype| model.in_precision(dtype));
    let encode = |model: &DualEncoder<B>, k: usize| -> (Tensor<B, 2>, Tensor<B, 2>) {
        let Range { start, end } = chunks[k].clone();
        B::seed(&device, dropout_seed(k));
        let pixels = pixel_values.clone().narrow(0, start, end - start);
        let image = model.encode_image(match dtype {
            Some(dtype) => pixels.cast(dtype),
            None => pixels,
        });
        let text = model.encode_text(&text_rows(&text, start, end - start));
        (image, text)
    };
    let inputs = |image: Tensor<B, 2>, text: Tensor<B, 2>| LossInputs {
        image,
        text,
        scale: model.scale(),
        bias: model.logit_bias.val(),
        image_ids: image_ids.clone(),
        teacher: teacher.clone(),
    };

    // ANCHOR: grad_cache
    if !encoding.grad_cache || chunks.len() == 1 {
        let lowered = lowered(model);
        let (images, texts): (Vec<_>, Vec<_>) = (0..chunks.len()).map(|k| encode(&lowered, k)).unzip();
        let terms = loss(inputs(Tensor::cat(images, 0), Tensor::cat(texts, 0)))?;
        let grads = GradientsParams::from_grads(terms.total.backward(), model);
        return Ok(UpdateGradients { grads, terms: detached(terms) });
    }

    // Pass 1: the embeddings without a tape (the parameters untracked, dropout still on).
    let untracked = lowered(&model.clone().no_grad());
    let (images, texts): (Vec<_>, Vec<_>) = (0..chunks.len()).map(|k| encode(&untracked, k)).unzip();
    let image = Tensor::cat(images, 0).detach().require_grad();
    let text = Tensor::cat(texts, 0).detach().require_grad();
    let terms = loss(inputs(image.clone(), text.clone()))?;
    let loss_grads = terms.total.backward();
    let image_grad = image.grad(&loss_grads).map(Tensor::from_inner).unwrap_or_else(|| image.zeros_like().detach());
    let text_grad = text.grad(&loss_grads).map(Tensor::from_inner).unwrap_or_else(|| text.zeros_like().detach());
    let mut accumulator = GradientsAccumulator::<DualEncoder<B>>::new();
    // The temperature and bias: their only path to the loss is the loss itself.
    accumulator.accumulate(model, GradientsParams::from_grads(loss_grads, model));

    // Pass 2: each chunk again, with the tape, backpropagating its slice of the kept gradient.
    for (k, range) in chunks.iter().enumerate() {
        let (chunk_image, chunk_text) = encode(&lowered(model), k);
        let rows = range.end - range.start;
        let surrogate = (chunk_image * image_grad.clone().narrow(0, range.start, rows)).sum()
            + (chunk_text * text_grad.clone().narrow(0, range.start, rows)).sum();
        accumulator.accumulate(model, GradientsParams::from_grads(surrogate.backward(), model));
    }
    Ok(UpdateGradients { grads: accumulator.grads(), terms: detached(terms) })
    // ANCHOR_END: grad_cache
}

/// Initialises every parameter in place.
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
