//! Training end to end on the CPU backend: loss goes down, checkpoints reload exactly, the run
//! directory has what evaluation reads, and bad input is refused with a clear message.

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use otclip::data::synthetic::{generate, SyntheticConfig};
use otclip::data::{Batcher, ImageNormalization, Split};
use otclip::eval::embed_split;
use otclip::loss::clip_loss;
use otclip::model::{BertConfig, DualEncoderConfig, VitConfig};
use otclip::text::CaptionTokenizer;
use otclip::train::{load_run, train, TrainConfig, TrainOptions};
use otclip::{DeviceSpec, SYNTHETIC_VI_CONFIG};

type B = Autodiff<NdArray<f32>>;

fn small_config(extra: &[&str]) -> TrainConfig {
    let mut overrides: Vec<String> = [
        "data.synthetic.train_images=48",
        "data.synthetic.val_images=12",
        "data.synthetic.test_images=12",
        "data.synthetic.image_size=32",
        "optim.batch_size=16",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "tokenizer.vocab_size=300",
        "loss.transport_warmup_epochs=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    overrides.extend(extra.iter().map(|s| s.to_string()));
    TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &overrides).unwrap()
}

fn small_model(vocab: usize) -> DualEncoderConfig {
    DualEncoderConfig::new(VitConfig::new(32, 8, 32, 1, 2, 64).into(), BertConfig::new(vocab, 32, 1, 2, 64), 32)
}

#[test]
fn two_steps_lower_the_loss() {
    let device = Default::default();
    B::seed(&device, 1);
    let data = generate(&SyntheticConfig::new().with_train_images(16).with_image_size(32), Split::Train).unwrap().dataset;
    let tokenizer = CaptionTokenizer::train(data.entries.iter().flat_map(|e| e.captions.iter()), 300, 48).unwrap();
    let batcher = Batcher { tokenizer: tokenizer.clone(), image_size: 32, normalization: ImageNormalization::IMAGENET, interpolation: Default::default() };
    let pairs: Vec<(usize, usize)> = (0..16).map(|i| (i, 0)).collect();
    let mut model = small_model(tokenizer.vocab_size()).init::<B>(&device);
    let mut optim = AdamWConfig::new().init::<B, _>();
    let mut losses = Vec::new();
    let initial_scale: f64 = model.scale().into_scalar().elem();
    for _ in 0..3 {
        let batch = batcher.batch::<B>(&data, &pairs, &device).unwrap();
        let loss = clip_loss(model.encode_image(batch.pixel_values), model.encode_text(&batch.text), model.scale(), &batch.image_ids);
        losses.push(loss.clone().into_scalar().elem::<f64>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads).clamp_logit_scale();
    }
    assert!(losses[1] < losses[0] && losses[2] < losses[1], "loss did not fall step by step: {losses:?}");
    // The clamp keeps the temperature a trainable leaf: the optimiser still moves it.
    let scale: f64 = model.scale().into_scalar().elem();
    assert!((scale - initial_scale).abs() > 1e-4, "the logit scale did not train: {initial_scale} → {scale}");
}

#[test]
fn logit_scale_is_clamped_at_100() {
    let device = Default::default();
    let model = small_model(50).with_init_logit_scale(9.0).init::<B>(&device).clamp_logit_scale();
    let scale: f64 = model.scale().into_scalar().elem();
    assert!((scale - 100.0).abs() < 1e-3, "{scale}");
}

