//! Doctored pretrained tower folders given to `otclip embed`: safetensors headers, dtypes and
//! shapes, `config.json` values, tokenizers that do not fit the model, pixel files.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{copy_dir, edit_json, refused, s, snapshot, succeeded, unchanged};
use crate::common::fixture;

/// A copy of the fixture tower `name` in a temporary folder, with a one-line texts file.
struct Tower {
    dir: tempfile::TempDir,
}

impl Tower {
    fn copy(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture(&format!("towers/{name}")), &dir.path().join("tower"));
        std::fs::write(dir.path().join("texts.txt"), "một con mèo\na dog on a sofa\n").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tower(&self) -> PathBuf {
        self.path("tower")
    }

    /// `embed` of the texts with this (text) tower; asserts the refusal and that the tower
    /// folder is unchanged and no output was written.
    fn refuse_text(&self, needles: &[&str]) -> String {
        let before = snapshot(&self.tower());
        let out = self.path("out.npy");
        let stderr = refused(&["embed", "--text-tower", s(&self.tower()), "--texts", s(&self.path("texts.txt")), "--out", s(&out)], needles);
        unchanged(&self.tower(), &before);
        assert!(!out.exists(), "a refused embed wrote {}", out.display());
        stderr
    }

    /// `embed` of 32 px pixels with this (image) tower.
    fn refuse_image(&self, needles: &[&str]) -> String {
        let pixels = self.path("pixels.npy");
        otclip::npy::write_f32(&pixels, &[1, 3, 32, 32], &vec![0.5; 3 * 32 * 32]).unwrap();
        let before = snapshot(&self.tower());
        let out = self.path("out.npy");
        let stderr = refused(&["embed", "--image-tower", s(&self.tower()), "--pixel-values", s(&pixels), "--out", s(&out)], needles);
        unchanged(&self.tower(), &before);
        assert!(!out.exists(), "a refused embed wrote {}", out.display());
        stderr
    }

    fn config(&self, edit: impl FnOnce(&mut Value)) {
        edit_json(&self.tower().join("config.json"), edit);
    }
}

