//! Encoder–decoder translation models: Marian (the OPUS-MT models) and M2M100 (NLLB), as
//! transformers builds them, for inference. [`generate`] decodes with a key–value cache.
//!
//! | | Marian | M2M100 / NLLB |
//! |---|---|---|
//! | LayerNorm | after each block | before each block, plus one after each stack |
//! | positions | sinusoidal, from 0 | sinusoidal (fairseq), from `pad + 1`, padding kept at zero |
//! | logits | `final_logits_bias` added | none |

pub mod beam;
pub mod config;
pub mod generate;
pub mod generation_config;
pub mod layers;
pub mod stepper;

use anyhow::{bail, Result};
use burn::prelude::*;
use otclip_kernels::layer_ops;

use self::layers::{DecoderLayer, EncoderLayer, LayerCache};
use crate::model::norm::{LayerNorm, LayerNormConfig};

pub use config::{Activation, Seq2SeqConfig, Seq2SeqFamily};
pub use generation_config::{EarlyStopping, GenerationConfig};

/// A stack of encoder layers (`encoder.layers.N`) and, for M2M100, its closing `encoder.layer_norm`.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    pub layers: Vec<EncoderLayer<B>>,
    pub layer_norm: Option<LayerNorm<B>>,
}

/// A stack of decoder layers (`decoder.layers.N`) and, for M2M100, its closing `decoder.layer_norm`.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    pub layers: Vec<DecoderLayer<B>>,
    pub layer_norm: Option<LayerNorm<B>>,
}

/// The parameters a checkpoint's layer keys load into (`model.` stripped).
#[derive(Module, Debug)]
pub struct Seq2SeqLayers<B: Backend> {
    pub encoder: Encoder<B>,
    pub decoder: Decoder<B>,
}

impl Seq2SeqConfig {
    /// Layers with fresh parameters (for loading into).
    pub fn init_layers<B: Backend>(&self, device: &B::Device) -> Seq2SeqLayers<B> {
        let final_norm = || self.family.pre_norm().then(|| LayerNormConfig::new(self.d_model).init(device));
        Seq2SeqLayers {
            encoder: Encoder { layers: (0..self.encoder_layers).map(|_| EncoderLayer::new(self, device)).collect(), layer_norm: final_norm() },
            decoder: Decoder { layers: (0..self.decoder_layers).map(|_| DecoderLayer::new(self, device)).collect(), layer_norm: final_norm() },
        }
    }
}

/// A loaded translation model. The embedding tables are kept transposed (`[d_model, vocab]`,
/// contiguous), so that the output projection multiplies by them without a transposed operand.
#[derive(Debug, Clone)]
pub struct Seq2SeqModel<B: Backend> {
    pub config: Seq2SeqConfig,
    pub layers: Seq2SeqLayers<B>,
    /// `[d_model, vocab_size]`.
    pub encoder_embeddings: Tensor<B, 2>,
    /// `[d_model, decoder_vocab_size]`.
    pub decoder_embeddings: Tensor<B, 2>,
    /// `[d_model, decoder_vocab_size]`; the decoder's table when tied.
    pub lm_head: Tensor<B, 2>,
    /// Marian's `final_logits_bias`.
    pub final_logits_bias: Option<Tensor<B, 1>>,
}

/// The encoder's output for a batch of source sentences.
#[derive(Debug, Clone)]
pub struct Encoded<B: Backend> {
    /// `[batch, source, d_model]`.
    pub hidden: Tensor<B, 3>,
    /// `[batch, source]`: 0 for tokens, a large negative number for padding.
    pub keep_bias: Tensor<B, 2>,
}

/// Where a decoding stands: each layer's cache and the source padding, one row per hypothesis.
#[derive(Debug, Clone)]
pub struct DecoderState<B: Backend> {
    pub caches: Vec<LayerCache<B>>,
    /// `[rows, 1, 1, source]`.
    pub cross_bias: Tensor<B, 4>,
    /// `[rows, source, d_model]`, kept for decoding without a cache.
    pub encoder_hidden: Tensor<B, 3>,
    /// Tokens already in the caches.
    pub past: usize,
}

impl<B: Backend> DecoderState<B> {
    pub fn rows(&self) -> usize {
        self.cross_bias.dims()[0]
    }

