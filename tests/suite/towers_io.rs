//! PhoBERT's fastBPE tokenizer against the reference algorithm, loading errors, and the exact
//! export → load round trip of a dual encoder.

use crate::common;

use burn::backend::NdArray;
use burn::module::Module;
use burn_store::ModuleSnapshot;
use otclip::model::{BertConfig, DualEncoderConfig, VitConfig};
use otclip::text::CaptionTokenizer;
use otclip::weights::{export_dual, load_exported, load_image_tower, load_text_tower, TowerSource};

type B = NdArray<f32>;

#[test]
fn phobert_fastbpe_matches_reference_tokenizer() {
    let dir = common::fixture("towers/phobert");
    let tokenizer = CaptionTokenizer::from_dir(&dir, 64).unwrap();
    let cases = common::read_json("towers/phobert/expected.json");
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<i64> = case["ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let ours = tokenizer.encode_batch(&[text]).unwrap();
        assert_eq!(ours.ids, expected, "ids of {text:?}");
        let tokens = tokenizer.tokenizer().encode(text, false).unwrap();
        let pieces: Vec<String> = tokens.get_ids().iter().map(|&id| tokenizer.tokenizer().id_to_token(id).unwrap()).collect();
        eprintln!("{text:?} → {pieces:?}");
    }
    // Saved beside a run (tokenizer.json + tokenizer.unknown.json), it still maps unknown pieces to <unk>.
    let tmp = tempfile::tempdir().unwrap();
    tokenizer.save(&tmp.path().join("tokenizer.json")).unwrap();
    let reloaded = CaptionTokenizer::from_file(&tmp.path().join("tokenizer.json"), 64).unwrap();
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(reloaded.encode_batch(&[text]).unwrap(), tokenizer.encode_batch(&[text]).unwrap(), "reloaded ids of {text:?}");
    }
    assert!(cases.as_array().unwrap().iter().any(|c| c["ids"].as_array().unwrap().contains(&3.into())), "the fixture has an <unk> case");
    let ours = tokenizer.encode_batch(&["a", "hai con chó chạy trên bãi biển"]).unwrap();
    assert_eq!(ours.mask.iter().filter(|&&m| m == 0).count(), ours.length - 3, "padding is masked");
    assert!(ours.ids[..ours.length].ends_with(&vec![1i64; ours.length - 3]), "padded with <pad> = 1");
}

#[test]
fn wrong_folder_and_wrong_architecture_are_named() {
    let device = Default::default();
    let missing = load_text_tower::<B>(&common::fixture("towers/nowhere"), None, 32, false, &device).err().unwrap();
    assert!(format!("{missing:#}").contains("towers/nowhere"), "{missing:#}");
    let wrong = load_text_tower::<B>(&common::fixture("towers/dinov2"), None, 32, false, &device).err().unwrap();
    assert!(format!("{wrong:#}").contains("model_type `dinov2`"), "{wrong:#}");
    let source: TowerSource = format!("timm:vit_large_patch16_dinov3@{}", common::fixture("towers/dinov3_timm").display()).parse().unwrap();
    let wrong = load_image_tower::<B>(&source, None, false, &device).err().unwrap();
    assert!(format!("{wrong:#}").contains("vit_base_patch16_dinov3"), "{wrong:#}");
}

