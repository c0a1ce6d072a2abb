//! Range checks of the tower configs, run before a model is built: a config read from a file
//! (`config.json`, a run's `model.json`) must not make `init` panic or allocate terabytes.
//! Each error names the config key (the Hugging Face name, which the fields follow), its value
//! and what was expected; the caller adds the file.

use super::bert::BertConfig;
use super::dual::DualEncoderConfig;
use super::vit::VitConfig;

// ANCHOR: limits
/// The widest hidden, intermediate or projection size accepted (ViT-22B is 6144 wide).
pub const MAX_WIDTH: usize = 1 << 16;
/// The most layers accepted.
pub const MAX_LAYERS: usize = 1024;
/// The largest vocabulary accepted (XLM-R has 250,002 tokens).
pub const MAX_VOCAB: usize = 1 << 22;
/// The most positions, and the largest image side in pixels.
pub const MAX_POSITIONS: usize = 1 << 16;
/// The most parameters of one tower: 2³¹, 8 GiB in f32 (ViT-bigG has 1.8 billion).
pub const MAX_TOWER_PARAMETERS: u128 = 1 << 31;
// ANCHOR_END: limits

/// A config value out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} = {value}: expected {expected}")]
pub struct ConfigValueError {
    /// The key, as Hugging Face's `config.json` spells it (`num_attention_heads`).
    pub key: String,
    pub value: String,
    pub expected: String,
}

type Checked = Result<(), ConfigValueError>;

fn fail(key: &'static str, value: impl ToString, expected: impl ToString) -> Checked {
    Err(ConfigValueError { key: key.to_string(), value: value.to_string(), expected: expected.to_string() })
}

fn size(key: &'static str, value: usize, min: usize, max: usize) -> Checked {
    if value < min || value > max {
        return fail(key, value, format!("a size from {min} to {max}"));
    }
    Ok(())
}

fn norm_eps(value: f64) -> Checked {
    if !(value > 0.0 && value.is_finite() && value < 1.0) {
        return fail("layer_norm_eps", value, "a positive epsilon below 1");
    }
    Ok(())
}

/// A dropout probability: in [0, 1).
pub fn dropout(key: &'static str, value: f64) -> Checked {
    if !(0.0..1.0).contains(&value) {
        return fail(key, value, "a dropout probability in [0, 1)");
    }
    Ok(())
}

fn heads(hidden_size: usize, num_attention_heads: usize) -> Checked {
    size("num_attention_heads", num_attention_heads, 1, hidden_size)?;
    if hidden_size % num_attention_heads != 0 {
        return fail("num_attention_heads", num_attention_heads, format!("a divisor of hidden_size = {hidden_size}"));
    }
    Ok(())
}

fn parameters(key: &'static str, count: u128) -> Checked {
    if count > MAX_TOWER_PARAMETERS {
        return fail(key, format!("{count} parameters"), format!("at most {MAX_TOWER_PARAMETERS} parameters (8 GiB in f32)"));
    }
    Ok(())
}

/// Weights of `layers` transformer blocks of width `d` and MLP width `mlp`.
fn block_parameters(layers: usize, d: usize, mlp: usize) -> u128 {
    let (layers, d, mlp) = (layers as u128, d as u128, mlp as u128);
    layers * (4 * d * d + 2 * d * mlp + 9 * d + mlp)
}