    /// Keeps the rows `rows`, in that order (beam reordering; finished sentences dropped).
    pub fn select(self, rows: &[usize]) -> Self {
        let index = int_index(rows.iter().map(|&r| r as i64).collect(), &self.cross_bias.device());
        Self {
            caches: self.caches.into_iter().map(|c| c.select(index.clone())).collect(),
            cross_bias: self.cross_bias.select(0, index.clone()),
            encoder_hidden: self.encoder_hidden.select(0, index),
            past: self.past,
        }
    }
}

const MASKED: f32 = -1e9;

/// `values` as a 1-D index tensor for `select`.
fn int_index<B: Backend>(values: Vec<i64>, device: &B::Device) -> Tensor<B, 1, Int> {
    let count = values.len();
    Tensor::from_data(TensorData::new(values, [count]), device)
}

impl<B: Backend> Seq2SeqModel<B> {
    fn device(&self) -> B::Device {
        self.lm_head.device()
    }

    /// Token embeddings `[rows, tokens, d]` (scaled) of `ids` from a transposed table.
    fn embed(&self, table: &Tensor<B, 2>, ids: &[Vec<u32>], vocab: usize) -> Result<Tensor<B, 3>> {
        let (rows, tokens) = (ids.len(), ids.first().map_or(0, Vec::len));
        let mut flat = Vec::with_capacity(rows * tokens);
        for row in ids {
            for &id in row {
                if id as usize >= vocab {
                    bail!("token id {id} is outside the model's vocabulary of {vocab}");
                }
                flat.push(id as i64);
            }
        }
        let index = int_index::<B>(flat, &self.device());
        let d = self.config.d_model;
        Ok(table.clone().select(1, index).transpose().reshape([rows, tokens, d]).mul_scalar(self.config.embed_scale()))
    }

    /// Position rows `[rows, tokens, d]` for `ids`, the first of which follows `past` tokens.
    fn positions(&self, ids: &[Vec<u32>], past: usize) -> Result<Tensor<B, 3>> {
        let (rows, tokens, d) = (ids.len(), ids.first().map_or(0, Vec::len), self.config.d_model);
        let pad = self.config.pad_token_id as u32;
        let mut data = Vec::with_capacity(rows * tokens * d);
        for row in ids {
            let mut seen = 0;
            for (i, &id) in row.iter().enumerate() {
                match self.config.family {
                    Seq2SeqFamily::Marian => {
                        let position = past + i;
                        if position >= self.config.max_position_embeddings {
                            bail!("position {position} is beyond the model's max_position_embeddings ({})", self.config.max_position_embeddings);
                        }
                        data.extend(marian_position(position, d));
                    }
                    Seq2SeqFamily::M2M100 if id == pad => data.extend(std::iter::repeat_n(0.0, d)),
                    Seq2SeqFamily::M2M100 => {
                        seen += 1;
                        data.extend(fairseq_position(self.config.pad_token_id + past + seen, d));
                    }
                }
            }
        }
        Ok(Tensor::from_data(TensorData::new(data, [rows, tokens, d]), &self.device()))
    }

    /// Encodes source sentences (token ids with their special tokens), right-padded into one batch.
    pub fn encode(&self, sources: &[Vec<u32>]) -> Result<Encoded<B>> {
        let length = sources.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let pad = self.config.pad_token_id as u32;
        let padded: Vec<Vec<u32>> = sources.iter().map(|s| s.iter().copied().chain(std::iter::repeat(pad)).take(length).collect()).collect();
        let bias: Vec<f32> = sources.iter().flat_map(|s| (0..length).map(move |i| if i < s.len() { 0.0 } else { MASKED })).collect();
        let keep_bias = Tensor::<B, 2>::from_data(TensorData::new(bias, [sources.len(), length]), &self.device());
        let mut hidden = self.embed(&self.encoder_embeddings, &padded, self.config.vocab_size)? + self.positions(&padded, 0)?;
        for layer in &self.layers.encoder.layers {
            hidden = layer.forward(hidden, keep_bias.clone());
        }
        if let Some(norm) = &self.layers.encoder.layer_norm {
            hidden = norm.forward(hidden);
        }
        Ok(Encoded { hidden, keep_bias })
    }

