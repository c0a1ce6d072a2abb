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
        match &self.vision {
            super::VisionConfig::Vit(vision) => vision.validate().map_err(|e| e.prefixed("vision."))?,
            super::VisionConfig::ConvNet(convnet) => convnet.validate().map_err(|e| e.prefixed("vision.convnet."))?,
        }
        self.text.validate().map_err(|e| e.prefixed("text."))?;
        size("projection_dim", self.projection_dim, 1, MAX_WIDTH)
    }
}

impl super::convnet::ConvNetConfig {
    /// Checks every size before [`super::convnet::ConvNetConfig::init`] uses it.
    pub fn validate(&self) -> Checked {
        use super::convnet::ConvArch;
        size("image_size", self.image_size, 16, MAX_POSITIONS)?;
        let batch_norm = |eps: f64, momentum: f64| -> Checked {
            if !(eps > 0.0 && eps.is_finite() && eps < 1.0) {
                return fail("bn_eps", eps, "a positive epsilon below 1");
            }
            if !(0.0..=1.0).contains(&momentum) {
                return fail("bn_momentum", momentum, "a momentum in [0, 1]");
            }
            Ok(())
        };
        match &self.arch {
            ConvArch::ResNet(c) => {
                size("width", c.width, 1, MAX_WIDTH / 32)?;
                size("groups", c.groups, 1, MAX_WIDTH)?;
                size("width_per_group", c.width_per_group, 1, MAX_WIDTH)?;
                for &blocks in &c.layers {
                    size("layers", blocks, 1, MAX_LAYERS)?;
                }
                let inner = c.width * c.width_per_group / 64 * c.groups;
                if inner == 0 || inner > MAX_WIDTH {
                    return fail("width_per_group", c.width_per_group, format!("a bottleneck width from 1 to {MAX_WIDTH} (width · width_per_group / 64 · groups)"));
                }
                batch_norm(c.bn_eps, c.bn_momentum)
            }
            ConvArch::MbConv(c) => {
                size("stem", c.stem, 1, MAX_WIDTH)?;
                size("head", c.head, 1, MAX_WIDTH)?;
                size("stages", c.stages.len(), 1, MAX_LAYERS)?;
                let mut input = c.stem;
                for stage in &c.stages {
                    size("stages.channels", stage.channels, 1, MAX_WIDTH)?;
                    size("stages.repeats", stage.repeats, 1, MAX_LAYERS)?;
                    size("stages.expand", stage.expand, 1, 16)?;
                    size("stages.stride", stage.stride, 1, 2)?;
                    if stage.kernel % 2 == 0 || !(1..=15).contains(&stage.kernel) {
                        return fail("stages.kernel", stage.kernel, "an odd kernel side from 1 to 15");
                    }
                    size("stages.expand", input * stage.expand, 1, MAX_WIDTH)?;
                    input = stage.channels;
                }
                batch_norm(c.bn_eps, c.bn_momentum)
            }
            ConvArch::Swin(c) => {
                size("embed_dim", c.embed_dim, 1, MAX_WIDTH >> c.depths.len().min(16))?;
                size("depths", c.depths.len(), 1, 8)?;
                size("window_size", c.window_size, 1, 64)?;
                size("patch_size", c.patch_size, 1, 64)?;
                if c.num_heads.len() != c.depths.len() {
                    return fail("num_heads", format!("{:?}", c.num_heads), format!("one head count per stage ({})", c.depths.len()));
                }
                for (stage, (&depth, &heads)) in c.depths.iter().zip(&c.num_heads).enumerate() {
                    size("depths", depth, 1, MAX_LAYERS)?;
                    if heads == 0 || (c.embed_dim << stage) % heads != 0 {
                        return fail("num_heads", heads, format!("a divisor of stage {stage}'s width {}", c.embed_dim << stage));
                    }
                }
                if !(c.mlp_ratio > 0.0 && c.mlp_ratio <= 16.0) {
                    return fail("mlp_ratio", c.mlp_ratio, "a ratio in (0, 16]");
                }
                norm_eps(c.norm_eps)
            }
        }
    }
}
