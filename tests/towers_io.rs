//! PhoBERT's fastBPE tokenizer against the reference algorithm, loading errors, and the exact
//! export → load round trip of a dual encoder.

mod common;

use burn::backend::NdArray;
use burn::module::Module;
use burn_store::ModuleSnapshot;
use otclip::model::{BertConfig, DualEncoderConfig, VitConfig};
use otclip::text::CaptionTokenizer;
use otclip::weights::export::{export_dual, load_exported};
use otclip::weights::{load_image_tower, load_text_tower, TowerSource};

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
        VitConfig::new(32, 8, 32, 2, 4, 64).with_layer_scale(true).with_num_register_tokens(2),
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
    assert_eq!(config.vision.num_register_tokens, 4);
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
