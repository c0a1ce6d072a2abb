//! The layers of a Marian or M2M100 encoder–decoder, named after the checkpoint keys
//! (`encoder.layers.0.self_attn.q_proj`, `fc1`, `final_layer_norm`, …), and the key–value cache.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use otclip_kernels::layer_ops;

use super::config::{Activation, Seq2SeqConfig};
use crate::model::attention::linear_tokens;
use crate::model::norm::{LayerNorm, LayerNormConfig};

/// Multi-head attention with BART's projections (`q_proj`, `k_proj`, `v_proj`, `out_proj`).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub out_proj: Linear<B>,
    #[module(skip)]
    pub heads: usize,
}

impl<B: Backend> Attention<B> {
    fn new(d_model: usize, heads: usize, device: &B::Device) -> Self {
        let linear = || LinearConfig::new(d_model, d_model).init(device);
        Self { q_proj: linear(), k_proj: linear(), v_proj: linear(), out_proj: linear(), heads }
    }

    /// `t` `[batch, tokens, d]` split into heads: `[batch, heads, tokens, head_dim]`.
    fn split_heads(&self, t: Tensor<B, 3>) -> Tensor<B, 4> {
        let [batch, tokens, d] = t.dims();
        t.reshape([batch, tokens, self.heads, d / self.heads]).swap_dims(1, 2)
    }

    /// Keys and values of `x` for later queries.
    pub fn keys_values(&self, x: Tensor<B, 3>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        (self.split_heads(linear_tokens(&self.k_proj, x.clone())), self.split_heads(linear_tokens(&self.v_proj, x)))
    }

    /// Attention of `x`'s queries over `keys`/`values`; `bias` broadcasts to `[batch, heads, queries, keys]`.
    pub fn attend(&self, x: Tensor<B, 3>, keys: Tensor<B, 4>, values: Tensor<B, 4>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        self.attend_heads(self.split_heads(linear_tokens(&self.q_proj, x)), keys, values, bias)
    }

    /// Attention of queries already split into heads; the output projected back to `d`.
    fn attend_heads(&self, queries: Tensor<B, 4>, keys: Tensor<B, 4>, values: Tensor<B, 4>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let [batch, heads, tokens, head_dim] = queries.dims();
        let mut scores = queries.matmul(keys.swap_dims(2, 3)).mul_scalar((head_dim as f64).powf(-0.5));
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let out = layer_ops::softmax(scores).matmul(values).swap_dims(1, 2).reshape([batch, tokens, heads * head_dim]);
        linear_tokens(&self.out_proj, out)
    }

    /// Self-attention over a whole sequence; `keep_bias` `[batch, tokens]` is 0 for tokens and
    /// a large negative number for padding.
    pub fn self_attend(&self, x: Tensor<B, 3>, keep_bias: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, tokens, _] = x.dims();
        let (q, k, v) = (linear_tokens(&self.q_proj, x.clone()), linear_tokens(&self.k_proj, x.clone()), linear_tokens(&self.v_proj, x));
        if let Some(out) = layer_ops::attention(q.clone(), k.clone(), v.clone(), Some(keep_bias.clone()), self.heads) {
            return linear_tokens(&self.out_proj, out);
        }
        let bias = keep_bias.reshape([batch, 1, 1, tokens]);
        self.attend_heads(self.split_heads(q), self.split_heads(k), self.split_heads(v), Some(bias))
    }
}

/// The feed-forward block: `fc2(activation(fc1(x)))`.
fn feed_forward<B: Backend>(fc1: &Linear<B>, fc2: &Linear<B>, activation: Activation, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let h = linear_tokens(fc1, x);
    let h = match activation {
        Activation::Relu => burn::tensor::activation::relu(h),
        Activation::Swish => burn::tensor::activation::silu(h),
        Activation::Gelu => layer_ops::gelu(h),
    };
    linear_tokens(fc2, h)
}

/// One encoder layer: self-attention and feed-forward, each with a residual and a LayerNorm
/// after it (Marian) or before it (M2M100).
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    pub self_attn: Attention<B>,
    pub self_attn_layer_norm: LayerNorm<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub final_layer_norm: LayerNorm<B>,
    #[module(skip)]
    pub pre_norm: bool,
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> EncoderLayer<B> {
    pub fn new(config: &Seq2SeqConfig, device: &B::Device) -> Self {
        let d = config.d_model;
        Self {
            self_attn: Attention::new(d, config.encoder_attention_heads, device),
            self_attn_layer_norm: LayerNormConfig::new(d).init(device),
            fc1: LinearConfig::new(d, config.encoder_ffn_dim).init(device),
            fc2: LinearConfig::new(config.encoder_ffn_dim, d).init(device),
            final_layer_norm: LayerNormConfig::new(d).init(device),
            pre_norm: config.family.pre_norm(),
            activation: config.activation_function,
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>, keep_bias: Tensor<B, 2>) -> Tensor<B, 3> {
        let ffn = |h: Tensor<B, 3>| feed_forward(&self.fc1, &self.fc2, self.activation, h);
        if self.pre_norm {
            let x = x.clone() + self.self_attn.self_attend(self.self_attn_layer_norm.forward(x), keep_bias);
            x.clone() + ffn(self.final_layer_norm.forward(x))
        } else {
            let x = self.self_attn_layer_norm.forward(x.clone() + self.self_attn.self_attend(x, keep_bias));
            self.final_layer_norm.forward(x.clone() + ffn(x))
        }
    }
}

/// A decoder layer's cached keys and values: its own past tokens and the encoder output.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    pub self_keys: Option<Tensor<B, 4>>,
    pub self_values: Option<Tensor<B, 4>>,
    pub cross_keys: Tensor<B, 4>,
    pub cross_values: Tensor<B, 4>,
}

