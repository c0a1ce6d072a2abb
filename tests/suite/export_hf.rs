//! `otclip export` against the real client. Each case is a small dual encoder built here the same
//! way every time (the fixture towers, or a tower config, with every other parameter filled by a
//! fixed sequence), exported, and compared byte for byte with the committed export under
//! `tests/fixtures/exports/CASE/`. `tools/gen_export_fixtures.py` loaded that folder in
//! transformers (`trust_remote_code`, no missing, unexpected or mismatched weights) and wrote what
//! it embeds for fixed inputs to `reference.safetensors`; otclip must embed the same to 1e-4.
//!
//! To change the export: `OTCLIP_BLESS_EXPORTS=1` makes these tests write the fixture folders (and
//! fail); then `~/.cache/otclip/py/bin/python tools/gen_export_fixtures.py`, and rerun.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::NdArray;
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use otclip::model::{BertConfig, DualEncoder, DualEncoderConfig, HeadConfig, HeadKind, Pooling, TextBatch, VitConfig};
use otclip::weights::{export_dual, load_exported, load_image_tower, load_text_tower, read_tensors, TowerSource};

type B = NdArray<f32>;

const TOLERANCE: f32 = 1e-4;

/// The files of an export that must not change unnoticed.
const EXPORTED: [&str; 4] = ["model.safetensors", "config.json", "configuration_otclip.py", "modeling_otclip.py"];

/// Fills every float parameter it maps with uniform values in ±`amplitude` from a splitmix64
/// sequence: the same model on every machine, whatever burn's random generator is doing.
struct Fill {
    state: u64,
    amplitude: f32,
}

impl Fill {
    fn new(seed: u64, amplitude: f32) -> Self {
        Self { state: seed, amplitude }
    }

    fn next(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * self.amplitude
    }
}

impl ModuleMapper<B> for Fill {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let dims = param.val().dims();
        let values: Vec<f32> = (0..dims.iter().product::<usize>()).map(|_| self.next()).collect();
        param.map(move |t| Tensor::from_data(TensorData::new(values, dims), &t.device()))
    }
}

fn fixture_tower(name: &str) -> std::path::PathBuf {
    common::fixture(&format!("towers/{name}"))
}

/// The dual encoder of `case` and its config.
fn build(case: &str) -> (DualEncoder<B>, DualEncoderConfig) {
    let device = Default::default();
    let image = |source: TowerSource, pooling: Pooling| load_image_tower::<B>(&source, Some(pooling), false, &device).unwrap();
    let text = |name: &str, pooling: Pooling| load_text_tower::<B>(&fixture_tower(name), Some(pooling), 64, false, &device).unwrap();
    let head = |kind: HeadKind, bias: bool, dropout: f64| HeadConfig::new().with_kind(kind).with_bias(bias).with_dropout(dropout);
    let pretrained = |image: otclip::weights::ImageTower<B>, text: otclip::weights::TextTower<B>, dim: usize, heads: [HeadConfig; 2]| {
        let [image_head, text_head] = heads;
        let config = DualEncoderConfig::new(image.config.into(), text.config, dim).with_image_head(image_head).with_text_head(text_head);
        config.validate().unwrap();
        (config.with_towers(otclip::model::VisionModel::Vit(image.model), text.model, &device), config)
    };
    let (mut model, config) = match case {
        "clip_bert_linear" => pretrained(
            image(TowerSource::Hf(fixture_tower("clip_vision")), Pooling::Pooler),
            text("bert", Pooling::Cls),
            16,
            [head(HeadKind::Linear, false, 0.0), head(HeadKind::Linear, false, 0.0)],
        ),
        "dinov2_xlmr_mlp" => pretrained(
            image(TowerSource::Hf(fixture_tower("dinov2")), Pooling::Mean),
            text("xlmr", Pooling::Mean),
            24,
            [head(HeadKind::Mlp, true, 0.0), head(HeadKind::Mlp, true, 0.1)],
        ),
        "dinov3_bert" => pretrained(
            image(TowerSource::Timm { name: Some("vit_base_patch16_dinov3".into()), dir: fixture_tower("dinov3_timm") }, Pooling::Mean),
            text("bert", Pooling::Mean),
            16,
            [head(HeadKind::Linear, true, 0.1), head(HeadKind::Linear, false, 0.0)],
        ),
        "vit_bert_pooler" => {
            let vision = VitConfig::new(32, 8, 32, 2, 4, 64).with_add_pooling_layer(true).with_pooling(Pooling::Pooler).with_qkv_bias(false);
            let text = BertConfig::new(90, 32, 2, 4, 64).with_max_position_embeddings(40).with_add_pooling_layer(true).with_pooling(Pooling::Pooler);
            let none = HeadConfig::new().with_kind(HeadKind::None);
            let config = DualEncoderConfig::new(vision.into(), text, 32).with_image_head(none.clone()).with_text_head(none);
            config.validate().unwrap();
            let model = config.init::<B>(&device).map(&mut Fill::new(4, 0.3));
            (model, config)
        }
        other => panic!("no case {other}"),
    };
    let mut fill = Fill::new(case.len() as u64 * 7919, 0.3);
    model.visual_projection = Module::map(model.visual_projection, &mut fill);
    model.text_projection = Module::map(model.text_projection, &mut fill);
    model.visual_mlp = Module::map(model.visual_mlp, &mut fill);
    model.text_mlp = Module::map(model.text_mlp, &mut fill);
    model.logit_scale = Param::from_tensor(Tensor::from_floats([3.0], &device));
    model.logit_bias = Param::from_tensor(Tensor::from_floats([-5.0], &device));
    (model, config)
}