/// A `config.json` that does not fit its typed struct: the error names the file, the key and
/// what the key accepts. `null` counts as missing.
#[test]
fn config_errors_name_the_file_and_the_key() {
    use otclip::weights::{image_config, text_config};
    use serde_json::{json, Value};

    let tmp = tempfile::tempdir().unwrap();
    let read = |name: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(common::fixture(name)).unwrap()).unwrap() };
    let write = |config: &Value| std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    let bert = read("towers/bert/config.json");
    let text_error = |edit: &dyn Fn(&mut Value)| {
        let mut config = bert.clone();
        edit(&mut config);
        write(&config);
        format!("{:#}", text_config(tmp.path()).unwrap_err())
    };

    let message = text_error(&|c| c["hidden_act"] = "swiglu".into());
    assert!(message.contains("config.json: `hidden_act`") && message.contains("`gelu`, `gelu_new`") && message.contains("`quick_gelu`"), "{message}");
    let message = text_error(&|c| c["hidden_act"] = "quick_gelu".into());
    assert!(message.contains("hidden_act `quick_gelu` is not supported here (expected gelu)"), "{message}");
    let message = text_error(&|c| c["position_embedding_type"] = "relative_key".into());
    assert!(message.contains("position_embedding_type `relative_key` is not supported"), "{message}");
    let message = text_error(&|c| c["position_embedding_type"] = "rotary".into());
    assert!(message.contains("`position_embedding_type`") && message.contains("`absolute`, `relative_key`, `relative_key_query`"), "{message}");
    let message = text_error(&|c| c["layer_norm_eps"] = "small".into());
    assert!(message.contains("config.json: `layer_norm_eps`: invalid type"), "{message}");
    let message = text_error(&|c| {
        c.as_object_mut().unwrap().remove("vocab_size");
    });
    assert!(message.contains("config.json: missing field `vocab_size`"), "{message}");
    let message = text_error(&|c| c["model_type"] = "gpt2".into());
    assert!(message.contains("`model_type`: unknown variant `gpt2`") && message.contains("`xlm-roberta`"), "{message}");

    let mut nulls = bert.clone();
    nulls["type_vocab_size"] = Value::Null;
    nulls["model_type"] = "roberta".into();
    nulls["pad_token_id"] = Value::Null;
    write(&nulls);
    let config = text_config(tmp.path()).unwrap();
    assert_eq!((config.type_vocab_size, config.pad_token_id), (2, 1), "HF's defaults for a RoBERTa");

    // A CLIPModel's image tower is its `vision_config`; errors name the nested key.
    let hf = TowerSource::Hf(tmp.path().to_path_buf());
    let mut vision = read("towers/clip_vision/config.json");
    write(&json!({"model_type": "clip", "projection_dim": 16, "vision_config": vision}));
    let config = image_config(&hf).unwrap();
    assert!(config.vit.quick_gelu && config.vit.pre_layernorm && config.vit.projection_dim == Some(16));
    assert_eq!(config.normalization, otclip::data::ImageNormalization::CLIP);
    vision["hidden_act"] = "relu".into();
    write(&json!({"model_type": "clip", "projection_dim": 16, "vision_config": vision}));
    let message = format!("{:#}", image_config(&hf).unwrap_err());
    assert!(message.contains("vision_config.hidden_act `relu` is not supported here (expected quick_gelu or gelu)"), "{message}");
    vision["hidden_act"] = "quick-gelu".into();
    write(&json!({"model_type": "clip", "projection_dim": 16, "vision_config": vision}));
    let message = format!("{:#}", image_config(&hf).unwrap_err());
    assert!(message.contains("config.json: `vision_config.hidden_act`: unknown variant `quick-gelu`"), "{message}");

    let mut timm = read("towers/dinov3_timm/config.json");
    timm["model_args"]["global_pool"] = "max".into();
    write(&timm);
    let message = format!("{:#}", image_config(&hf).unwrap_err());
    assert!(message.contains("config.json: `model_args.global_pool`: unknown variant `max`, expected `avg` or `token`"), "{message}");
}

#[test]
fn mismatched_shapes_name_the_tensor_and_both_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = common::fixture("towers/bert");
    for name in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(name), tmp.path().join(name)).unwrap();
    }
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["intermediate_size"] = 48.into();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    let error = load_text_tower::<B>(tmp.path(), None, 32, false, &Default::default()).err().unwrap();
    let message = format!("{error:#}");
    assert!(message.contains("intermediate.dense.weight") && message.contains("[64, 32]") && message.contains("[48, 32]"), "{message}");
}

