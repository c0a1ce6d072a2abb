//! Marian and M2M100 translation models against transformers 5.23 on tiny random models with
//! real SentencePiece vocabularies (`tools/gen_translation_fixtures.py`): encoder output and
//! first-step logits, and the token ids of `generate` (greedy, beam 4, length penalties, early
//! stopping, no-repeat n-grams, batched and alone), with and without the key–value cache.

use burn::backend::NdArray;
use otclip::model::seq2seq::generate::generate;
use otclip::model::seq2seq::{EarlyStopping, GenerationConfig, Seq2SeqModel};
use otclip::weights::{generation_config, load_seq2seq};
use serde_json::Value;

use crate::common::{fixture, max_rel_diff, read_json};

type B = NdArray<f32>;

pub const MODELS: [&str; 2] = ["marian", "m2m100"];

fn reference() -> Value {
    read_json("translation/reference.json")
}

pub fn ids(value: &Value) -> Vec<u32> {
    value.as_array().expect("an id list").iter().map(|v| v.as_u64().expect("an id") as u32).collect()
}

pub fn floats(value: &Value) -> Vec<f64> {
    value.as_array().expect("a float list").iter().map(|v| v.as_f64().expect("a float")).collect()
}

/// The source ids transformers' tokenizer gave sentence `index` (in the model's source language).
pub fn source_ids(section: &Value, index: usize) -> Vec<u32> {
    let text = section["sentences"][index].as_str().unwrap();
    let src_lang = section.get("src_lang");
    section["tokenizer"]["source"]
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["text"].as_str() == Some(text) && case.get("src_lang") == src_lang)
        .map(|case| ids(&case["ids"]))
        .unwrap_or_else(|| panic!("no tokenizer case for sentence {index}: {text:?}"))
}