impl<B: Backend> LayerCache<B> {
    /// Keeps the rows `rows` (beam reordering, finished sentences dropped).
    pub fn select(self, rows: Tensor<B, 1, Int>) -> Self {
        let pick = |t: Tensor<B, 4>| t.select(0, rows.clone());
        Self {
            self_keys: self.self_keys.map(pick),
            self_values: self.self_values.map(pick),
            cross_keys: pick(self.cross_keys),
            cross_values: pick(self.cross_values),
        }
    }
}

/// One decoder layer: causal self-attention, attention over the encoder output, feed-forward.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub self_attn: Attention<B>,
    pub self_attn_layer_norm: LayerNorm<B>,
    pub encoder_attn: Attention<B>,
    pub encoder_attn_layer_norm: LayerNorm<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub final_layer_norm: LayerNorm<B>,
    #[module(skip)]
    pub pre_norm: bool,
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> DecoderLayer<B> {
    pub fn new(config: &Seq2SeqConfig, device: &B::Device) -> Self {
        let d = config.d_model;
        Self {
            self_attn: Attention::new(d, config.decoder_attention_heads, device),
            self_attn_layer_norm: LayerNormConfig::new(d).init(device),
            encoder_attn: Attention::new(d, config.decoder_attention_heads, device),
            encoder_attn_layer_norm: LayerNormConfig::new(d).init(device),
            fc1: LinearConfig::new(d, config.decoder_ffn_dim).init(device),
            fc2: LinearConfig::new(config.decoder_ffn_dim, d).init(device),
            final_layer_norm: LayerNormConfig::new(d).init(device),
            pre_norm: config.family.pre_norm(),
            activation: config.activation_function,
        }
    }

    /// The cache of a new decoding: keys and values of the encoder output, no past tokens.
    pub fn start_cache(&self, encoder_out: Tensor<B, 3>) -> LayerCache<B> {
        let (cross_keys, cross_values) = self.encoder_attn.keys_values(encoder_out);
        LayerCache { self_keys: None, self_values: None, cross_keys, cross_values }
    }

    /// `x` `[rows, new, d]` are the next tokens after those in `cache`; `causal` masks later
    /// tokens among the new ones, `cross_bias` `[rows, 1, 1, source]` the source padding.
    pub fn forward(&self, x: Tensor<B, 3>, cache: &mut LayerCache<B>, causal: Option<Tensor<B, 4>>, cross_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let self_block = |h: Tensor<B, 3>, cache: &mut LayerCache<B>| {
            let (keys, values) = self.self_attn.keys_values(h.clone());
            let keys = match cache.self_keys.take() {
                Some(past) => Tensor::cat(vec![past, keys], 2),
                None => keys,
            };
            let values = match cache.self_values.take() {
                Some(past) => Tensor::cat(vec![past, values], 2),
                None => values,
            };
            cache.self_keys = Some(keys.clone());
            cache.self_values = Some(values.clone());
            self.self_attn.attend(h, keys, values, causal.clone())
        };
        let cross_block = |h: Tensor<B, 3>, cache: &LayerCache<B>| self.encoder_attn.attend(h, cache.cross_keys.clone(), cache.cross_values.clone(), Some(cross_bias.clone()));
        let ffn = |h: Tensor<B, 3>| feed_forward(&self.fc1, &self.fc2, self.activation, h);
        if self.pre_norm {
            let x = x.clone() + self_block(self.self_attn_layer_norm.forward(x), cache);
            let x = x.clone() + cross_block(self.encoder_attn_layer_norm.forward(x), cache);
            x.clone() + ffn(self.final_layer_norm.forward(x))
        } else {
            let x = self.self_attn_layer_norm.forward(x.clone() + self_block(x, cache));
            let x = self.encoder_attn_layer_norm.forward(x.clone() + cross_block(x, cache));
            self.final_layer_norm.forward(x.clone() + ffn(x))
        }
    }
}
