//! The order of the half-steps, for every solver path: the tensor-op fallback, the CPU loop, the
//! CubeCL launcher and the reference in `otclip::loss::sinkhorn` run it forwards, and their
//! backward passes run it in reverse.
//!
//! Iteration t first updates one potential from the other's value after iteration t − 1, then
//! the other from the first's new value. The histories of the potentials hold slot 0 (the
//! start) and slot t (after iteration t), so a half-step reads slot t − 1 or t and writes slot t.

use std::ops::Range;

/// A potential of the solver: α, indexed by the rows of the cost (f in the reference), or β,
/// indexed by its columns (g in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Potential {
    Alpha,
    Beta,
}

impl Potential {
    pub fn other(self) -> Self {
        match self {
            Potential::Alpha => Potential::Beta,
            Potential::Beta => Potential::Alpha,
        }
    }
}

/// One half-step: slot `iteration` of `writes` ← the update from slot `reads_slot` of the other
/// potential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfStep {
    /// The iteration, counted from 1.
    pub iteration: usize,
    /// The potential it updates.
    pub writes: Potential,
    /// The slot of the other potential it reads: `iteration − 1` for the first half-step of the
    /// iteration, `iteration` for the second.
    pub reads_slot: usize,
}

impl HalfStep {
    /// Whether this is the second half-step, which completes its iteration.
    pub fn completes_iteration(&self) -> bool {
        self.reads_slot == self.iteration
    }
}

/// The half-steps of a run, in order (see [`SinkhornConfig::half_steps`]).
///
/// [`SinkhornConfig::half_steps`]: crate::SinkhornConfig::half_steps
#[derive(Debug, Clone)]
pub struct HalfSteps {
    first: Potential,
    /// Half-step k is the (k mod 2)-th of iteration k/2 + 1.
    remaining: Range<usize>,
}

impl HalfSteps {
    pub(crate) fn new(first: Potential, iterations: usize) -> Self {
        Self { first, remaining: 0..2 * iterations }
    }

    fn step(&self, index: usize) -> HalfStep {
        let iteration = index / 2 + 1;
        let second = index % 2 == 1;
        HalfStep {
            iteration,
            writes: if second { self.first.other() } else { self.first },
            reads_slot: if second { iteration } else { iteration - 1 },
        }
    }
}

impl Iterator for HalfSteps {
    type Item = HalfStep;

    fn next(&mut self) -> Option<HalfStep> {
        self.remaining.next().map(|index| self.step(index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.remaining.size_hint()
    }
}

impl DoubleEndedIterator for HalfSteps {
    fn next_back(&mut self) -> Option<HalfStep> {
        self.remaining.next_back().map(|index| self.step(index))
    }
}

impl ExactSizeIterator for HalfSteps {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SinkhornConfig;

    fn steps(config: SinkhornConfig, iterations: usize) -> Vec<(usize, Potential, usize)> {
        config.half_steps(iterations).map(|s| (s.iteration, s.writes, s.reads_slot)).collect()
    }

    #[test]
    fn unbalanced_updates_alpha_first() {
        use Potential::*;
        let expected = vec![(1, Alpha, 0), (1, Beta, 1), (2, Alpha, 1), (2, Beta, 2)];
        assert_eq!(steps(SinkhornConfig::new(), 2), expected);
    }

    #[test]
    fn balanced_updates_beta_first_and_reverses() {
        use Potential::*;
        let config = SinkhornConfig::new().with_tau(None);
        assert_eq!(steps(config, 2), vec![(1, Beta, 0), (1, Alpha, 1), (2, Beta, 1), (2, Alpha, 2)]);
        let reversed: Vec<_> = config.half_steps(2).rev().map(|s| (s.iteration, s.writes, s.completes_iteration())).collect();
        assert_eq!(reversed, vec![(2, Alpha, true), (2, Beta, false), (1, Alpha, true), (1, Beta, false)]);
        assert_eq!(config.half_steps(3).len(), 6);
    }
}