#[test]
fn partial_load_is_an_error_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = common::fixture("towers/clip_vision");
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    // Keep every tensor but the pre-layernorm.
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        tensors.tensors().into_iter().filter(|(k, _)| !k.contains("pre_layrnorm")).collect();
    safetensors::serialize_to_file(kept, None, &tmp.path().join("model.safetensors")).unwrap();
    let source = TowerSource::Hf(tmp.path().to_path_buf());
    let error = load_image_tower::<B>(&source, None, false, &Default::default()).err().unwrap();
    assert!(format!("{error:#}").contains("pre_layernorm"), "{error:#}");
    let tower = load_image_tower::<B>(&source, None, true, &Default::default()).unwrap();
    assert_eq!(tower.report.missing.len(), 2, "{}", tower.report);
}

#[test]
fn export_round_trip_is_exact() {
    let device = Default::default();
    let config = DualEncoderConfig::new(
        VitConfig::new(32, 8, 32, 2, 4, 64).with_layer_scale(true).with_num_register_tokens(2).into(),
        BertConfig::new(90, 32, 2, 4, 64).with_max_position_embeddings(40).with_add_pooling_layer(true),
        16,
    );
    let model = config.init::<B>(&device);
    let tmp = tempfile::tempdir().unwrap();
    let written = export_dual(&model, &config, tmp.path()).unwrap();
    let (loaded, _, report) = load_exported::<B>(tmp.path(), &device).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{report}");
    assert_eq!(report.applied.len(), written);
    let keys = safetensors::SafeTensors::deserialize(&std::fs::read(tmp.path().join("model.safetensors")).unwrap())
        .unwrap()
        .names()
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert!(keys.iter().any(|k| k == "text_model.encoder.layer.0.attention.self.query.weight"), "HF names: {keys:?}");
    assert!(keys.iter().any(|k| k == "text_model.embeddings.LayerNorm.weight"));
    let a = model.collect(None, None, false);
    let b = loaded.collect(None, None, false);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.full_path(), y.full_path());
        let (dx, dy) = (x.to_data().unwrap(), y.to_data().unwrap());
        assert_eq!(dx.as_bytes(), dy.as_bytes(), "{} differs after the round trip", x.full_path());
    }
    assert_eq!(loaded.num_params(), model.num_params());
}

#[test]
fn pretrained_towers_plug_into_the_dual_encoder() {
    let device = Default::default();
    let image: TowerSource = format!("timm:vit_base_patch16_dinov3@{}", common::fixture("towers/dinov3_timm").display()).parse().unwrap();
    let text: TowerSource = format!("hf:{}", common::fixture("towers/xlmr").display()).parse().unwrap();
    let (model, config, tokenizer, reports) = otclip::weights::pretrained_dual_encoder::<B>(&image, &text, 16, 32, false, &device).unwrap();
    assert!(reports.iter().all(|r| r.missing.is_empty()));
    assert_eq!(config.vision.vit().unwrap().num_register_tokens, 4);
    assert!(config.text.roberta_positions);
    let encoded = tokenizer.encode_batch(&["hai con chó", "a red bicycle in the park"]).unwrap();
    let batch = otclip::model::TextBatch {
        input_ids: burn::tensor::Tensor::<B, 1, burn::tensor::Int>::from_ints(encoded.ids.as_slice(), &device).reshape([2, encoded.length]),
        attention_mask: burn::tensor::Tensor::<B, 1, burn::tensor::Int>::from_ints(encoded.mask.as_slice(), &device).reshape([2, encoded.length]),
    };
    let texts = model.encode_text(&batch);
    let images = model.encode_image(burn::tensor::Tensor::<B, 4>::ones([2, 3, 32, 32], &device));
    assert_eq!(texts.dims(), [2, 16]);
    assert_eq!(images.dims(), [2, 16]);
}

