//! The decoder driven one step at a time for the searches, with or without the key–value cache.

use anyhow::Result;
use burn::prelude::*;

use super::{DecoderState, Seq2SeqModel};

/// Feeds the decoder one step at a time, with the cache or (to measure it) without.
pub struct Stepper<'a, B: Backend> {
    model: &'a Seq2SeqModel<B>,
    state: DecoderState<B>,
    use_cache: bool,
}

impl<'a, B: Backend> Stepper<'a, B> {
    pub fn new(model: &'a Seq2SeqModel<B>, state: DecoderState<B>, use_cache: bool) -> Self {
        Self { model, state, use_cache }
    }

    /// Next-token logits `[rows × vocab]` on the host for each row's sequence so far.
    pub fn next_logits(&mut self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        let logits = if self.use_cache {
            let last: Vec<u32> = sequences.iter().map(|s| *s.last().expect("sequences start with the decoder start token")).collect();
            self.model.step(&mut self.state, &last)?
        } else {
            let prefixes: Vec<Vec<u32>> = sequences.iter().map(|s| s.to_vec()).collect();
            self.model.logits_without_cache(&self.state, &prefixes)?
        };
        let data = logits.into_data().convert::<f32>();
        data.into_vec::<f32>().map_err(|e| anyhow::anyhow!("cannot read the logits: {e:?}"))
    }

    /// Keeps the rows `rows` in that order.
    pub fn select(&mut self, rows: &[usize]) {
        let identity = rows.len() == self.state.rows() && rows.iter().enumerate().all(|(i, &r)| i == r);
        if !identity {
            self.state = self.state.clone().select(rows);
        }
    }
}