fn max_abs(ours: Tensor<B, 2>, reference: &TensorData, what: &str) -> f32 {
    let shape: Vec<usize> = reference.shape.clone().into();
    assert_eq!(ours.dims().to_vec(), shape, "{what}: shape");
    let a = ours.into_data().into_vec::<f32>().unwrap();
    let b = reference.clone().convert::<f32>().into_vec::<f32>().unwrap();
    let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    eprintln!("{what}: max abs diff {max:e}");
    max
}

/// otclip's embeddings and logits for the reference inputs, against transformers'.
fn compare(model: &DualEncoder<B>, r: &BTreeMap<String, TensorData>, what: &str) {
    let device = Default::default();
    let ints = |key: &str| Tensor::<B, 2, Int>::from_data(r[key].clone().convert::<i64>(), &device);
    let batch = TextBatch { input_ids: ints("input_ids"), attention_mask: ints("attention_mask") };
    let texts = model.encode_text(&batch);
    let images = model.encode_image(Tensor::from_data(r["pixel_values"].clone(), &device));
    let logits = images.clone().matmul(texts.clone().transpose()) * model.scale().unsqueeze::<2>();
    for (ours, key) in [(texts, "text_embeds"), (images, "image_embeds"), (logits, "logits_per_image")] {
        let diff = max_abs(ours, &r[key], &format!("{what} {key}"));
        assert!(diff <= TOLERANCE, "{what}: {key} differs from transformers by {diff:e}");
    }
}

fn check_case(case: &str) {
    let (model, config) = build(case);
    let tmp = tempfile::tempdir().unwrap();
    export_dual(&model, &config, tmp.path()).unwrap();
    let fixture = common::fixture(&format!("exports/{case}"));
    if std::env::var_os("OTCLIP_BLESS_EXPORTS").is_some() {
        std::fs::create_dir_all(&fixture).unwrap();
        for name in EXPORTED {
            std::fs::copy(tmp.path().join(name), fixture.join(name)).unwrap();
        }
        panic!("wrote {}; run tools/gen_export_fixtures.py, then rerun without OTCLIP_BLESS_EXPORTS", fixture.display());
    }
    for name in EXPORTED {
        let ours = std::fs::read(tmp.path().join(name)).unwrap();
        let committed = std::fs::read(fixture.join(name)).unwrap_or_else(|e| panic!("{}: {e}", fixture.join(name).display()));
        assert!(ours == committed, "{case}: {name} differs from the committed fixture; if the change is meant, see this file's header");
    }
    let path = fixture.join("reference.safetensors");
    assert!(path.is_file(), "{}: missing; run tools/gen_export_fixtures.py", path.display());
    let reference = read_tensors(&path).unwrap();
    compare(&model, &reference, case);
    // The committed folder also reads back into otclip, scalars of shape [] included.
    let (loaded, _, report) = load_exported::<B>(&fixture, &Default::default()).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty() && report.ignored.is_empty(), "{report}");
    compare(&loaded, &reference, &format!("{case} (reloaded)"));
}

/// CLIP vision (post-layernorm pooling, its own unused projection) + BERT (CLS), linear heads.
#[test]
fn export_clip_bert_linear_matches_transformers() {
    check_case("clip_bert_linear");
}

/// DINOv2 (mean over the patches) + XLM-R (RoBERTa positions, mean), MLP heads with biases.
#[test]
fn export_dinov2_xlmr_mlp_matches_transformers() {
    check_case("dinov2_xlmr_mlp");
}

/// DINOv3 (rotary positions, registers, layer scale, mean) + BERT (mean), linear heads.
#[test]
fn export_dinov3_bert_matches_transformers() {
    check_case("dinov3_bert");
}

/// A plain ViT with its pooler (no qkv bias) + BERT with its pooler, and no heads.
#[test]
fn export_vit_bert_pooler_matches_transformers() {
    check_case("vit_bert_pooler");
}