/// Training with `model.image_tower` and `model.text_tower`: the towers start from their
/// checkpoints (with lr = 0 they stay there, so the trained run still gives the reference
/// outputs), the run keeps the tower's tokenizer, image size and normalisation, resumes, and exports.
#[test]
fn training_starts_from_pretrained_towers() {
    use burn::backend::Autodiff;
    use burn::tensor::{Int, Tensor, TensorData};
    use otclip::train::{load_run, train, TrainConfig, TrainOptions};

    let device = Default::default();
    // Copies of the towers, removed after training: resume, eval and export must not need them.
    let towers = tempfile::tempdir().unwrap();
    let (clip, xlmr) = (towers.path().join("clip_vision"), towers.path().join("xlmr"));
    for (dir, name) in [(&clip, "clip_vision"), (&xlmr, "xlmr")] {
        std::fs::create_dir(dir).unwrap();
        for file in std::fs::read_dir(common::fixture(&format!("towers/{name}"))).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
        }
    }
    let text = otclip::SYNTHETIC_VI_CONFIG.replace("normalization = { mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225] }\n", "");
    assert_ne!(text, otclip::SYNTHETIC_VI_CONFIG, "the normalization line was removed");
    let mut overrides: Vec<String> = [
        "data.synthetic.train_images=32",
        "data.synthetic.val_images=8",
        "data.synthetic.test_images=8",
        "data.synthetic.image_size=48",
        "optim.batch_size=16",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "optim.lr=0",
        "optim.min_lr=0",
        "model.projection_dim=16",
        "model.image_pooling=pooler",
        "model.text_pooling=mean",
    ]
    .map(String::from)
    .to_vec();
    overrides.push(format!("model.image_tower=hf:{}", clip.display()));
    overrides.push(format!("model.text_tower=hf:{}", xlmr.display()));
    let config = TrainConfig::parse(&text, "pretrained.toml", &overrides).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    let summary = train::<Autodiff<B>>(&config, &run_dir, &device, &quiet).unwrap();
    assert_eq!(summary.steps, 2);

    let tower = load_image_tower::<B>(&TowerSource::Hf(clip.clone()), None, false, &device).unwrap();
    let own = CaptionTokenizer::from_dir(&xlmr, 512).unwrap();
    let reference = |dir: &std::path::Path| otclip::weights::read_tensors(&dir.join("reference.safetensors")).unwrap();
    let (text_reference, image_reference) = (reference(&xlmr), reference(&clip));
    drop(towers);
    assert!(!clip.exists());

    let run = load_run::<B>(&run_dir, "last", &device).unwrap();
    assert_eq!((run.batcher.normalization.mean, run.batcher.normalization.std), (tower.normalization.mean, tower.normalization.std), "the tower's normalisation");
    assert_eq!(run.batcher.image_size, 32, "the tower's image size, not data.synthetic.image_size");
    let captions = ["hai con chó chạy trên bãi biển", "a red bicycle"];
    assert_eq!(run.batcher.tokenizer.encode_batch(&captions).unwrap(), own.encode_batch(&captions).unwrap(), "the tower's tokenizer");

    let diff = |ours: Tensor<B, 2>, reference: &TensorData| {
        let a = ours.into_data().into_vec::<f32>().unwrap();
        let b = reference.clone().into_vec::<f32>().unwrap();
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
    };
    let r = text_reference;
    let ints = |d: &TensorData| Tensor::<B, 2, Int>::from_data(d.clone().convert::<i64>(), &device);
    let batch = otclip::model::TextBatch { input_ids: ints(&r["input_ids"]), attention_mask: ints(&r["attention_mask"]) };
    let text_diff = diff(run.model.text_model.embed(&batch), &r["mean_pooled"]);
    let r = image_reference;
    let pixels = Tensor::<B, 4>::from_data(r["pixel_values"].clone(), &device);
    let image_diff = diff(run.model.vision_model.as_ref().unwrap().embed(pixels), &r["pooler_output"]);
    assert!(text_diff <= 1e-4 && image_diff <= 1e-4, "pretrained weights lost: text {text_diff:e}, image {image_diff:e}");

    // Resuming reads the run's own model.json, tokenizer and preprocessing; it loads no tower.
    let mut more = overrides.clone();
    more.push("optim.epochs=2".into());
    let config = TrainConfig::parse(&text, "pretrained.toml", &more).unwrap();
    let summary = train::<Autodiff<B>>(&config, &run_dir, &device, &TrainOptions { resume: true, ..quiet }).unwrap();
    assert_eq!((summary.epochs, summary.steps), (2, 4));

    let out = tmp.path().join("export");
    let task = otclip::app::export::ExportTask { run_dir: run_dir.clone(), checkpoint: "last".into(), out: out.clone() };
    task.run_on(otclip::DeviceSpec::NdArray).unwrap();
    let exported = CaptionTokenizer::from_dir(&out, 512).unwrap();
    assert_eq!(exported.encode_batch(&captions).unwrap(), own.encode_batch(&captions).unwrap(), "the exported tokenizer");
    let preprocessor: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("preprocessor_config.json")).unwrap()).unwrap();
    assert_eq!((preprocessor["crop_size"]["height"].as_u64(), preprocessor["size"]["shortest_edge"].as_u64()), (Some(32), Some(37)), "the tower's image size");
    let (model, _, report) = load_exported::<B>(&out, &device).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{report}");
    let pixels = Tensor::<B, 4>::from_data(r["pixel_values"].clone(), &device);
    let exported_diff = diff(model.vision_model.as_ref().unwrap().embed(pixels), &r["pooler_output"]);
    assert!(exported_diff <= 1e-4, "the exported image tower differs by {exported_diff:e}");
    let report = otclip::evaluate_run::<B>(&run_dir, "last", otclip::data::Split::Test, None, &device).unwrap();
    assert_eq!((report.metrics.images, report.metrics.captions), (8, 40), "eval on the test split without the towers");
}