    /// A decoding of `encoded` with `copies` rows per sentence (the beams), nothing generated yet.
    pub fn start(&self, encoded: &Encoded<B>, copies: usize) -> DecoderState<B> {
        let [batch, source, _] = encoded.hidden.dims();
        let rows: Vec<usize> = (0..batch).flat_map(|b| std::iter::repeat_n(b, copies)).collect();
        let index = int_index::<B>(rows.iter().map(|&r| r as i64).collect(), &self.device());
        let hidden = encoded.hidden.clone().select(0, index.clone());
        let cross_bias = encoded.keep_bias.clone().select(0, index).reshape([rows.len(), 1, 1, source]);
        let caches = self.layers.decoder.layers.iter().map(|layer| layer.start_cache(hidden.clone())).collect();
        DecoderState { caches, cross_bias, encoder_hidden: hidden, past: 0 }
    }

    /// Runs `tokens` (one per row) through the decoder after the cached ones; the next-token
    /// logits `[rows, decoder_vocab]`.
    pub fn step(&self, state: &mut DecoderState<B>, tokens: &[u32]) -> Result<Tensor<B, 2>> {
        let ids: Vec<Vec<u32>> = tokens.iter().map(|&t| vec![t]).collect();
        let x = self.embed(&self.decoder_embeddings, &ids, self.config.decoder_vocab_size)? + self.positions(&ids, state.past)?;
        let hidden = self.run_decoder(x, &mut state.caches, None, state.cross_bias.clone());
        state.past += 1;
        Ok(self.logits(hidden))
    }

    /// The next-token logits after each row's `prefix`, computed from scratch (no cache): the
    /// reference the cached [`Self::step`] is measured against.
    pub fn logits_without_cache(&self, state: &DecoderState<B>, prefixes: &[Vec<u32>]) -> Result<Tensor<B, 2>> {
        let tokens = prefixes.first().map_or(0, Vec::len);
        let x = self.embed(&self.decoder_embeddings, prefixes, self.config.decoder_vocab_size)? + self.positions(prefixes, 0)?;
        let mut caches: Vec<LayerCache<B>> = self.layers.decoder.layers.iter().map(|layer| layer.start_cache(state.encoder_hidden.clone())).collect();
        let causal: Vec<f32> = (0..tokens).flat_map(|q| (0..tokens).map(move |k| if k > q { MASKED } else { 0.0 })).collect();
        let causal = Tensor::<B, 4>::from_data(TensorData::new(causal, [1, 1, tokens, tokens]), &self.device());
        let hidden = self.run_decoder(x, &mut caches, Some(causal), state.cross_bias.clone());
        Ok(self.logits(hidden))
    }

    fn run_decoder(&self, mut x: Tensor<B, 3>, caches: &mut [LayerCache<B>], causal: Option<Tensor<B, 4>>, cross_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        for (layer, cache) in self.layers.decoder.layers.iter().zip(caches.iter_mut()) {
            x = layer.forward(x, cache, causal.clone(), cross_bias.clone());
        }
        match &self.layers.decoder.layer_norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// Logits `[rows, vocab]` of the last position of `hidden` `[rows, tokens, d]`.
    fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [rows, tokens, d] = hidden.dims();
        let last = hidden.slice([0..rows, tokens - 1..tokens]).reshape([rows, d]);
        layer_ops::linear(last, self.lm_head.clone(), self.final_logits_bias.clone())
    }
}

/// Marian's sinusoidal row for `position` (computed in f64 as numpy does, then rounded): sines of
/// all frequencies, then cosines.
pub fn marian_position(position: usize, d: usize) -> impl Iterator<Item = f32> {
    let angle = move |j: usize| position as f64 / 10000f64.powf(2.0 * (j / 2) as f64 / d as f64);
    let sines = (0..d).step_by(2).map(move |j| angle(j).sin() as f32);
    let cosines = (1..d).step_by(2).map(move |j| angle(j).cos() as f32);
    sines.chain(cosines)
}

/// fairseq's sinusoidal row for `position` (in f32, as M2M100 computes it): sines, then cosines,
/// a zero for an odd width.
pub fn fairseq_position(position: usize, d: usize) -> impl Iterator<Item = f32> {
    let half = d / 2;
    let step = -((10000f64.ln() / (half as f64 - 1.0)) as f32);
    let angle = move |i: usize| position as f32 * (i as f32 * step).exp();
    let sines = (0..half).map(move |i| angle(i).sin());
    let cosines = (0..half).map(move |i| angle(i).cos());
    sines.chain(cosines).chain(std::iter::repeat_n(0.0, d % 2))
}