/// The export's config labels each tower by its family and carries every switch.
#[test]
fn export_config_names_the_tower_families() {
    let families: Vec<(String, String)> = ["clip_bert_linear", "dinov2_xlmr_mlp", "dinov3_bert", "vit_bert_pooler"]
        .iter()
        .map(|case| {
            let config = otclip::weights::export::hf_config(&build(case).1).unwrap();
            assert_eq!(config["model_type"], "otclip");
            assert_eq!(config["auto_map"]["AutoModel"], "modeling_otclip.OtclipModel");
            (config["vision_config"]["model_type"].as_str().unwrap().to_string(), config["text_config"]["model_type"].as_str().unwrap().to_string())
        })
        .collect();
    let expected = [("clip_vision_model", "bert"), ("dinov2", "roberta"), ("dinov3_vit", "bert"), ("vit", "bert")];
    assert_eq!(families, expected.map(|(a, b)| (a.to_string(), b.to_string())));
}

/// An export written before the scalars became 0-dimensional (`logit_scale` of shape [1], no
/// modelling code) still loads.
#[test]
fn older_exports_with_one_element_scalars_still_load() {
    let fixture = common::fixture("exports/vit_bert_pooler");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("config.json"), tmp.path().join("config.json")).unwrap();
    let bytes = std::fs::read(fixture.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (key, view) in tensors.tensors() {
        let shape = if view.shape().is_empty() { vec![1] } else { view.shape().to_vec() };
        owned.push((key, view.data().to_vec(), shape));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        owned.iter().map(|(k, b, s)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &tmp.path().join("model.safetensors")).unwrap();
    let (old, _, report) = load_exported::<B>(tmp.path(), &Default::default()).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{report}");
    let (new, _, _) = load_exported::<B>(&fixture, &Default::default()).unwrap();
    assert_eq!(old.logit_scale.val().into_data(), new.logit_scale.val().into_data());
    assert_eq!(old.logit_bias.val().into_data().into_vec::<f32>().unwrap(), vec![-5.0]);
}

/// `otclip export` of a trained run: the tokenizer and image processor configs, the model card
/// with the evaluation table (or none), and bad input named. With `OTCLIP_KEEP_EXPORT=DIR` the
/// export and otclip's embeddings of fixed captions and pixels are kept in DIR, for
/// `tools/gen_export_fixtures.py --check DIR`.
#[test]
fn export_of_a_trained_run_has_tokenizer_processor_and_card() {
    use burn::backend::Autodiff;
    use otclip::app::export::ExportTask;
    use otclip::train::{load_run, train, TrainConfig, TrainOptions};

    let device = Default::default();
    let overrides = [
        "data.synthetic.train_images=32",
        "data.synthetic.val_images=8",
        "data.synthetic.test_images=8",
        "optim.batch_size=16",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "model.projection_dim=16",
        "model.image_head.kind=mlp",
        "model.interpolation=\"bilinear\"",
    ]
    .map(String::from);
    let config = TrainConfig::parse(otclip::SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &overrides).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    train::<Autodiff<B>>(&config, &run_dir, &device, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let export = |out: &Path| ExportTask { run_dir: run_dir.clone(), checkpoint: "last".into(), out: out.to_path_buf() }.run_on(otclip::DeviceSpec::NdArray);
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();

    let out = tmp.path().join("export");
    export(&out).unwrap();
    let card = read(&out.join("README.md"));
    assert!(card.contains("## Evaluation\n\nNone: the run has no `results.json`"), "{card}");
    assert!(card.contains("trust_remote_code=True") && card.contains("lang = \"vi\"") && card.contains("otclip's built-in synthetic dataset"), "{card}");
    let json = |name: &str| -> serde_json::Value { serde_json::from_str(&read(&out.join(name))).unwrap() };
    let tokenizer = json("tokenizer_config.json");
    assert_eq!((tokenizer["pad_token"].as_str(), tokenizer["cls_token"].as_str(), tokenizer["model_max_length"].as_u64()), (Some("[PAD]"), Some("[CLS]"), Some(48)));
    let processor = json("preprocessor_config.json");
    assert_eq!(processor["image_processor_type"], "CLIPImageProcessor");
    assert_eq!((processor["size"]["shortest_edge"].as_u64(), processor["crop_size"]["height"].as_u64(), processor["resample"].as_u64()), (Some(55), Some(48), Some(2)));
    let config = json("config.json");
    assert_eq!((config["vision_config"]["model_type"].as_str(), config["image_head"]["kind"].as_str()), (Some("vit"), Some("mlp")));
    let header = otclip::weights::header::check_safetensors(&out.join("model.safetensors")).unwrap();
    assert!(header["logit_scale"].shape.is_empty() && header["logit_bias"].shape.is_empty(), "transformers' scalars are 0-dimensional");

    // The export embeds as the run does.
    let run = load_run::<B>(&run_dir, "last", &device).unwrap();
    let (exported, _, _) = load_exported::<B>(&out, &device).unwrap();
    // The second caption is longer than tokenizer.max_length (48): both sides truncate it.
    let long = "một hình vuông xanh lam nhỏ ở góc trái ".repeat(8);
    let captions = ["hai hình tròn màu đỏ", long.trim_end()];
    let encoded = run.batcher.tokenizer.encode_batch(&captions).unwrap();
    let ints = |v: &[i64]| Tensor::<B, 1, Int>::from_ints(v, &device).reshape([2, encoded.length]);
    let batch = TextBatch { input_ids: ints(&encoded.ids), attention_mask: ints(&encoded.mask) };
    let pixels = Tensor::<B, 4>::random([2, 3, 48, 48], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let (texts, images) = (run.model.encode_text(&batch), run.model.encode_image(pixels.clone()));
    assert_eq!(exported.encode_text(&batch).into_data(), texts.clone().into_data());
    assert_eq!(exported.encode_image(pixels.clone()).into_data(), images.clone().into_data());
    if let Some(keep) = std::env::var_os("OTCLIP_KEEP_EXPORT") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).unwrap();
        for file in std::fs::read_dir(&out).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, keep.join(file.file_name().unwrap())).unwrap();
        }
        let as_bytes = |data: TensorData| data.as_bytes().to_vec();
        let tensors: Vec<(&str, Vec<u8>, Vec<usize>, safetensors::Dtype)> = vec![
            ("input_ids", as_bytes(TensorData::new(encoded.ids.clone(), [2, encoded.length])), vec![2, encoded.length], safetensors::Dtype::I64),
            ("attention_mask", as_bytes(TensorData::new(encoded.mask.clone(), [2, encoded.length])), vec![2, encoded.length], safetensors::Dtype::I64),
            ("pixel_values", as_bytes(pixels.into_data()), vec![2, 3, 48, 48], safetensors::Dtype::F32),
            ("text_embeds", as_bytes(texts.into_data()), vec![2, 16], safetensors::Dtype::F32),
            ("image_embeds", as_bytes(images.into_data()), vec![2, 16], safetensors::Dtype::F32),
        ];
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            tensors.iter().map(|(k, b, s, d)| (k.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
        safetensors::serialize_to_file(views, None, &keep.join("otclip_embeddings.safetensors")).unwrap();
        std::fs::write(keep.join("otclip_captions.json"), serde_json::to_string(&captions).unwrap()).unwrap();
    }

    // With results.json, the card has the table; a bad one is named and nothing is written.
    let report = otclip::evaluate_run::<B>(&run_dir, "last", otclip::data::Split::Test, None, &device).unwrap();
    std::fs::write(run_dir.join("results.json"), serde_json::to_string_pretty(&report.to_json()).unwrap()).unwrap();
    export(&out).unwrap();
    let card = read(&out.join("README.md"));
    assert!(card.contains("| text → image |") && card.contains(&format!("Mean recall: {:.2} %", report.metrics.mean_recall() * 100.0)), "{card}");
    std::fs::write(run_dir.join("results.json"), "{\"dataset\": \"x\", \"metrics\": {}}").unwrap();
    let fresh = tmp.path().join("fresh");
    let message = format!("{:#}", export(&fresh).unwrap_err());
    assert!(message.contains("results.json") && message.contains("image_retrieval_recall@1"), "{message}");
    assert!(!fresh.exists(), "nothing is written when the run's files are bad");
    std::fs::write(run_dir.join("results.json"), "{").unwrap();
    let message = format!("{:#}", export(&fresh).unwrap_err());
    assert!(message.contains("results.json") && message.contains("not valid JSON"), "{message}");

    // The export resizes with the run's filter; a filter otclip lacks is named, not guessed.
    use otclip::app::trained::{ModelSource, TrainedModel};
    let source = ModelSource::Export { dir: out.clone() };
    assert_eq!(TrainedModel::<B>::load(&source, &device).unwrap().batcher.interpolation, otclip::data::resample::Interpolation::Bilinear);
    let processor_path = out.join("preprocessor_config.json");
    std::fs::write(&processor_path, read(&processor_path).replace("\"resample\": 2", "\"resample\": 0")).unwrap();
    let message = format!("{:#}", TrainedModel::<B>::load(&source, &device).err().unwrap());
    assert!(message.contains("preprocessor_config.json") && message.contains("`resample` = 0") && message.contains("2 (bilinear) or 3 (bicubic)"), "{message}");
}
