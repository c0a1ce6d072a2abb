//! AdamW with parameter groups, as the ViCLIP-OT recipe trains: one learning rate for the
//! backbones and one for the heads (projections, temperature, bias), no weight decay on norms,
//! biases, embeddings, the temperature or the bias, and global-norm gradient clipping.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::config::OptimSection;
use crate::model::DualEncoder;

type AdamWOptimizer<B> = OptimizerAdaptor<AdamW, DualEncoder<B>, B>;

/// The optimiser state of every parameter, as a checkpoint stores it.
pub type OptimizerRecord<B> = <AdamWOptimizer<B> as Optimizer<DualEncoder<B>, B>>::Record;

/// Which learning rate a parameter trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// The image and text towers (`optim.lr`).
    Backbone,
    /// The projections, the temperature and the bias (`optim.head_lr`).
    Head,
}

/// A parameter's group and whether weight decay applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamClass {
    pub group: Group,
    pub decay: bool,
}

/// Where a parameter sits: `(field, type of the struct holding the field)`, outermost first.
pub type ParamPath = [(String, String)];

impl ParamClass {
    /// The class of a parameter of `rank` dimensions at `path`. No decay for tensors of fewer than
    /// two dimensions (norm scales and shifts, biases, layer scales, the temperature and bias),
    /// for embedding tables, and for the learned tokens and position embeddings.
    pub fn of(path: &ParamPath, rank: usize) -> Self {
        let group = match path.first().map(|(field, _)| field.as_str()) {
            Some("vision_model" | "image_model" | "text_model") => Group::Backbone,
            _ => Group::Head,
        };
        let in_embedding_table = path.iter().any(|(_, holder)| holder == "Struct:Embedding");
        let field = path.last().map(|(field, _)| field.as_str()).unwrap_or("");
        let learned_token = field.ends_with("_token") || field.ends_with("_tokens") || field == "position_embeddings";
        ParamClass { group, decay: rank >= 2 && !in_embedding_table && !learned_token }
    }
}

/// Learning rates at one step, per group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupRates {
    pub backbone: f64,
    pub head: f64,
}

/// One AdamW per (group, decay) class, each stepping only its own parameters.
pub struct GroupedAdamW<B: AutodiffBackend> {
    optimizers: Vec<(ParamClass, AdamWOptimizer<B>)>,
    class_of: HashMap<ParamId, ParamClass>,
}

impl<B: AutodiffBackend> GroupedAdamW<B> {
    pub fn new(model: &DualEncoder<B>, optim: &OptimSection) -> Self {
        let class_of = param_classes(model).into_iter().map(|(id, class, _)| (id, class)).collect();
        let classes = [Group::Backbone, Group::Head].into_iter().flat_map(|group| [true, false].map(|decay| ParamClass { group, decay }));
        let optimizers = classes
            .map(|class| {
                let decay = if class.decay { optim.weight_decay } else { 0.0 };
                let config = AdamWConfig::new().with_beta_1(optim.beta_1).with_beta_2(optim.beta_2).with_epsilon(optim.eps).with_weight_decay(decay);
                (class, config.init::<B, DualEncoder<B>>())
            })
            .collect();
        Self { optimizers, class_of }
    }

    /// One step: each class's AdamW updates its own parameters at its group's rate.
    pub fn step(&mut self, rates: GroupRates, mut model: DualEncoder<B>, grads: GradientsParams) -> DualEncoder<B> {
        let classes: Vec<ParamClass> = self.optimizers.iter().map(|(class, _)| *class).collect();
        let parts = split_grads::<B>(&model, &self.class_of, &classes, grads);
        for ((class, optimizer), own) in self.optimizers.iter_mut().zip(parts) {
            if own.is_empty() {
                continue;
            }
            let lr = match class.group {
                Group::Backbone => rates.backbone,
                Group::Head => rates.head,
            };
            model = optimizer.step(lr, model, own);
        }
        model
    }

    /// Every parameter's state in one record (each optimiser holds only its own parameters').
    pub fn to_record(&self) -> OptimizerRecord<B> {
        self.optimizers.iter().flat_map(|(_, optimizer)| optimizer.to_record()).collect()
    }

    /// Gives each optimiser the state of its own parameters.
    pub fn load_record(mut self, record: OptimizerRecord<B>) -> Self {
        self.optimizers = self
            .optimizers
            .into_iter()
            .map(|(class, optimizer)| {
                let own = record.iter().filter(|(id, _)| self.class_of.get(id) == Some(&class)).map(|(id, r)| (*id, r.clone())).collect();
                (class, optimizer.load_record(own))
            })
            .collect();
        self
    }
}

/// Every float parameter of `model` with its class and path (`a.b.c`).
pub fn param_classes<B: Backend, M: Module<B>>(model: &M) -> Vec<(ParamId, ParamClass, String)> {
    struct Walk {
        path: Vec<(String, String)>,
        found: Vec<(ParamId, ParamClass, String)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Walk {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.push((name.to_string(), container_type.to_string()));
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let name: Vec<&str> = self.path.iter().map(|(field, _)| field.as_str()).collect();
            self.found.push((param.id, ParamClass::of(&self.path, D), name.join(".")));
        }
    }
    let mut walk = Walk { path: Vec::new(), found: Vec::new() };
    model.visit(&mut walk);
    walk.found
}

/// Scales every gradient so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping (computed on the device, read back once).
pub fn clip_global_norm<B: AutodiffBackend>(model: &DualEncoder<B>, grads: &mut GradientsParams, max_norm: Option<f64>) -> f64 {
    struct SquaredSum<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        total: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredSum<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let squares = grad.powi_scalar(2).sum();
                self.total = Some(match self.total.take() {
                    Some(total) => total + squares,
                    None => squares,
                });
            }
        }
    }
    let mut sum = SquaredSum::<B> { grads, total: None };
    model.visit(&mut sum);
    let norm = sum.total.map(|t| t.into_scalar().elem::<f64>().sqrt()).unwrap_or(0.0);
    if let Some(max_norm) = max_norm.filter(|max| norm > *max) {
        scale_grads::<B>(model, grads, max_norm / (norm + 1e-6));
    }
    norm
}

/// `grads` split in one pass over the model: one part per entry of `classes`, by each
/// parameter's class.
fn split_grads<B: AutodiffBackend>(model: &DualEncoder<B>, class_of: &HashMap<ParamId, ParamClass>, classes: &[ParamClass], mut grads: GradientsParams) -> Vec<GradientsParams> {
    struct Split<'a> {
        class_of: &'a HashMap<ParamId, ParamClass>,
        classes: &'a [ParamClass],
        from: &'a mut GradientsParams,
        parts: Vec<GradientsParams>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Split<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let part = self.class_of.get(&param.id).and_then(|class| self.classes.iter().position(|c| c == class));
            if let (Some(part), Some(grad)) = (part, self.from.remove::<B::InnerBackend, D>(param.id)) {
                self.parts[part].register::<B::InnerBackend, D>(param.id, grad);
            }
        }
    }
    let mut split = Split { class_of, classes, from: &mut grads, parts: classes.iter().map(|_| GradientsParams::new()).collect() };
    model.visit(&mut split);
    split.parts
}

/// Multiplies every gradient in `grads` by `factor`.
fn scale_grads<B: AutodiffBackend>(model: &DualEncoder<B>, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads.register::<B::InnerBackend, D>(param.id, grad.mul_scalar(self.factor));
            }
        }
    }
    model.visit(&mut Scale { grads, factor });
}