#[test]
fn train_writes_a_run_that_reloads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let config = small_config(&[]);
    let device = Default::default();
    let summary = train::<B>(&config, &run_dir, &device, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    assert_eq!(summary.epochs, 1);
    assert_eq!(summary.steps, 3);
    for file in ["config.toml", "model.json", "tokenizer.json", "metrics.jsonl", "checkpoints/last/model.mpk", "checkpoints/last/optim.mpk", "checkpoints/best/model.mpk"] {
        assert!(run_dir.join(file).is_file(), "missing {file}");
    }
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"loss\"")).count(), 3);
    assert_eq!(metrics.lines().filter(|l| l.contains("\"val\"")).count(), 1);

    // Reloading twice gives identical embeddings, and they match the saved model's own.
    let a = load_run::<NdArray<f32>>(&run_dir, "last", &device).unwrap();
    let b = load_run::<NdArray<f32>>(&run_dir, "last", &device).unwrap();
    let test = generate(config.synthetic().unwrap(), Split::Test).unwrap().dataset;
    let ea = embed_split(&a.model, &a.batcher, &test, 8, &device).unwrap();
    let eb = embed_split(&b.model, &b.batcher, &test, 5, &device).unwrap();
    assert_eq!(ea.images.len(), 12 * 128);
    for (x, y) in ea.images.iter().chain(&ea.texts).zip(eb.images.iter().chain(&eb.texts)) {
        assert!((x - y).abs() < 1e-5);
    }
    // A second run into the same directory is refused rather than overwriting it.
    let err = train::<B>(&config, &run_dir, &device, &TrainOptions { quiet: true, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
}

#[test]
fn resume_continues_from_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let device = Default::default();
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    train::<B>(&small_config(&[]), &run_dir, &device, &quiet).unwrap();
    let resumed = train::<B>(&small_config(&["optim.epochs=2"]), &run_dir, &device, &TrainOptions { resume: true, ..quiet }).unwrap();
    assert_eq!(resumed.epochs, 2);
    assert_eq!(resumed.steps, 6, "resumed at step 3 and ran one more epoch");
}

#[test]
fn saved_and_reloaded_model_embeds_the_same() {
    let device = Default::default();
    let config = small_model(60);
    let model = config.init::<NdArray<f32>>(&device);
    let pixels = Tensor::<NdArray<f32>, 4>::random([2, 3, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    // Embed first: burn initialises parameters lazily, on first use.
    let a: Vec<f32> = model.encode_image(pixels.clone()).into_data().into_vec().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let recorder = otclip::train::CheckpointRecorder::new();
    model.clone().save_file(dir.path().join("m"), &recorder).unwrap();
    let loaded = config.init::<NdArray<f32>>(&device).load_file(dir.path().join("m"), &recorder, &device).unwrap();
    let b: Vec<f32> = loaded.encode_image(pixels).into_data().into_vec().unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_devices_are_refused_with_a_reason() {
    let err = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
    assert!(err.contains("unknown device `tpu`") && err.contains("ndarray"), "{err}");
    if !cfg!(feature = "cuda") {
        let err = "cuda:0".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
    let err = "cuda:x".parse::<DeviceSpec>().unwrap_err().to_string();
    assert!(err.contains("device index"), "{err}");
    assert_eq!("ndarray".parse::<DeviceSpec>().unwrap(), DeviceSpec::NdArray);
}

#[test]
fn a_missing_config_key_is_named() {
    let text = SYNTHETIC_VI_CONFIG.replace("epochs = 8\n", "");
    let err = TrainConfig::parse(&text, "mine.toml", &[]).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("mine.toml") && message.contains("epochs"), "{message}");
    let err = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &["optim.epochz=3".into()]).unwrap_err();
    assert!(format!("{err:#}").contains("unknown field `epochz`"), "{err:#}");
    let err = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &["optimm.epochs=3".into()]).unwrap_err();
    assert!(format!("{err:#}").contains("unknown config key `optimm`"), "{err:#}");
    // Keys the file leaves to their defaults can still be set.
    let config = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &["model.image_size=40".into()]).unwrap();
    assert_eq!(config.model.image_size, Some(40));
}

#[test]
fn an_unwritable_output_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let err = train::<B>(&small_config(&[]), &blocker.join("run"), &Default::default(), &TrainOptions::default()).unwrap_err();
    assert!(format!("{err:#}").contains("cannot create the output directory"), "{err:#}");
}

