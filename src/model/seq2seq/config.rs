//! The shape of a translation model (`config.json`): which architecture, its sizes and its
//! embedding ties.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The two architectures transformers calls `MarianMTModel` and `M2M100ForConditionalGeneration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seq2SeqFamily {
    Marian,
    M2M100,
}

impl Seq2SeqFamily {
    pub fn pre_norm(self) -> bool {
        self == Self::M2M100
    }
}

/// The feed-forward activation (`activation_function` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    Relu,
    /// `swish` or `silu`.
    Swish,
    /// The exact (erf) GELU, transformers' `gelu`.
    Gelu,
}

/// The shape of a translation model, from its `config.json`.
#[derive(Config, Debug)]
pub struct Seq2SeqConfig {
    /// Which architecture: where the LayerNorms sit, how positions are made.
    pub family: Seq2SeqFamily,
    /// The source (and, when shared, target) vocabulary.
    pub vocab_size: usize,
    /// The target vocabulary (Marian with separate vocabularies); `vocab_size` otherwise.
    pub decoder_vocab_size: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    /// The longest sequence the position table covers (Marian's table cannot grow).
    pub max_position_embeddings: usize,
    pub activation_function: Activation,
    /// Token embeddings are multiplied by √d_model.
    pub scale_embedding: bool,
    pub pad_token_id: usize,
    /// One embedding table for the encoder and the decoder.
    pub share_encoder_decoder_embeddings: bool,
    /// The output projection is the decoder's embedding table.
    pub tie_word_embeddings: bool,
}

impl Seq2SeqConfig {
    /// The first impossible value, as `key: problem`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, value) in [("d_model", self.d_model), ("vocab_size", self.vocab_size), ("decoder_vocab_size", self.decoder_vocab_size), ("max_position_embeddings", self.max_position_embeddings)] {
            if value == 0 {
                return Err(format!("{key}: must be positive"));
            }
        }
        for (key, heads) in [("encoder_attention_heads", self.encoder_attention_heads), ("decoder_attention_heads", self.decoder_attention_heads)] {
            if heads == 0 || self.d_model % heads != 0 {
                return Err(format!("{key}: {heads} does not divide d_model {}", self.d_model));
            }
        }
        if self.pad_token_id >= self.vocab_size.min(self.decoder_vocab_size) {
            return Err(format!("pad_token_id: {} is outside the vocabulary of {}", self.pad_token_id, self.vocab_size.min(self.decoder_vocab_size)));
        }
        if self.share_encoder_decoder_embeddings && self.vocab_size != self.decoder_vocab_size {
            return Err(format!("decoder_vocab_size: {} differs from vocab_size {} although the embeddings are shared", self.decoder_vocab_size, self.vocab_size));
        }
        Ok(())
    }

    pub fn embed_scale(&self) -> f64 {
        if self.scale_embedding {
            (self.d_model as f64).sqrt()
        } else {
            1.0
        }
    }
}
