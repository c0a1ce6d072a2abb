//! The BERT family of text towers, laid out like Hugging Face's `BertModel` / `RobertaModel`:
//! token, position and type embeddings, post-norm blocks, attention-mask padding, and CLS, mean or
//! pooler pooling. RoBERTa, XLM-R and PhoBERT differ only in their position ids, which start after
//! the padding index (`roberta_positions`). `LayerNorm` in HF keys is `layer_norm` here and
//! `attention.self` is `attention.self_attention` (the key maps are in `crate::weights`).

use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LinearConfig};
use burn::prelude::*;
use otclip_kernels::layer_ops::gelu;

use super::attention::{linear_tokens, mask_bias, SelfAttention, SelfAttentionConfig};
use super::norm::{LayerNorm, LayerNormConfig};
use super::vit::DenseOutput;
use super::{in_dtype_of, pool, Pooling};

#[derive(Config, Debug)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    #[config(default = 2)]
    pub type_vocab_size: usize,
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    #[config(default = 0.0)]
    pub hidden_dropout_prob: f64,
    #[config(default = 0)]
    pub pad_token_id: usize,
    #[config(default = "Pooling::Mean")]
    pub pooling: Pooling,
    /// RoBERTa-style position ids: `pad_token_id + 1 + i` for real tokens, `pad_token_id` for padding.
    #[config(default = false)]
    pub roberta_positions: bool,
    /// Whether the tower has BERT's `pooler` (dense + tanh on the first token).
    #[config(default = false)]
    pub add_pooling_layer: bool,
}

/// The vocabulary of `bert-base-multilingual-cased`.
pub const MULTILINGUAL_VOCAB_SIZE: usize = 119_547;

impl BertConfig {
    /// A small text tower for the built-in dataset; `vocab_size` comes from the trained tokenizer.
    pub fn tiny(vocab_size: usize) -> Self {
        Self::new(vocab_size, 96, 2, 3, 384).with_max_position_embeddings(64)
    }

    /// BERT-base (and PhoBERT-base, mBERT) sizes.
    pub fn base(vocab_size: usize) -> Self {
        Self::new(vocab_size, 768, 12, 12, 3072).with_hidden_dropout_prob(0.1)
    }

    /// `bert-base-multilingual-cased` (LowCLIP's text tower): BERT-base over a cased WordPiece
    /// vocabulary of 119,547 tokens in 104 languages, Azerbaijani and Vietnamese among them.
    pub fn multilingual_base() -> Self {
        Self::base(MULTILINGUAL_VOCAB_SIZE)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> BertModel<B> {
        // A config from a file is validated where it is read; this catches one built in code.
        if let Err(error) = self.validate() {
            panic!("BertConfig: {error}");
        }
        let d = self.hidden_size;
        let norm = || LayerNormConfig::new(d).with_epsilon(self.layer_norm_eps).init(device);
        let dropout = || DropoutConfig::new(self.hidden_dropout_prob).init();
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, d).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, d).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, d).init(device),
            layer_norm: norm(),
            dropout: dropout(),
        };
        let layer = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: SelfAttentionConfig::new(d, self.num_attention_heads).init(device),
                    output: DenseNormOutput { dense: LinearConfig::new(d, d).init(device), layer_norm: norm() },
                },
                intermediate: DenseOutput { dense: LinearConfig::new(d, self.intermediate_size).init(device) },
                output: DenseNormOutput {
                    dense: LinearConfig::new(self.intermediate_size, d).init(device),
                    layer_norm: norm(),
                },
                dropout: dropout(),
            })
            .collect();
        let pooler = self.add_pooling_layer.then(|| BertPooler { dense: LinearConfig::new(d, d).init(device) });
        BertModel {
            embeddings,
            encoder: BertEncoder { layer },
            pooler,
            pooling: self.pooling,
            roberta_positions: self.roberta_positions,
            pad_token_id: self.pad_token_id,
        }
    }
}

/// The tokens of a batch of captions, padded to one length.
#[derive(Debug, Clone)]
pub struct TextBatch<B: Backend> {
    /// `[batch, tokens]` token ids.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch, tokens]`, 1 for real tokens and 0 for padding (the HF convention).
    pub attention_mask: Tensor<B, 2, Int>,
}

#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    pub word_embeddings: Embedding<B>,
    pub position_embeddings: Embedding<B>,
    pub token_type_embeddings: Embedding<B>,
    pub layer_norm: LayerNorm<B>,
    pub dropout: Dropout,
}

/// `dense` followed by a residual `LayerNorm` (HF's `BertSelfOutput` and `BertOutput`).
#[derive(Module, Debug)]
pub struct DenseNormOutput<B: Backend> {
    pub dense: burn::nn::Linear<B>,
    pub layer_norm: LayerNorm<B>,
}

