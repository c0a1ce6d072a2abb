//! Multi-head self-attention with the Hugging Face layout (`query`, `key`, `value`).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use otclip_kernels::layer_ops;

use super::in_dtype_of;

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
            self.num_attention_heads > 0 && self.hidden_size % self.num_attention_heads == 0,
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        let linear = || LinearConfig::new(self.hidden_size, self.hidden_size).with_bias(self.qkv_bias).init(device);
        SelfAttention { query: linear(), key: linear(), value: linear(), num_attention_heads: self.num_attention_heads }
    }
}

/// Rotary position embeddings for the patch tokens (the prefix tokens are left as they are), in
/// the "rotate half" layout: `x·cos + [−x₂, x₁]·sin`.
#[derive(Debug, Clone)]
pub struct Rope<B: Backend> {
    /// `[patches, head_dim]`.
    pub sin: Tensor<B, 2>,
    pub cos: Tensor<B, 2>,
    pub num_prefix_tokens: usize,
}

impl<B: Backend> Rope<B> {
    /// DINOv3's rotary table as timm builds it: patch centres mapped to [−1, 1] per axis (rows
    /// first), periods `temperature^(2i / (head_dim / 2))` for `i < head_dim / 4`.
    pub fn dinov3(head_dim: usize, temperature: f64, rows: usize, cols: usize, num_prefix_tokens: usize, device: &B::Device) -> Self {
        let quarter = head_dim / 4;
        let periods: Vec<f32> = (0..quarter).map(|i| (temperature as f32).powf(2.0 * i as f32 / (head_dim / 2) as f32)).collect();
        let (mut sin, mut cos) = (Vec::with_capacity(rows * cols * head_dim), Vec::with_capacity(rows * cols * head_dim));
        for r in 0..rows {
            for c in 0..cols {
                let y = 2.0 * ((r as f32 + 0.5) / rows as f32) - 1.0;
                let x = 2.0 * ((c as f32 + 0.5) / cols as f32) - 1.0;
                let angles: Vec<f32> = [y, x]
                    .iter()
                    .flat_map(|coord| periods.iter().map(move |p| 2.0 * std::f32::consts::PI * coord / p))
                    .collect();
                for _ in 0..2 {
                    sin.extend(angles.iter().map(|a| a.sin()));
                    cos.extend(angles.iter().map(|a| a.cos()));
                }
            }
        }
        let table = |v: Vec<f32>| Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape([rows * cols, head_dim]);
        Self { sin: table(sin), cos: table(cos), num_prefix_tokens }
    }

    /// Rotates `x` `[batch, heads, tokens, head_dim]` after its prefix tokens.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, heads, tokens, head_dim] = x.dims();
        let prefix = self.num_prefix_tokens;
        let patches = x.clone().slice([0..batch, 0..heads, prefix..tokens]);
        let half = head_dim / 2;
        let rotated = Tensor::cat(
            vec![patches.clone().slice([0..batch, 0..heads, 0..tokens - prefix, half..head_dim]).neg(), patches.clone().slice([0..batch, 0..heads, 0..tokens - prefix, 0..half])],
            3,
        );
        let (cos, sin) = (in_dtype_of(self.cos.clone(), &patches), in_dtype_of(self.sin.clone(), &patches));
        let out = patches * cos.unsqueeze::<4>() + rotated * sin.unsqueeze::<4>();
        Tensor::cat(vec![x.slice([0..batch, 0..heads, 0..prefix]), out], 2)
    }
}

impl<B: Backend> SelfAttention<B> {
    /// `x` is `[batch, tokens, hidden]`. `mask_bias` is `[batch, tokens]`, 0 for tokens to attend
    /// to and a large negative number for padding.
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        self.forward_rope(x, mask_bias, None)
    }

    /// [`Self::forward`] with rotary embeddings applied to the queries and keys.
    pub fn forward_rope(&self, x: Tensor<B, 3>, mask_bias: Option<Tensor<B, 2>>, rope: Option<&Rope<B>>) -> Tensor<B, 3> {
        let [batch, tokens, hidden] = x.dims();
        let heads = self.num_attention_heads;
        let head_dim = hidden / heads;
        let (q, k, v) = (linear_tokens(&self.query, x.clone()), linear_tokens(&self.key, x.clone()), linear_tokens(&self.value, x));
        if rope.is_none() {
            if let Some(out) = layer_ops::attention(q.clone(), k.clone(), v.clone(), mask_bias.clone(), heads) {
                return out;
            }
        }
        let split = |t: Tensor<B, 3>| t.reshape([batch, tokens, heads, head_dim]).swap_dims(1, 2);
        let (mut q, mut k, v) = (split(q), split(k), split(v));
        if let Some(rope) = rope {
            q = rope.apply(q);
            k = rope.apply(k);
        }
        let mut scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f64).sqrt());
        if let Some(bias) = mask_bias {
            scores = scores + bias.reshape([batch, 1, 1, tokens]);
        }
        let weights = layer_ops::softmax(scores);
        weights.matmul(v).swap_dims(1, 2).reshape([batch, tokens, hidden])
    }
}

/// `linear` on `[batch, tokens, d_in]` as one `[batch·tokens, d_in]` matrix product. burn's
/// `Linear` on a 3-D input runs one small product per batch row, and its weight gradient sums a
/// `[batch, d_in, d_out]` tensor; flattened, forward and backward are one large GEMM each.
pub fn linear_tokens<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, tokens, d_in] = x.dims();
    let out = layer_ops::linear(x.reshape([batch * tokens, d_in]), linear.weight.val(), linear.bias.as_ref().map(|bias| bias.val()));
    let [_, d_out] = out.dims();
    out.reshape([batch, tokens, d_out])
}

/// Turns an attention mask (1 keep, 0 pad) into the additive bias that [`SelfAttention`] takes.
pub fn mask_bias<B: Backend>(keep: Tensor<B, 2>) -> Tensor<B, 2> {
    (keep.neg() + 1.0) * -1e9
}