/// `configs/viclip_ot_uit.toml` names its towers; as shipped the folders are missing here, and the
/// error says which key and folder. Pointed at the fixtures, it builds the model it describes.
#[test]
fn the_viclip_ot_config_builds_its_pretrained_model() {
    use otclip::train::{initial_model, TrainConfig};
    let text = include_str!("../../configs/viclip_ot_uit.toml");
    let shipped = TrainConfig::parse(text, "viclip_ot_uit.toml", &[]).unwrap();
    let message = format!("{:#}", shipped.model.tower_sources().unwrap_err());
    assert!(message.contains("model.image_tower") && message.contains("towers/dinov3-vitb16"), "{message}");
    let overrides = [
        format!("model.image_tower=timm:vit_base_patch16_dinov3@{}", common::fixture("towers/dinov3_timm").display()),
        format!("model.text_tower=hf:{}", common::fixture("towers/xlmr").display()),
        "model.projection_dim=32".to_string(),
    ];
    let config = TrainConfig::parse(text, "viclip_ot_uit.toml", &overrides).unwrap();
    let init = initial_model::<B, &str>(&config, std::iter::empty(), &Default::default()).unwrap();
    assert_eq!(init.image_size, 224, "model.image_size overrides the tower's 32 px");
    assert_eq!(init.normalization.mean, [0.485, 0.456, 0.406], "timm's pretrained_cfg mean");
    assert_eq!(init.config.vision.vit().unwrap().num_register_tokens, 4);
    assert_eq!(init.config.vision.vit().unwrap().pooling, otclip::model::Pooling::Mean);
    assert_eq!(init.config.text.hidden_dropout_prob, 0.1);
    assert_eq!(init.reports.len(), 2);
    assert!(init.reports.iter().all(|r| r.missing.is_empty()), "{:?}", init.reports);
    // The paper's heads: dropout and a bias-free linear layer for the image, none for the text.
    let model = &init.model;
    assert!(model.visual_projection.as_ref().is_some_and(|l| l.bias.is_none()) && model.visual_dropout.is_some());
    assert!(model.text_projection.is_none() && model.text_mlp.is_none());
    let images = model.encode_image(burn::tensor::Tensor::<B, 4>::zeros([1, 3, 224, 224], &Default::default()));
    assert_eq!(images.dims(), [1, 32]);
}