/// Rewrites the header of a safetensors file through `edit`, keeping its data.
fn edit_safetensors_header(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let text = serde_json::to_vec(&Value::Object(header)).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_tensor_of_the_wrong_dtype_is_an_error_naming_the_file_and_the_tensor() {
    // F32 → I32 keeps every byte range valid: only the dtype lies (this aborted with "double free").
    let tower = Tower::copy("bert");
    let key = "encoder.layer.0.attention.self.query.weight";
    edit_safetensors_header(&tower.tower().join("model.safetensors"), |h| h[key]["dtype"] = json!("I32"));
    tower.refuse_text(&["model.safetensors", key, "I32", "expected a floating-point tensor"]);
}

#[test]
fn a_tensor_of_the_wrong_shape_is_an_error_naming_the_tensor_and_both_shapes() {
    let tower = Tower::copy("bert");
    let key = "encoder.layer.0.intermediate.dense.weight";
    edit_safetensors_header(&tower.tower().join("model.safetensors"), |h| h[key]["shape"] = json!([32, 64]));
    tower.refuse_text(&["model.safetensors", key, "[32, 64]", "[64, 32]"]);
}

#[test]
fn doctored_safetensors_headers_are_errors_naming_the_file() {
    let cases: [(&str, fn(&Path)); 5] = [
        ("truncated", |p| {
            let bytes = std::fs::read(p).unwrap();
            std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("header length beyond the file", |p| {
            let mut bytes = std::fs::read(p).unwrap();
            bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            std::fs::write(p, bytes).unwrap();
        }),
        ("offsets beyond the data", |p| {
            edit_safetensors_header(p, |h| h["embeddings.LayerNorm.bias"]["data_offsets"] = json!([0, 1u64 << 40]));
        }),
        ("a shape of 2^62 elements", |p| {
            edit_safetensors_header(p, |h| h["embeddings.LayerNorm.bias"]["shape"] = json!([1u64 << 31, 1u64 << 31]));
        }),
        ("an empty file", |p| std::fs::write(p, b"").unwrap()),
    ];
    for (label, doctor) in cases {
        let tower = Tower::copy("bert");
        doctor(&tower.tower().join("model.safetensors"));
        let stderr = tower.refuse_text(&["model.safetensors"]);
        assert!(stderr.contains("truncated") || stderr.contains("header"), "{label}: {stderr}");
    }
}

#[test]
fn impossible_text_tower_configs_are_errors_naming_the_file_and_the_key() {
    let cases: [(&str, Value, &str); 7] = [
        ("num_attention_heads", json!(0), "num_attention_heads = 0"),
        ("num_attention_heads", json!(5), "a divisor of hidden_size = 32"),
        ("hidden_size", json!(100_000_000_000u64), "hidden_size = 100000000000"),
        ("vocab_size", json!(0), "vocab_size = 0"),
        ("max_position_embeddings", json!(0), "max_position_embeddings = 0"),
        ("layer_norm_eps", json!(-1.0), "layer_norm_eps = -1"),
        ("num_hidden_layers", json!(1_000_000), "num_hidden_layers = 1000000"),
    ];
    for (key, value, needle) in cases {
        let tower = Tower::copy("bert");
        tower.config(|c| c[key] = value);
        tower.refuse_text(&["config.json", needle]);
    }
}

#[test]
fn a_padding_id_beyond_the_position_table_is_an_error() {
    // XLM-R positions start after the padding id: 41 leaves no position in a table of 42.
    let tower = Tower::copy("xlmr");
    tower.config(|c| c["pad_token_id"] = json!(41));
    tower.refuse_text(&["config.json", "pad_token_id = 41", "max_position_embeddings"]);
    let tower = Tower::copy("bert");
    tower.config(|c| c["pad_token_id"] = json!(500));
    tower.refuse_text(&["config.json", "pad_token_id = 500", "vocab_size = 120"]);
}

#[test]
fn a_tokenizer_larger_than_the_vocabulary_is_an_error_before_any_forward() {
    // The weights keep 120 rows; config.json claims 50, so the tokenizer's ids overflow it.
    let tower = Tower::copy("bert");
    tower.config(|c| c["vocab_size"] = json!(50));
    tower.refuse_text(&["tokenizer", "vocab_size = 50", "config.json"]);
}

#[test]
fn impossible_image_tower_configs_are_errors_naming_the_file_and_the_key() {
    let cases: [(&str, Value, &str); 5] = [
        ("patch_size", json!(0), "patch_size = 0"),
        ("image_size", json!(30), "image_size = 30: expected a multiple of patch_size = 8"),
        ("num_attention_heads", json!(0), "num_attention_heads = 0"),
        ("hidden_size", json!(100_000_000_000u64), "hidden_size = 100000000000"),
        ("intermediate_size", json!(0), "intermediate_size = 0"),
    ];
    for (key, value, needle) in cases {
        let tower = Tower::copy("clip_vision");
        tower.config(|c| c[key] = value);
        tower.refuse_image(&["config.json", needle]);
    }
    let tower = Tower::copy("dinov3_timm");
    tower.config(|c| c["model_args"]["num_heads"] = json!(3));
    tower.refuse_image(&["config.json", "model_args.num_heads = 3"]);
    let tower = Tower::copy("dinov3_timm");
    tower.config(|c| c["model_args"]["patch_size"] = json!(0));
    tower.refuse_image(&["config.json", "model_args.patch_size = 0"]);
}

#[test]
fn pixel_values_of_the_wrong_size_or_not_finite_are_errors_naming_the_file() {
    let tower = Tower::copy("clip_vision");
    let dir = tower.tower();
    let run = |name: &str, shape: &[usize], value: f32, needles: &[&str]| {
        let pixels = tower.path(name);
        otclip::npy::write_f32(&pixels, shape, &vec![value; shape.iter().product()]).unwrap();
        let out = tower.path("out.npy");
        let mut all = vec![name];
        all.extend(needles);
        refused(&["embed", "--image-tower", s(&dir), "--pixel-values", s(&pixels), "--out", s(&out)], &all);
        assert!(!out.exists(), "{name}: a refused embed wrote its output");
    };
    run("side30.npy", &[1, 3, 30, 30], 0.5, &["[1, 3, 30, 30]", "expected [n, 3, 32, 32]"]);
    run("side4.npy", &[1, 3, 4, 4], 0.5, &["[1, 3, 4, 4]"]);
    run("gray.npy", &[1, 1, 32, 32], 0.5, &["[1, 1, 32, 32]"]);
    run("flat.npy", &[3, 32, 32], 0.5, &["[3, 32, 32]"]);
    run("nan.npy", &[2, 3, 32, 32], f32::NAN, &["NaN", "expected finite pixel values"]);
    run("inf.npy", &[1, 3, 32, 32], f32::INFINITY, &["inf", "expected finite pixel values"]);
    // The tower's own size, and another multiple of its patch, still embed.
    for side in [32, 48] {
        let pixels = tower.path("ok.npy");
        otclip::npy::write_f32(&pixels, &[1, 3, side, side], &vec![0.1; 3 * side * side]).unwrap();
        succeeded(&["embed", "--image-tower", s(&dir), "--pixel-values", s(&pixels), "--out", s(&tower.path("ok_out.npy"))]);
    }
}

#[test]
fn a_full_disk_is_an_error_naming_the_output() {
    let tower = Tower::copy("bert");
    if Path::new("/dev/full").exists() {
        refused(&["embed", "--text-tower", s(&tower.tower()), "--texts", s(&tower.path("texts.txt")), "--out", "/dev/full"], &["cannot write /dev/full"]);
    } else {
        // No /dev/full (not Linux): a folder as the output file fails the same path.
        refused(&["embed", "--text-tower", s(&tower.tower()), "--texts", s(&tower.path("texts.txt")), "--out", s(tower.dir.path())], &["cannot write"]);
    }
}
