//! Decoding as transformers' `generate` does it: greedy here, beam search in [`super::beam`],
//! the logits processors and stopping rules in [`super::generation_config`], so that the same
//! model gives the same tokens. Sentences that finish leave the batch; the key–value cache can be
//! switched off to measure what it saves.

use anyhow::Result;
use burn::prelude::*;

use super::beam::beam_search;
use super::generation_config::GenerationConfig;
use super::stepper::Stepper;
use super::Seq2SeqModel;

/// Translates a batch of source sentences (token ids with special tokens); each output starts
/// with the decoder start token and ends with an end-of-sentence token unless it hit the length
/// limit, as transformers' `generate` rows without their trailing padding.
pub fn generate<B: Backend>(model: &Seq2SeqModel<B>, sources: &[Vec<u32>], config: &GenerationConfig, use_cache: bool) -> Result<Vec<Vec<u32>>> {
    config.validate(model.config.decoder_vocab_size)?;
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let encoded = model.encode(sources)?;
    let stepper = Stepper::new(model, model.start(&encoded, config.num_beams), use_cache);
    if config.num_beams == 1 {
        greedy(stepper, sources.len(), config, model.config.decoder_vocab_size)
    } else {
        beam_search(stepper, sources.len(), config, model.config.decoder_vocab_size)
    }
}

/// Greedy decoding: the processed logits' first maximum at each step.
fn greedy<B: Backend>(mut stepper: Stepper<'_, B>, count: usize, config: &GenerationConfig, vocab: usize) -> Result<Vec<Vec<u32>>> {
    let mut sequences = vec![vec![config.decoder_start_token_id]; count];
    let mut active: Vec<usize> = (0..count).collect();
    while !active.is_empty() {
        let views: Vec<&[u32]> = active.iter().map(|&s| sequences[s].as_slice()).collect();
        let mut logits = stepper.next_logits(&views)?;
        let mut keep = Vec::with_capacity(active.len());
        for (row, &sentence) in active.iter().enumerate() {
            let scores = &mut logits[row * vocab..(row + 1) * vocab];
            config.process(scores, &sequences[sentence], false);
            let token = argmax(scores);
            sequences[sentence].push(token);
            if !config.stops(token, sequences[sentence].len()) {
                keep.push(row);
            }
        }
        if keep.len() < active.len() {
            stepper.select(&keep);
            active = keep.iter().map(|&row| active[row]).collect();
        }
    }
    Ok(sequences)
}

/// The index of the first largest value (NaN counts as largest, as in torch).
fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in scores.iter().enumerate() {
        if x.is_nan() {
            return i as u32;
        }
        if x > scores[best] {
            best = i;
        }
    }
    best as u32
}
