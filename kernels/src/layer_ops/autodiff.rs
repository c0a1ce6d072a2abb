//! The backward passes of the fused layer ops, as `Autodiff` nodes. Each saves what its backward
//! needs and nothing else: GELU its input, softmax its output, LayerNorm its input, γ and the
//! rows' (μ, 1/σ), a linear layer its input and weight, attention q, k, v and its weights.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;

use super::LayerOpsBackend;

/// The backward of a one-input op from one saved tensor (GELU saves its input, softmax its
/// output): the input's gradient is `gradient(saved, output's gradient)`.
#[derive(Debug)]
struct UnaryBackward<B: LayerOpsBackend> {
    gradient: fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
}

impl<B: LayerOpsBackend> Backward<B, 1> for UnaryBackward<B> {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        if let [Some(parent)] = ops.parents {
            grads.register::<B>(parent.id, (self.gradient)(ops.state, grad));
        }
    }
}

/// Runs `forward` on `x`'s primitive, which returns the tensor to save and the output, and
/// records the output's [`UnaryBackward`] when `x` is tracked.
fn record_unary<B: LayerOpsBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: impl FnOnce(FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>),
    gradient: fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let node = x.node.clone();
    let (saved, output) = forward(Autodiff::<B, C>::inner(x));
    match (UnaryBackward { gradient }).prepare::<C>([node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(saved, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<B: LayerOpsBackend> Backward<B, 3> for LayerNormBackward {
    /// x, γ and the rows' statistics.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, stats) = ops.state;
        register::<B, 3>(ops.parents.map(|parent| parent.map(|node| node.id)), B::fused_layer_norm_backward(x, gamma, stats, grad), grads);
    }
}

/// Registers each tracked parent's gradient.
fn register<B: LayerOpsBackend, const N: usize>(parents: [Option<burn::backend::autodiff::NodeId>; N], gradients: [FloatTensor<B>; N], grads: &mut Gradients) {
    for (parent, gradient) in parents.into_iter().zip(gradients) {
        if let Some(parent) = parent {
            grads.register::<B>(parent, gradient);
        }
    }
}

#[derive(Debug)]
struct LinearBackward;

impl<B: LayerOpsBackend> Backward<B, 3> for LinearBackward {
    /// x and W.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        register::<B, 3>(ops.parents.map(|parent| parent.map(|node| node.id)), B::fused_linear_backward(x, weight, grad), grads);
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: LayerOpsBackend> Backward<B, 3> for AttentionBackward {
    /// q, k, v, the weights and the number of heads.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v, weights, heads) = ops.state;
        register::<B, 3>(ops.parents.map(|parent| parent.map(|node| node.id)), B::fused_attention_backward(q, k, v, weights, grad, heads), grads);
    }
}

impl<B: LayerOpsBackend, C: CheckpointStrategy> LayerOpsBackend for Autodiff<B, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record_unary::<B, C>(x, |x| (x.clone(), B::fused_gelu(x)), B::fused_gelu_backward)
    }

    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::fused_gelu_backward(Self::inner(x), Self::inner(grad)))
    }

    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
        let (x, gamma, beta) = (Self::inner(x), Self::inner(gamma), Self::inner(beta));
        let (y, stats) = B::fused_layer_norm(x.clone(), gamma.clone(), beta, eps);
        let y = match LayerNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, gamma, stats.clone()), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, Self::from_inner(stats))
    }

    fn fused_layer_norm_backward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, stats: FloatTensor<Self>, grad: FloatTensor<Self>) -> [FloatTensor<Self>; 3] {
        B::fused_layer_norm_backward(Self::inner(x), Self::inner(gamma), Self::inner(stats), Self::inner(grad)).map(Self::from_inner)
    }

    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record_unary::<B, C>(
            x,
            |x| {
                let y = B::fused_softmax(x);
                (y.clone(), y)
            },
            B::fused_softmax_backward,
        )
    }

    fn fused_softmax_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::fused_softmax_backward(Self::inner(y), Self::inner(grad)))
    }

    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
        let (x, weight, bias) = (Self::inner(x), Self::inner(weight), Self::inner(bias));
        let y = B::fused_linear(x.clone(), weight.clone(), bias);
        match LinearBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, weight), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fused_linear_backward(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>) -> [FloatTensor<Self>; 3] {
        B::fused_linear_backward(Self::inner(x), Self::inner(weight), Self::inner(grad)).map(Self::from_inner)
    }

    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, mask_bias: Option<FloatTensor<Self>>, heads: usize) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
        let (q, k, v) = (Self::inner(q), Self::inner(k), Self::inner(v));
        let (out, weights) = B::fused_attention(q.clone(), k.clone(), v.clone(), mask_bias.map(Self::inner), heads);
        let out = match AttentionBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((q, k, v, weights.clone(), heads), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, Self::from_inner(weights))
    }

    fn fused_attention_backward(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, weights: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize) -> [FloatTensor<Self>; 3] {
        let inner = [q, k, v, weights, grad].map(Self::inner);
        let [q, k, v, weights, grad] = inner;
        B::fused_attention_backward(q, k, v, weights, grad, heads).map(Self::from_inner)
    }
}
