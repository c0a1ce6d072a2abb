//! Beam search as transformers 5 runs it (`GenerationMixin._beam_search`): each step keeps the
//! top `2·beams` continuations of all beams, continues the best `beams` that did not stop, and
//! merges those of the top `beams` that stopped into the finished set, scored with the length
//! penalty. Scores are f32 and the arithmetic follows transformers', so ties break alike.

use anyhow::Result;
use burn::prelude::*;

use super::generation_config::{log_softmax, EarlyStopping, GenerationConfig};
use super::stepper::Stepper;

/// transformers' stand-in for "impossible" in beam scores.
const IMPOSSIBLE: f32 = -1.0e9;

#[derive(Debug, Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// One sentence's search.
#[derive(Debug, Clone)]
struct Search {
    running: Vec<Hypothesis>,
    finished: Vec<Hypothesis>,
    /// transformers' `is_early_stop_heuristic_unsatisfied`.
    may_improve: bool,
    /// For each running beam, the beam of the previous step it grew from (its cache row).
    parents: Vec<usize>,
}

impl Search {
    fn new(start: u32, beams: usize) -> Self {
        let hypothesis = |score| Hypothesis { tokens: vec![start], score, finished: false };
        Self {
            running: (0..beams).map(|b| hypothesis(if b == 0 { 0.0 } else { IMPOSSIBLE })).collect(),
            finished: (0..beams).map(|_| hypothesis(IMPOSSIBLE)).collect(),
            may_improve: true,
            parents: (0..beams).collect(),
        }
    }

    fn all_finished(&self) -> bool {
        self.finished.iter().all(|h| h.finished)
    }

    fn done(&self, early_stopping: EarlyStopping) -> bool {
        !self.may_improve || (early_stopping == EarlyStopping::Done && self.all_finished())
    }

    fn best(self) -> Vec<u32> {
        let best = self.finished.into_iter().next().filter(|h| h.finished);
        best.unwrap_or_else(|| self.running.into_iter().next().expect("at least one beam")).tokens
    }
}

/// `base^exponent` as transformers computes the length penalty (in f64, used as f32).
fn penalty(length: usize, exponent: f32) -> f32 {
    (length as f64).powf(exponent as f64) as f32
}

/// The indices of the `k` largest values, largest first; among equals, the lower index first.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut top: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &v) in values.iter().enumerate() {
        if top.len() == k && v <= values[top[k - 1]] {
            continue;
        }
        let at = top.partition_point(|&j| values[j] >= v);
        top.insert(at, i);
        top.truncate(k);
    }
    top
}

/// Beam search over `count` sentences whose decoder rows (`beams` per sentence) `stepper` holds.
pub fn beam_search<B: Backend>(mut stepper: Stepper<'_, B>, count: usize, config: &GenerationConfig, vocab: usize) -> Result<Vec<Vec<u32>>> {
    let beams = config.num_beams;
    let keep = (1 + config.eos_token_ids.len()).max(2) * beams;
    let max_length = config.effective_max_length();
    let prompt = 1;
    let mut searches: Vec<Search> = (0..count).map(|_| Search::new(config.decoder_start_token_id, beams)).collect();
    let mut active: Vec<usize> = (0..count).collect();
    let mut cur_len = prompt;
    while !active.is_empty() {
        let views: Vec<&[u32]> = active.iter().flat_map(|&s| searches[s].running.iter().map(|h| h.tokens.as_slice())).collect();
        let mut logits = stepper.next_logits(&views)?;
        let mut all_stop = true;
        for (slot, &sentence) in active.iter().enumerate() {
            let search = &mut searches[sentence];
            let mut scores = Vec::with_capacity(beams * vocab);
            for (beam, hypothesis) in search.running.iter().enumerate() {
                let row = &mut logits[(slot * beams + beam) * vocab..(slot * beams + beam + 1) * vocab];
                log_softmax(row);
                config.process(row, &hypothesis.tokens, true);
                scores.extend(row.iter().map(|&x| x + hypothesis.score));
            }
            let candidates: Vec<(Hypothesis, bool, usize)> = top_k(&scores, keep)
                .into_iter()
                .map(|index| {
                    let (beam, token) = (index / vocab, (index % vocab) as u32);
                    let mut tokens = search.running[beam].tokens.clone();
                    tokens.push(token);
                    let stops = config.stops(token, tokens.len());
                    (Hypothesis { tokens, score: scores[index], finished: false }, stops, beam)
                })
                .collect();
            all_stop &= candidates.iter().all(|(_, stops, _)| *stops);
            // The next running beams: the best that did not stop.
            let running_scores: Vec<f32> = candidates.iter().map(|(h, stops, _)| if *stops { h.score + IMPOSSIBLE } else { h.score }).collect();
            let next = top_k(&running_scores, beams);
            search.parents = next.iter().map(|&i| candidates[i].2).collect();
            search.running = next.into_iter().map(|i| Hypothesis { score: running_scores[i], ..candidates[i].0.clone() }).collect();
            // The finished set: the old one merged with those of the top `beams` that stopped.
            let full = search.all_finished() && config.early_stopping == EarlyStopping::Done;
            let divisor = penalty(cur_len + 1 - prompt, config.length_penalty);
            let mut merged = search.finished.clone();
            for (k, (hypothesis, stops, _)) in candidates.into_iter().enumerate() {
                let just_finished = stops && k < beams;
                let mut score = hypothesis.score / divisor;
                // Added one at a time, as transformers does (f32 sums round).
                for penalised in [full, !search.may_improve, !just_finished] {
                    if penalised {
                        score += IMPOSSIBLE;
                    }
                }
                merged.push(Hypothesis { tokens: hypothesis.tokens, score, finished: just_finished });
            }
            let merged_scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
            search.finished = top_k(&merged_scores, beams).into_iter().map(|i| merged[i].clone()).collect();
        }
        cur_len += 1;
        for &sentence in &active {
            let search = &mut searches[sentence];
            if search.may_improve {
                let hypothetical = if config.early_stopping == EarlyStopping::Never && config.length_penalty > 0.0 { max_length - prompt } else { cur_len - prompt };
                let best_running = search.running[0].score / penalty(hypothetical, config.length_penalty);
                let worst_finished = search.finished.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
                search.may_improve = search.finished.iter().any(|h| best_running > if h.finished { worst_finished } else { IMPOSSIBLE });
            }
        }
        let still: Vec<usize> = if all_stop { Vec::new() } else { active.iter().copied().filter(|&s| !searches[s].done(config.early_stopping)).collect() };
        // The cache rows of the next step: each kept beam's parent, within its sentence's rows.
        let rows: Vec<usize> = active
            .iter()
            .enumerate()
            .filter(|(_, s)| still.contains(s))
            .flat_map(|(slot, &s)| searches[s].parents.iter().map(move |&parent| slot * beams + parent))
            .collect();
        if !rows.is_empty() {
            stepper.select(&rows);
        }
        active = still;
    }
    Ok(searches.into_iter().map(Search::best).collect())
}
