//! How to decode (`generation_config.json` with the caller's changes) and transformers' logits
//! processors and stopping rules.

use anyhow::{bail, Result};

/// When beam search stops (transformers' `early_stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// `false`: stop when the best running beam, scored at the current length, cannot beat the
    /// worst finished one.
    #[default]
    Heuristic,
    /// `true`: stop as soon as `num_beams` hypotheses are finished.
    Done,
    /// `"never"`: the canonical search; with a positive length penalty, scores the running beam
    /// at the maximum length.
    Never,
}

/// How to decode: `generation_config.json` with the caller's changes.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// The first decoder token (Marian: `<pad>`, M2M100: `</s>`).
    pub decoder_start_token_id: u32,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: u32,
    /// The longest output, counting the decoder start token.
    pub max_length: usize,
    /// Overrides `max_length` with this many tokens after the start token.
    pub max_new_tokens: Option<usize>,
    /// End-of-sentence is forbidden before this length (start token counted).
    pub min_length: usize,
    /// 1: greedy.
    pub num_beams: usize,
    /// Finished beams score `log p / length^length_penalty`.
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    /// No n-gram of this size appears twice (0: off).
    pub no_repeat_ngram_size: usize,
    /// The token forced first (NLLB's target language).
    pub forced_bos_token_id: Option<u32>,
    /// The tokens forced last, at `max_length`.
    pub forced_eos_token_ids: Vec<u32>,
    /// Token sequences never generated (Marian forbids `<pad>`).
    pub bad_words_ids: Vec<Vec<u32>>,
    /// Log-softmax again after the processors (beam scores then sum to 1 over allowed tokens).
    pub renormalize_logits: bool,
}

impl GenerationConfig {
    /// The longest output, start token counted.
    pub fn effective_max_length(&self) -> usize {
        self.max_new_tokens.map_or(self.max_length, |n| n + 1)
    }

    pub fn validate(&self, vocab: usize) -> Result<()> {
        if self.num_beams == 0 {
            bail!("num_beams must be at least 1");
        }
        if self.effective_max_length() < 2 {
            bail!("max_new_tokens (or max_length - 1) must be at least 1");
        }
        if self.eos_token_ids.is_empty() {
            bail!("the generation config names no eos_token_id");
        }
        if self.bad_words_ids.iter().any(Vec::is_empty) {
            bail!("bad_words_ids holds an empty list");
        }
        if !self.length_penalty.is_finite() {
            bail!("length_penalty must be finite, not {}", self.length_penalty);
        }
        let ids = [self.decoder_start_token_id, self.pad_token_id].into_iter().chain(self.eos_token_ids.iter().copied()).chain(self.forced_bos_token_id).chain(self.forced_eos_token_ids.iter().copied());
        for id in ids.chain(self.bad_words_ids.iter().flatten().copied()) {
            if id as usize >= vocab {
                bail!("token id {id} of the generation config is outside the model's vocabulary of {vocab}");
            }
        }
        Ok(())
    }

    /// transformers' logits processors, in its order, on one row's `scores` after `sequence`
    /// (start token included): no-repeat n-grams, bad words, minimum length, forced first and
    /// last tokens, renormalisation (`renormalize` is off for greedy, where it changes nothing).
    pub fn process(&self, scores: &mut [f32], sequence: &[u32], renormalize: bool) {
        let cur_len = sequence.len();
        let n = self.no_repeat_ngram_size;
        if n > 0 && cur_len + 1 >= n {
            let prefix = &sequence[cur_len + 1 - n..];
            for window in sequence.windows(n) {
                if &window[..n - 1] == prefix {
                    scores[window[n - 1] as usize] = f32::NEG_INFINITY;
                }
            }
        }
        for bad in &self.bad_words_ids {
            if bad.len() == 1 && self.eos_token_ids.contains(&bad[0]) {
                continue;
            }
            let (last, prefix) = bad.split_last().expect("bad words are not empty");
            if sequence.ends_with(prefix) {
                scores[*last as usize] = f32::NEG_INFINITY;
            }
        }
        if cur_len < self.min_length {
            for &eos in &self.eos_token_ids {
                scores[eos as usize] = f32::NEG_INFINITY;
            }
        }
        let force = |scores: &mut [f32], ids: &[u32]| {
            scores.fill(f32::NEG_INFINITY);
            for &id in ids {
                scores[id as usize] = 0.0;
            }
        };
        if let Some(bos) = self.forced_bos_token_id.filter(|_| cur_len == 1) {
            force(scores, &[bos]);
        }
        if !self.forced_eos_token_ids.is_empty() && cur_len == self.effective_max_length() - 1 {
            force(scores, &self.forced_eos_token_ids);
        }
        if renormalize && self.renormalize_logits {
            log_softmax(scores);
        }
    }

    /// Whether a sequence that just got `token` and is now `length` long stops.
    pub fn stops(&self, token: u32, length: usize) -> bool {
        self.eos_token_ids.contains(&token) || length >= self.effective_max_length()
    }
}

/// In place, as torch computes it: `x − max − ln Σ exp(x − max)`.
pub fn log_softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let sum: f32 = scores.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln();
    for x in scores.iter_mut() {
        *x = *x - max - log_sum;
    }
}