fn otclip(args: &[&str]) -> String {
    let (ok, stdout, stderr) = common::otclip(args);
    assert!(ok, "otclip {args:?}: {stderr}");
    stdout
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// The `otclip embed` command: texts through XLM-R and preprocessed pixels through CLIP vision with
/// its projection give the transformers reference outputs; an image folder gives what the
/// library's evaluation transform and the tower give.
#[test]
fn embed_command_writes_the_reference_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).display().to_string();
    let read = |name: &str| otclip::npy::read(&tmp.path().join(name)).unwrap();

    std::fs::write(tmp.path().join("texts.txt"), "a red bicycle in the park\nhai con chó chạy trên bãi biển xanh\n").unwrap();
    let xlmr = common::fixture("towers/xlmr").display().to_string();
    let stdout = otclip(&["embed", "--text-tower", &xlmr, "--texts", &path("texts.txt"), "--pooling", "mean", "--out", &path("t.npy")]);
    assert!(stdout.contains("2 × 32"), "{stdout}");
    let ours: Vec<f32> = read("t.npy").data.iter().map(|&v| v as f32).collect();
    let r = otclip::weights::read_tensors(&common::fixture("towers/xlmr/reference.safetensors")).unwrap();
    let diff = max_abs(&ours, &r["mean_pooled"].clone().into_vec::<f32>().unwrap());
    assert!(diff <= 1e-4, "embed --texts differs from transformers by {diff:e}");

    let clip = common::fixture("towers/clip_vision");
    let r = otclip::weights::read_tensors(&clip.join("reference.safetensors")).unwrap();
    let pixels: Vec<f64> = r["pixel_values"].clone().into_vec::<f32>().unwrap().iter().map(|&v| v as f64).collect();
    otclip::npy::write_f64(&tmp.path().join("px.npy"), &[2, 3, 32, 32], &pixels).unwrap();
    let clip_arg = clip.display().to_string();
    otclip(&["embed", "--image-tower", &clip_arg, "--pixel-values", &path("px.npy"), "--pooling", "pooler", "--project", "--out", &path("i.npy")]);
    let ours: Vec<f32> = read("i.npy").data.iter().map(|&v| v as f32).collect();
    assert_eq!(read("i.npy").shape, vec![2, 16]);
    let diff = max_abs(&ours, &r["image_embeds"].clone().into_vec::<f32>().unwrap());
    assert!(diff <= 1e-4, "embed --pixel-values --project differs from transformers by {diff:e}");

    // An image folder: a 40×56 gradient, resized and cropped to the tower's 32 px.
    std::fs::create_dir(tmp.path().join("photos")).unwrap();
    let image = image::RgbImage::from_fn(40, 56, |x, y| image::Rgb([(x * 6) as u8, (y * 4) as u8, ((x + y) * 2) as u8]));
    image.save(tmp.path().join("photos/a.png")).unwrap();
    otclip(&["embed", "--image-tower", &clip_arg, "--images", &path("photos"), "--pooling", "pooler", "--out", &path("f.npy")]);
    let ours: Vec<f32> = read("f.npy").data.iter().map(|&v| v as f32).collect();
    let device = Default::default();
    let tower = load_image_tower::<B>(&TowerSource::Hf(clip), Some(otclip::model::Pooling::Pooler), false, &device).unwrap();
    let norm = tower.normalization;
    let chw = otclip::data::transform::EvalTransform::new().with_resize(32).with_crop(32).apply(&image, &norm).unwrap();
    let x = burn::tensor::Tensor::<B, 1>::from_floats(chw.as_slice(), &device).reshape([1, 3, 32, 32]);
    let expected = tower.model.embed(x).into_data().into_vec::<f32>().unwrap();
    let diff = max_abs(&ours, &expected);
    assert!(diff <= 1e-5, "embed --images differs from the library path by {diff:e}");
}