fn load(name: &str) -> (Seq2SeqModel<B>, GenerationConfig) {
    let dir = fixture(&format!("translation/{name}"));
    let (model, report) = load_seq2seq::<B>(&dir, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{name}: {report}");
    (model, generation_config(&dir).unwrap())
}

/// `generate`'s keyword arguments applied to the folder's generation config.
pub fn with_kwargs(mut config: GenerationConfig, kwargs: &Value) -> GenerationConfig {
    for (key, value) in kwargs.as_object().unwrap() {
        match key.as_str() {
            "num_beams" => config.num_beams = value.as_u64().unwrap() as usize,
            "max_new_tokens" => config.max_new_tokens = Some(value.as_u64().unwrap() as usize),
            "length_penalty" => config.length_penalty = value.as_f64().unwrap() as f32,
            "no_repeat_ngram_size" => config.no_repeat_ngram_size = value.as_u64().unwrap() as usize,
            "forced_bos_token_id" => config.forced_bos_token_id = Some(value.as_u64().unwrap() as u32),
            "early_stopping" => {
                config.early_stopping = match value {
                    Value::Bool(false) => EarlyStopping::Heuristic,
                    Value::Bool(true) => EarlyStopping::Done,
                    _ => EarlyStopping::Never,
                }
            }
            "do_sample" => assert_eq!(value, &Value::Bool(false)),
            other => panic!("kwarg {other} is not handled here"),
        }
    }
    config
}

/// Ours equals transformers' row up to our length, and the row is padding after it.
fn same_row(ours: &[u32], theirs: &[u32], fill: u32) -> bool {
    ours.len() <= theirs.len() && theirs[..ours.len()] == *ours && theirs[ours.len()..].iter().all(|&t| t == fill)
}

#[test]
fn encoder_output_and_first_step_logits_match_transformers() {
    let reference = reference();
    for name in MODELS {
        let section = &reference[name];
        let (model, config) = load(name);
        let mut worst = (0f64, 0f64);
        for case in section["encoder"].as_array().unwrap() {
            let index = case["sentence"].as_u64().unwrap() as usize;
            let encoded = model.encode(&[source_ids(section, index)]).unwrap();
            let ours: Vec<f64> = encoded.hidden.clone().into_data().convert::<f64>().into_vec().unwrap();
            let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            assert_eq!(encoded.hidden.dims()[1..], shape[..], "{name} sentence {index}: encoder shape");
            let diff = max_rel_diff(&ours, &floats(&case["hidden"]));
            assert!(diff <= 1e-4, "{name} sentence {index}: encoder output differs by {diff:e}");
            worst.0 = worst.0.max(diff);
            let logits_case = section["first_logits"].as_array().unwrap().iter().find(|c| c["sentence"] == case["sentence"]).expect("logits for the same sentence");
            let mut state = model.start(&encoded, 1);
            let logits: Vec<f64> = model.step(&mut state, &[config.decoder_start_token_id]).unwrap().into_data().convert::<f64>().into_vec().unwrap();
            let diff = max_rel_diff(&logits, &floats(&logits_case["logits"]));
            assert!(diff <= 1e-4, "{name} sentence {index}: first-step logits differ by {diff:e}");
            worst.1 = worst.1.max(diff);
        }
        eprintln!("{name}: encoder within {:e}, first-step logits within {:e} (relative to the largest value)", worst.0, worst.1);
    }
}

#[test]
fn generate_matches_transformers_token_for_token() {
    let reference = reference();
    for name in MODELS {
        let section = &reference[name];
        let (model, base) = load(name);
        let count = section["sentences"].as_array().unwrap().len();
        assert!(count >= 20, "{name}: only {count} sentences");
        let sources: Vec<Vec<u32>> = (0..count).map(|i| source_ids(section, i)).collect();
        for case in section["generate"].as_array().unwrap() {
            let case_name = case["name"].as_str().unwrap();
            let config = with_kwargs(base.clone(), &case["kwargs"]);
            let batch = case["batch_size"].as_u64().unwrap() as usize;
            let expected: Vec<Vec<u32>> = case["sequences"].as_array().unwrap().iter().map(ids).collect();
            let mut ours = Vec::new();
            for chunk in sources.chunks(batch) {
                ours.extend(generate(&model, chunk, &config, true).unwrap());
            }
            let mismatches: Vec<String> = (0..count)
                .filter(|&i| !same_row(&ours[i], &expected[i], config.pad_token_id))
                .map(|i| format!("sentence {i}: ours {:?}, transformers {:?}", ours[i], expected[i]))
                .collect();
            assert!(mismatches.is_empty(), "{name} {case_name}: {} of {count} differ:\n{}", mismatches.len(), mismatches.join("\n"));
            let ended = ours.iter().filter(|s| config.eos_token_ids.contains(s.last().unwrap()) && s.len() < config.effective_max_length()).count();
            eprintln!("{name} {case_name}: {count} sentences identical ({ended} ended before the limit)");
        }
    }
}

#[test]
fn decoding_without_the_cache_gives_the_same_tokens() {
    let reference = reference();
    for name in MODELS {
        let section = &reference[name];
        let (model, base) = load(name);
        let sources: Vec<Vec<u32>> = (0..6).map(|i| source_ids(section, i)).collect();
        for case in section["generate"].as_array().unwrap().iter().filter(|c| ["greedy", "beam4_early_lp06"].contains(&c["name"].as_str().unwrap())) {
            let config = with_kwargs(base.clone(), &case["kwargs"]);
            let cached = generate(&model, &sources, &config, true).unwrap();
            let uncached = generate(&model, &sources, &config, false).unwrap();
            assert_eq!(cached, uncached, "{name} {}: the cache changed the output", case["name"]);
        }
    }
}

/// A copy of a fixture model folder in a temporary folder, with `edit` applied to its config.json.
fn edited_copy(name: &str, edit: impl Fn(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(&format!("translation/{name}"))).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let config_path = dir.path().join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&config_path, config.to_string()).unwrap();
    dir
}

#[test]
fn broken_model_folders_are_errors_naming_the_file_and_key() {
    let cases: [(&str, &str, Box<dyn Fn(&mut Value)>, &[&str]); 4] = [
        ("marian", "another architecture", Box::new(|c| c["model_type"] = "bart".into()), &["config.json", "model_type", "bart"]),
        ("m2m100", "a wrong width", Box::new(|c| c["d_model"] = 48.into()), &["model.safetensors", "shape"]),
        ("marian", "a missing key", Box::new(|c| { c.as_object_mut().unwrap().remove("encoder_layers"); }), &["config.json", "encoder_layers"]),
        ("marian", "heads that do not divide the width", Box::new(|c| c["encoder_attention_heads"] = 5.into()), &["config.json", "encoder_attention_heads"]),
    ];
    for (name, what, edit, expected) in cases {
        let dir = edited_copy(name, edit);
        let error = match load_seq2seq::<B>(dir.path(), &Default::default()) {
            Ok(_) => panic!("{name} with {what} loaded"),
            Err(error) => format!("{error:#}"),
        };
        assert!(expected.iter().all(|part| error.contains(part)), "{name} with {what}: {error}");
    }
    let dir = edited_copy("marian", |_| {});
    std::fs::write(dir.path().join("generation_config.json"), r#"{"early_stopping": "sometimes", "pad_token_id": 586}"#).unwrap();
    let error = format!("{:#}", generation_config(dir.path()).unwrap_err());
    assert!(error.contains("generation_config.json") && error.contains("early_stopping"), "{error}");
}
