//! Contrastive and transport losses, computed in f32 on embeddings that the towers L2-normalised.
//! The math is `shared/design/losses.md`; each function cites its section.

pub mod clip;
pub mod objective;
pub mod same_image;
pub mod siglip;
pub mod sigrot;
pub mod sinkhorn;

pub use clip::{clip_loss, multi_positive_targets, soft_cross_entropy_rows};
pub use objective::{objective_loss, Contrastive, LossConfig, LossInputs, LossTerms, Objective, Transport};
pub use same_image::SameImage;
pub use siglip::siglip_loss;
pub use sigrot::{generalized_kl, scaled_plan, sigrot_loss, sigrot_loss_and_mass, teacher_graph, uot_loss, uot_loss_and_mass, Kappa};
pub use sinkhorn::{sinkhorn, solve, GradMode, SinkhornConfig, SinkhornOutput, SolverPath};
