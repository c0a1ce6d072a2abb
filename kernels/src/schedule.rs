//! The order of the half-steps, for every solver path: the tensor-op fallback, the CPU loop, the
//! CubeCL launcher and the reference in `otclip::loss::sinkhorn` run it forwards, and their
//! backward passes run it in reverse.
//!
//! Iteration t first updates one potential from the other's value after iteration t − 1, then
//! the other from the first's new value. The histories of the potentials hold slot 0 (the
//! start) and slot t (after iteration t), so a half-step reads slot t − 1 or t and writes slot t.

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
