//! Multi-head self-attention with the Hugging Face layout (`query`, `key`, `value`).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

#[derive(Config, Debug)]
pub struct SelfAttentionConfig {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    #[config(default = true)]
    pub qkv_bias: bool,
}

/// `attention.self` in BERT, `attention.attention` in ViT.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    #[module(skip)]
    pub num_attention_heads: usize,
}

impl SelfAttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> SelfAttention<B> {
        assert!(
            self.hidden_size % self.num_attention_heads == 0,
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        let linear = || LinearConfig::new(self.hidden_size, self.hidden_size).with_bias(self.qkv_bias).init(device);
        SelfAttention { query: linear(), key: linear(), value: linear(), num_attention_heads: self.num_attention_heads }
    }
}

impl<B: Backend> SelfAttention<B> {
    /// `x` is `[batch, tokens, hidden]`. `mask_bias` is `[batch, tokens]`, 0 for tokens to attend
    /// to and a large negative number for padding.
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        let [batch, tokens, hidden] = x.dims();
        let heads = self.num_attention_heads;
        let head_dim = hidden / heads;
        let split = |t: Tensor<B, 3>| t.reshape([batch, tokens, heads, head_dim]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        let mut scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f64).sqrt());
        if let Some(bias) = mask_bias {
            scores = scores + bias.reshape([batch, 1, 1, tokens]);
        }
        let weights = softmax(scores, 3);
        weights.matmul(v).swap_dims(1, 2).reshape([batch, tokens, hidden])
    }
}

/// Turns an attention mask (1 keep, 0 pad) into the additive bias that [`SelfAttention`] takes.
pub fn mask_bias<B: Backend>(keep: Tensor<B, 2>) -> Tensor<B, 2> {
    (keep.neg() + 1.0) * -1e9
}
