//! Reading a training config: the TOML file, `--set key=value` overrides, keys that moved since
//! the old shape, errors that name the file and the key, and the one resolution step.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::config::{DataSource, Teacher, TrainConfig};
use crate::data::loader::{BatchUnit, Sampler};
use crate::loss::Objective;
use crate::weights::TowerSource;

impl TrainConfig {
    /// Reads a config file and applies `key=value` overrides (dotted keys, TOML values).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Parses config text from `origin` (a file name, for messages), applies the overrides, and
    /// resolves and validates the result.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text).with_context(|| format!("config file {origin} is not valid TOML"))?;
        for assignment in overrides {
            apply_override(&mut table, assignment).with_context(|| format!("bad override `--set {assignment}`"))?;
        }
        if let Some(message) = moved_key(&table) {
            bail!("config file {origin}: {message}");
        }
        let mut config: TrainConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            match key.as_str() {
                "." | "" => anyhow!("config file {origin}: {}", inner.message()),
                key => anyhow!("config file {origin}: key `{key}`: {}", inner.message()),
            }
        })?;
        config.resolve();
        config.validate().with_context(|| format!("config file {origin}"))?;
        Ok(config)
    }

    /// Fills in what follows from other keys: the built-in data's seed and its default teacher.
    fn resolve(&mut self) {
        if let DataSource::Synthetic(synthetic) = &mut self.data.source {
            synthetic.seed = self.seed;
            if self.loss.objective().needs_teacher() && self.data.teacher.is_none() {
                self.data.teacher = Some(Teacher::Builtin);
            }
        }
    }

    /// Checks combinations that no single key's type can.
    pub fn validate(&self) -> Result<()> {
        let synthetic = matches!(self.data.source, DataSource::Synthetic(_));
        if self.loss.objective().needs_teacher() {
            match &self.data.teacher {
                Some(Teacher::Builtin) if !synthetic => bail!(
                    "data.teacher = `builtin` exists only for the synthetic dataset; write a teacher file with `otclip teacher` or train with loss.transport = \"none\""
                ),
                None => bail!("data.teacher: the transport term needs a teacher file (`otclip teacher` writes one)"),
                _ => {}
            }
        }
        if matches!(self.model.text_tower, Some(TowerSource::Timm { .. })) {
            bail!("model.text_tower = `{}`: timm holds image models only; use hf:DIR", self.model.text_tower.as_ref().expect("matched"));
        }
        if self.optim.batch_unit == BatchUnit::Images && self.data.sampler != Sampler::Grouped {
            bail!("optim.batch_unit = \"images\" counts whole images with all their captions: set data.sampler = \"grouped\"");
        }
        if let DataSource::Synthetic(synthetic) = &self.data.source {
            synthetic.validate()?;
        }
        self.tokenizer.validate()?;
        self.model.validate()?;
        self.optim.validate()?;
        self.eval.validate()?;
        self.train.validate()?;
        if self.model.image_tower.is_none() && self.model.convnet.is_none() {
            // The from-scratch image tower takes its size from these keys; its patch must divide it.
            let vision = self.model_config(self.tokenizer.vocab_size).vision;
            vision.vit().expect("the preset's tower is a ViT").validate().map_err(|e| {
                anyhow!("key `model.image_size` (else `data.synthetic.image_size`) = {}: the {:?} image tower needs {}", e.value, self.model.preset, e.expected)
            })?;
        }
        self.loss.validate()?;
        Ok(())
    }
}

/// A key of the old config shape that moved or became an `Option`, with where it went.
fn moved_key(table: &toml::Table) -> Option<String> {
    let get = |path: &str| -> Option<&toml::Value> {
        let mut parts = path.split('.');
        let mut value = table.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    };
    let is_empty_text = |path: &str| get(path).and_then(toml::Value::as_str).is_some_and(str::is_empty);
    if get("data.dataset").and_then(toml::Value::as_str) == Some("synthetic") {
        return Some("`data.dataset = \"synthetic\"` moved: the [data.synthetic] table alone now chooses the built-in data; delete `data.dataset`".into());
    }
    for key in ["data.val", "data.test", "data.teacher", "model.image_tower", "model.text_tower"] {
        if is_empty_text(key) {
            return Some(format!("`{key} = \"\"` is no longer a placeholder: leave `{key}` out"));
        }
    }
    if let Some(objective) = get("loss.objective") {
        let hint = objective.as_str().and_then(|o| o.parse::<Objective>().ok());
        let hint = hint.map(|o| format!(": here contrastive = \"{}\", transport = \"{}\"", o.contrastive.as_str(), o.transport.as_str()));
        return Some(format!("`loss.objective` moved to two keys, `loss.contrastive` (clip, siglip, none) and `loss.transport` (sigrot, uot, none){}", hint.unwrap_or_default()));
    }
    for (old, new) in [("eps", "eps"), ("tau", "tau"), ("iters", "iterations"), ("tol", "tolerance"), ("grad", "grad"), ("solver", "solver")] {
        if get(&format!("loss.{old}")).is_some() {
            let balanced = get("loss.tau").and_then(toml::Value::as_float).is_some_and(f64::is_infinite);
            let note = if old == "tau" && balanced { " (for balanced OT, leave `tau` out instead of `inf`)" } else { "" };
            return Some(format!("`loss.{old}` moved to `loss.sinkhorn.{new}`{note}"));
        }
    }
    if get("loss.sinkhorn.tau").and_then(toml::Value::as_float).is_some_and(f64::is_infinite) {
        return Some("`loss.sinkhorn.tau = inf` is no longer how balanced OT is asked for: leave `loss.sinkhorn.tau` out".into());
    }
    if get("model.image_size").and_then(toml::Value::as_integer) == Some(0) {
        return Some("`model.image_size = 0` is no longer a placeholder: leave `model.image_size` out to use the tower's own size".into());
    }
    None
}

/// The tables a config may leave out, which `--set` creates.
const OPTIONAL_TABLES: [&str; 4] = ["train", "optim.one_cycle", "model.image_head", "model.text_head"];

/// Sets `a.b.c = value` in `table`. The tables on the way must exist (or be optional ones), so
/// typos are caught. Setting `data.dataset` drops `[data.synthetic]`: the spec replaces the
/// built-in data.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| anyhow!("expected key=value"))?;
    let (key, raw) = (key.trim(), raw.trim());
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").ok_or_else(|| anyhow!("no value"))?,
        Err(_) => toml::Value::String(raw.to_string()),
    };
    if key == "data.dataset" {
        // A dataset spec replaces the built-in data, which the file may have chosen.
        if let Some(data) = table.get_mut("data").and_then(toml::Value::as_table_mut) {
            data.remove("synthetic");
        }
    }
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or_else(|| anyhow!("empty key"))?;
    let mut current = table;
    for (depth, part) in path.iter().enumerate() {
        let section = parts[..=depth].join(".");
        if OPTIONAL_TABLES.contains(&section.as_str()) && !current.contains_key(*part) {
            current.insert(part.to_string(), toml::Value::Table(toml::Table::new()));
        }
        current = current.get_mut(*part).and_then(toml::Value::as_table_mut).ok_or_else(|| anyhow!("unknown config key `{section}`"))?;
    }
    match current.get_mut(*last) {
        Some(slot) => {
            let value = match (&*slot, value) {
                (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
                (_, value) => value,
            };
            *slot = value;
        }
        // A key the file leaves to its default; `deny_unknown_fields` still refuses a misspelt one.
        None => {
            current.insert(last.to_string(), value);
        }
    }
    Ok(())
}