#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    pub self_attention: SelfAttention<B>,
    pub output: DenseNormOutput<B>,
}

#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    pub attention: BertAttention<B>,
    pub intermediate: DenseOutput<B>,
    pub output: DenseNormOutput<B>,
    pub dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    pub layer: Vec<BertLayer<B>>,
}

/// BERT's pooler: `tanh(dense(hidden[:, 0]))`.
#[derive(Module, Debug)]
pub struct BertPooler<B: Backend> {
    pub dense: burn::nn::Linear<B>,
}

#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    pub embeddings: BertEmbeddings<B>,
    pub encoder: BertEncoder<B>,
    pub pooler: Option<BertPooler<B>>,
    #[module(skip)]
    pub pooling: Pooling,
    #[module(skip)]
    pub roberta_positions: bool,
    #[module(skip)]
    pub pad_token_id: usize,
}

impl<B: Backend> BertEmbeddings<B> {
    /// `positions` and `types` are `[batch, tokens]` ids (see [`BertModel::position_ids`]).
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>, positions: Tensor<B, 2, Int>, types: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let x = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(types);
        self.dropout.forward(self.layer_norm.forward(x))
    }
}

impl<B: Backend> BertLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        let attended = self.attention.self_attention.forward(x.clone(), bias);
        let out = &self.attention.output;
        let x = out.layer_norm.forward(x + self.dropout.forward(linear_tokens(&out.dense, attended)));
        let hidden = gelu(linear_tokens(&self.intermediate.dense, x.clone()));
        let out = &self.output;
        out.layer_norm.forward(x + self.dropout.forward(linear_tokens(&out.dense, hidden)))
    }
}

impl<B: Backend> BertModel<B> {
    /// The position ids HF computes: `0..n` for BERT; for RoBERTa `pad + cumsum(id != pad)` on real
    /// tokens and `pad` on padding.
    pub fn position_ids(&self, input_ids: &Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
        let [batch, tokens] = input_ids.dims();
        let device = input_ids.device();
        let max_positions = self.embeddings.position_embeddings.weight.dims()[0];
        let needed = if self.roberta_positions { tokens + self.pad_token_id + 1 } else { tokens };
        assert!(needed <= max_positions, "{tokens} tokens exceed max_position_embeddings {max_positions}");
        if self.roberta_positions {
            let real = input_ids.clone().not_equal_elem(self.pad_token_id as i64).int();
            (real.clone().cumsum(1) * real).add_scalar(self.pad_token_id as i64)
        } else {
            Tensor::<B, 1, Int>::arange(0..tokens as i64, &device).reshape([1, tokens]).expand([batch as i64, tokens as i64])
        }
    }

    /// The last hidden state `[batch, tokens, hidden]`, with all token types 0.
    pub fn forward(&self, batch: &TextBatch<B>) -> Tensor<B, 3> {
        let types = Tensor::<B, 2, Int>::zeros(batch.input_ids.dims(), &batch.input_ids.device());
        self.forward_with_types(batch, types)
    }

    /// The last hidden state for explicit token type ids `[batch, tokens]` (sentence pairs in BERT).
    pub fn forward_with_types(&self, batch: &TextBatch<B>, token_type_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let positions = self.position_ids(&batch.input_ids);
        let mut x = self.embeddings.forward(batch.input_ids.clone(), positions, token_type_ids);
        let bias = in_dtype_of(mask_bias(batch.attention_mask.clone().float()), &x);
        for layer in &self.encoder.layer {
            x = layer.forward(x, Some(bias.clone()));
        }
        x
    }

    /// One vector per caption `[batch, hidden]`, pooled as configured (mean skips padding).
    pub fn embed(&self, batch: &TextBatch<B>) -> Tensor<B, 2> {
        let hidden = self.forward(batch);
        self.pool(hidden, batch)
    }

    /// Pools a last hidden state as configured; `pooler` needs the pooler layer, which
    /// [`BertConfig::validate`] checks.
    pub fn pool(&self, hidden: Tensor<B, 3>, batch: &TextBatch<B>) -> Tensor<B, 2> {
        match (self.pooling, &self.pooler) {
            (Pooling::Pooler, Some(pooler)) => pooler.dense.forward(pool(Pooling::Cls, hidden, None)).tanh(),
            (Pooling::Pooler, None) => unreachable!("BertConfig::validate refuses pooler pooling without a pooler layer"),
            (pooling, _) => pool(pooling, hidden, Some(batch.attention_mask.clone().float())),
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.embeddings.layer_norm.gamma.dims()[0]
    }
}