impl VitConfig {
    /// Checks every size before [`VitConfig::init`] uses it.
    pub fn validate(&self) -> Checked {
        size("image_size", self.image_size, 1, MAX_POSITIONS)?;
        size("patch_size", self.patch_size, 1, self.image_size)?;
        if self.image_size % self.patch_size != 0 {
            return fail("image_size", self.image_size, format!("a multiple of patch_size = {}", self.patch_size));
        }
        size("num_channels", self.num_channels, 1, 64)?;
        size("hidden_size", self.hidden_size, 1, MAX_WIDTH)?;
        size("num_hidden_layers", self.num_hidden_layers, 0, MAX_LAYERS)?;
        heads(self.hidden_size, self.num_attention_heads)?;
        size("intermediate_size", self.intermediate_size, 1, MAX_WIDTH * 4)?;
        size("num_register_tokens", self.num_register_tokens, 0, MAX_POSITIONS)?;
        norm_eps(self.layer_norm_eps)?;
        dropout("hidden_dropout_prob", self.hidden_dropout_prob)?;
        if let Some(projection) = self.projection_dim {
            size("projection_dim", projection, 1, MAX_WIDTH)?;
        }
        if let Some(temperature) = self.rope_temperature {
            if !(temperature > 0.0 && temperature.is_finite()) {
                return fail("rope_temperature", temperature, "a positive period base");
            }
            let head_dim = self.hidden_size / self.num_attention_heads;
            if head_dim % 4 != 0 {
                return fail("num_attention_heads", self.num_attention_heads, format!("heads of a width divisible by 4 for rotary positions (hidden_size = {})", self.hidden_size));
            }
        }
        let d = self.hidden_size as u128;
        let patch = (self.num_channels * self.patch_size * self.patch_size) as u128;
        let tokens = (self.num_patches() + 1 + self.num_register_tokens) as u128;
        parameters("hidden_size", block_parameters(self.num_hidden_layers, self.hidden_size, self.intermediate_size) + d * (patch + tokens + 4))
    }
}

impl BertConfig {
    /// Checks every size before [`BertConfig::init`] uses it, and that the padding id has a
    /// row in the embedding tables.
    pub fn validate(&self) -> Checked {
        size("vocab_size", self.vocab_size, 1, MAX_VOCAB)?;
        size("hidden_size", self.hidden_size, 1, MAX_WIDTH)?;
        size("num_hidden_layers", self.num_hidden_layers, 0, MAX_LAYERS)?;
        heads(self.hidden_size, self.num_attention_heads)?;
        size("intermediate_size", self.intermediate_size, 1, MAX_WIDTH * 4)?;
        size("max_position_embeddings", self.max_position_embeddings, 1, MAX_POSITIONS)?;
        size("type_vocab_size", self.type_vocab_size, 1, 1024)?;
        norm_eps(self.layer_norm_eps)?;
        dropout("hidden_dropout_prob", self.hidden_dropout_prob)?;
        if self.pooling == super::Pooling::Pooler && !self.add_pooling_layer {
            return fail("pooling", "pooler", "cls or mean: this text tower has no pooler layer (add_pooling_layer = false)");
        }
        if self.pad_token_id >= self.vocab_size {
            return fail("pad_token_id", self.pad_token_id, format!("an id below vocab_size = {}", self.vocab_size));
        }
        if self.roberta_positions && self.pad_token_id + 1 >= self.max_position_embeddings {
            return fail(
                "pad_token_id",
                self.pad_token_id,
                format!("an id below max_position_embeddings − 1 = {} (RoBERTa positions start after the padding id)", self.max_position_embeddings - 1),
            );
        }
        let embeddings = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) as u128 * self.hidden_size as u128;
        parameters("vocab_size", embeddings + block_parameters(self.num_hidden_layers, self.hidden_size, self.intermediate_size))
    }

    /// The most tokens a caption may have: the position table less RoBERTa's offset.
    pub fn max_tokens(&self) -> usize {
        let offset = if self.roberta_positions { self.pad_token_id + 1 } else { 0 };
        self.max_position_embeddings.saturating_sub(offset)
    }
}

impl ConfigValueError {
    /// The same error with `prefix` before the key (`vision_config.`, `model_args.`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.key = format!("{prefix}{}", self.key);
        self
    }
}

impl DualEncoderConfig {
    /// Checks both towers and the projection width; a tower's key is prefixed by its field
    /// (`vision.`, `text.`), as in a run's `model.json`.
    pub fn validate_towers(&self) -> Checked {
        self.vision.validate().map_err(|e| e.prefixed("vision."))?;
        self.text.validate().map_err(|e| e.prefixed("text."))?;
        size("projection_dim", self.projection_dim, 1, MAX_WIDTH)
    }
}
