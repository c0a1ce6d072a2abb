//! Fuzzing the other parsers of untrusted input with proptest, as `dataset_fuzz` does the
//! annotation readers: safetensors headers, `.npy` files, tower `config.json` files, training
//! configs and `--set` values. Whatever the bytes, each returns a value or an error, and never
//! panics; what it accepts is in range.

use std::path::Path;

use otclip::train::TrainConfig;
use otclip::SYNTHETIC_VI_CONFIG;
use proptest::prelude::*;

use crate::common::mutate;

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((0usize..600, 0u8..3, prop::sample::select(b"{}[]\":,0123456789-.eEFIU \xff\x00".to_vec())), 1..6)
}

/// A small valid safetensors file: two F32 tensors.
fn safetensors_sample() -> Vec<u8> {
    let header = r#"{"__metadata__":{"format":"pt"},"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"a.bias":{"dtype":"F32","shape":[3],"data_offsets":[24,36]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; 36]);
    bytes
}

/// A small valid `.npy` file: a 2 × 3 f64 matrix.
fn npy_sample(dir: &Path) -> Vec<u8> {
    let path = dir.join("sample.npy");
    otclip::npy::write_f64(&path, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    std::fs::read(path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn safetensors_headers_never_panic(edits in edits()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, mutate(&safetensors_sample(), &edits)).unwrap();
        if let Ok(tensors) = otclip::weights::header::check_safetensors(&path) {
            // What the check accepts, burn-store reads (a panic there fails the test).
            let read = otclip::weights::load::read_tensors(&path);
            if let Ok(read) = read {
                prop_assert_eq!(read.len(), tensors.len());
            }
        }
    }

    #[test]
    fn npy_files_never_panic(edits in edits()) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = mutate(&npy_sample(dir.path()), &edits);
        let path = dir.path().join("fuzzed.npy");
        std::fs::write(&path, bytes).unwrap();
        if let Ok(array) = otclip::npy::read(&path) {
            prop_assert_eq!(array.shape.iter().product::<usize>(), array.data.len());
        }
    }

    #[test]
    fn tower_configs_never_panic(edits in edits(), tower in prop::sample::select(vec!["bert", "xlmr", "clip_vision", "dinov2", "dinov3_timm"])) {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read(crate::common::fixture(&format!("towers/{tower}/config.json"))).unwrap();
        std::fs::write(dir.path().join("config.json"), mutate(&text, &edits)).unwrap();
        let source = otclip::weights::TowerSource::Hf(dir.path().to_path_buf());
        if tower == "bert" || tower == "xlmr" {
            if let Ok(config) = otclip::weights::config::text_config(dir.path()) {
                prop_assert!(config.validate().is_ok());
            }
        } else if let Ok(config) = otclip::weights::config::image_config(&source) {
            prop_assert!(config.vit.validate().is_ok());
        }
    }

    #[test]
    fn training_configs_never_panic(edits in edits()) {
        let text = mutate(SYNTHETIC_VI_CONFIG.as_bytes(), &edits);
        let _ = TrainConfig::parse(&String::from_utf8_lossy(&text), "fuzzed.toml", &[]);
    }

    #[test]
    fn set_values_never_panic(
        key in prop::sample::select(vec![
            "seed", "data.synthetic.train_images", "data.synthetic.image_size", "data.synthetic.hard_negative_rate",
            "tokenizer.vocab_size", "tokenizer.max_length", "model.dropout", "model.projection_dim", "model.image_size",
            "optim.lr", "optim.epochs", "optim.batch_size", "optim.beta_2", "optim.eps", "eval.batch_size",
            "loss.sinkhorn.eps", "loss.sinkhorn.iterations", "loss.lambda", "train.keep_best", "data.dataset", "model.nope",
            "model.image_head.dropout", "model.text_head.bias", "model.precision", "optim.batch_unit",
        ]),
        value in prop::sample::select(vec![
            "0", "-1", "1", "2", "1.5", "-0.5", "nan", "inf", "-inf", "1e300", "1e-300", "18446744073709551615",
            "99999999999999999999", "\"x\"", "[]", "{}", "true", "", "=", "synthetic", "csv:/nonexistent",
        ]),
    ) {
        if let Ok(config) = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &[format!("{key}={value}")]) {
            // What parses is in range: the model it describes can be built.
            prop_assert!(config.validate().is_ok());
            let model = config.model_config(config.tokenizer.vocab_size);
            prop_assert!(model.validate_towers().is_ok() && model.validate().is_ok(), "{key}={value}");
        }
    }
}