#[test]
fn every_objective_trains() {
    let objectives = ["clip", "siglip", "sigrot", "clip+sigrot", "siglip+sigrot", "clip+uot", "siglip+uot"];
    let dir = tempfile::tempdir().unwrap();
    for objective in objectives {
        let o: otclip::loss::Objective = objective.parse().unwrap();
        let (contrastive, transport) = (format!("loss.contrastive=\"{}\"", o.contrastive.as_str()), format!("loss.transport=\"{}\"", o.transport.as_str()));
        let config = small_config(&[&contrastive, &transport, "loss.sinkhorn.iterations=30"]);
        let run_dir = dir.path().join(objective.replace('+', "_"));
        let options = TrainOptions { quiet: true, max_steps: Some(2), ..Default::default() };
        let summary = train::<B>(&config, &run_dir, &Default::default(), &options).unwrap();
        assert_eq!(summary.steps, 2, "{objective}");
        assert!(summary.last_loss.is_finite(), "{objective}: {}", summary.last_loss);
        let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
        assert_eq!(first["contrastive"].is_null(), objective == "sigrot", "{objective}: {first}");
        assert_eq!(first["transport"].is_null(), !objective.contains('+') && objective != "sigrot", "{objective}: {first}");
    }
}

#[test]
fn a_teacher_file_replaces_the_builtin_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(&[]);
    let train_set = generate(config.synthetic().unwrap(), Split::Train).unwrap().dataset;
    let path = dir.path().join("teacher.safetensors");
    otclip::data::teacher::save(&path, &train_set, train_set.teacher.as_ref().unwrap(), "builtin").unwrap();
    let options = TrainOptions { quiet: true, max_steps: Some(1), ..Default::default() };
    let sigrot = "loss.transport=\"sigrot\"";
    let with_file = small_config(&[sigrot, &format!("data.teacher=\"{}\"", path.display())]);
    train::<B>(&with_file, &dir.path().join("ok"), &Default::default(), &options).unwrap();
    let missing = small_config(&[sigrot, "data.teacher=\"/no/such/teacher.safetensors\""]);
    let err = train::<B>(&missing, &dir.path().join("bad"), &Default::default(), &options).unwrap_err();
    assert!(format!("{err:#}").contains("/no/such/teacher.safetensors"), "{err:#}");
}

/// The tokenizer trainer numbers its tokens in hash order; otclip renumbers them by their text,
/// so the same vocabulary gets the same ids in every run. (The vocabulary here is every token
/// the captions make: with a smaller one, merges that tie at the cut may still be chosen
/// differently by the trainer.)
#[test]
fn a_trained_tokenizer_numbers_its_tokens_the_same_every_time() {
    let split = generate(&SyntheticConfig::new().with_train_images(60).with_image_size(16), Split::Train).unwrap();
    let captions = || split.dataset.entries.iter().flat_map(|e| e.captions.iter().map(String::as_str)).collect::<Vec<_>>();
    let vocabularies: Vec<_> = (0..4)
        .map(|_| {
            let tokenizer = CaptionTokenizer::train(captions().into_iter(), 5000, 32).unwrap();
            let mut vocab: Vec<(String, u32)> = tokenizer.tokenizer().get_vocab(true).into_iter().collect();
            vocab.sort();
            vocab
        })
        .collect();
    assert!(vocabularies[0].len() > 100, "a vocabulary of {} tokens", vocabularies[0].len());
    assert!(vocabularies.iter().all(|v| *v == vocabularies[0]), "the same captions gave differently numbered vocabularies");
    let tokenizer = CaptionTokenizer::train(captions().into_iter(), 300, 32).unwrap();
    let ids = |t: &str| tokenizer.tokenizer().token_to_id(t);
    assert_eq!((ids("[PAD]"), ids("[UNK]"), ids("[CLS]"), ids("[SEP]"), ids("[MASK]")), (Some(0), Some(1), Some(2), Some(3), Some(4)));
}
