//! Pretrained towers against the original implementations: tiny random BERT, XLM-R, CLIP vision,
//! DINOv2 (transformers) and DINOv3 ViT (timm) with every weight perturbed, made by
//! tools/gen_encoder_fixtures.py. Max abs diff ≤ 1e-4 on ndarray and on wgpu.

use crate::common;

use std::collections::BTreeMap;

use burn::backend::NdArray;
use burn::prelude::*;
use burn::tensor::TensorData;
use otclip::model::{Pooling, TextBatch};
use otclip::weights::{load_image_tower, load_text_tower, read_tensors, TowerSource};

const TOLERANCE: f32 = 1e-4;

fn reference(name: &str) -> BTreeMap<String, TensorData> {
    read_tensors(&common::fixture(&format!("towers/{name}/reference.safetensors"))).unwrap()
}

fn floats<B: Backend, const D: usize>(data: &TensorData, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(data.clone().convert::<B::FloatElem>(), device)
}

fn ints<B: Backend>(data: &TensorData, device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(data.clone().convert::<B::IntElem>(), device)
}

/// Max |ours − reference|, over the positions `keep` marks (all when `None`).
fn diff<B: Backend, const D: usize>(ours: Tensor<B, D>, reference: &TensorData, what: &str) -> f32 {
    let shape: Vec<usize> = reference.shape.clone().into();
    assert_eq!(ours.dims().to_vec(), shape, "{what}: shape");
    let a = ours.into_data().convert::<f32>().into_vec::<f32>().unwrap();
    let b = reference.clone().convert::<f32>().into_vec::<f32>().unwrap();
    let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    eprintln!("{what}: max abs diff {max:e}");
    max
}

fn text_batch<B: Backend>(r: &BTreeMap<String, TensorData>, device: &B::Device) -> TextBatch<B> {
    TextBatch { input_ids: ints(&r["input_ids"], device), attention_mask: ints(&r["attention_mask"], device) }
}

/// Zeroes the hidden states of padding positions (HF computes them too, but nothing uses them).
fn masked<B: Backend>(hidden: Tensor<B, 3>, mask: &TensorData, device: &B::Device) -> Tensor<B, 3> {
    hidden * floats::<B, 2>(&mask.clone().convert::<f32>(), device).unsqueeze_dim::<3>(2)
}

/// A BERT-layout tower from `towers/NAME` against transformers: the hidden states with token
/// types, the pooler, mean pooling, and the ids its `tokenizer.json` gives `texts`.
fn check_bert_layout<B: Backend>(name: &str, texts: &[&str], device: &B::Device, push: &mut impl FnMut(&str, f32)) {
    let r = reference(name);
    let tower = load_text_tower::<B>(&common::fixture(&format!("towers/{name}")), Some(Pooling::Pooler), 64, false, device).unwrap();
    assert!(tower.report.missing.is_empty() && tower.report.unused.is_empty(), "{}", tower.report);
    let batch = text_batch::<B>(&r, device);
    let hidden = tower.model.forward_with_types(&batch, ints(&r["token_type_ids"], device));
    let (hidden_label, pooler_label, mean_label) = (format!("{name} last_hidden_state"), format!("{name} pooler_output"), format!("{name} mean"));
    push(&hidden_label, diff(masked(hidden.clone(), &r["attention_mask"], device), &mask_ref::<B>(&r, "last_hidden_state", device), &hidden_label));
    push(&pooler_label, diff(tower.model.pool(hidden, &batch), &r["pooler_output"], &pooler_label));
    let mut model = tower.model;
    model.pooling = Pooling::Mean;
    push(&mean_label, diff(model.embed(&batch), &r["mean_pooled"], &mean_label));
    let encoded = tower.tokenizer.encode_batch(texts).unwrap();
    let ids: Vec<i64> = r["input_ids"].clone().convert::<i64>().into_vec().unwrap();
    assert_eq!(encoded.ids, ids, "{name} tokenizer.json ids");
}

fn check_towers<B: Backend>(device: &B::Device) -> Vec<(String, f32)> {
    let mut results = Vec::new();
    let mut push = |what: &str, value: f32| results.push((what.to_string(), value));

    // BERT: token types, the pooler, mean pooling.
    check_bert_layout::<B>("bert", &["a red bicycle in the park", "hai con chó chạy trên bãi biển xanh"], device, &mut push);
    // A multilingual-BERT-shaped tower: a cased WordPiece vocabulary with mBERT's special-token
    // layout (tools/gen_mbert_fixture.py), on Vietnamese, Azerbaijani and mixed-script text; its
    // ids keep the case (İ, Ə and upper-case words).
    let expected = common::read_json("towers/mbert/expected.json");
    let texts: Vec<&str> = expected.as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    check_bert_layout::<B>("mbert", &texts, device, &mut push);

    // XLM-R: positions offset by the padding index, pooler.
    let r = reference("xlmr");
    let tower = load_text_tower::<B>(&common::fixture("towers/xlmr"), Some(Pooling::Mean), 64, false, device).unwrap();
    let batch = text_batch::<B>(&r, device);
    let hidden = tower.model.forward(&batch);
    push("xlmr last_hidden_state", diff(masked(hidden, &r["attention_mask"], device), &mask_ref::<B>(&r, "last_hidden_state", device), "xlmr last_hidden_state"));
    push("xlmr mean", diff(tower.model.embed(&batch), &r["mean_pooled"], "xlmr mean"));
    let encoded = tower.tokenizer.encode_batch(&["a red bicycle in the park", "hai con chó chạy trên bãi biển xanh"]).unwrap();
    let ids: Vec<i64> = r["input_ids"].clone().convert::<i64>().into_vec().unwrap();
    assert_eq!(encoded.ids, ids, "XLM-R (Unigram) tokenizer.json ids");

    // CLIP vision: QuickGELU, pre_layrnorm, post_layernorm on the class token, the projection.
    let r = reference("clip_vision");
    let tower = load_image_tower::<B>(&TowerSource::Hf(common::fixture("towers/clip_vision")), Some(Pooling::Pooler), false, device).unwrap();
    assert!(tower.report.unused.is_empty(), "{}", tower.report);
    let pixels = floats::<B, 4>(&r["pixel_values"], device);
    push("clip last_hidden_state", diff(tower.model.forward(pixels.clone()), &r["last_hidden_state"], "clip last_hidden_state"));
    let pooled = tower.model.embed(pixels);
    push("clip pooler_output", diff(pooled.clone(), &r["pooler_output"], "clip pooler_output"));
    push("clip image_embeds", diff(tower.model.project(pooled).unwrap(), &r["image_embeds"], "clip image_embeds"));

    // DINOv2: layer scale, class token, interpolated positions at 48 px.
    let r = reference("dinov2");
    let tower = load_image_tower::<B>(&TowerSource::Hf(common::fixture("towers/dinov2")), None, false, device).unwrap();
    let pixels = floats::<B, 4>(&r["pixel_values"], device);
    push("dinov2 last_hidden_state", diff(tower.model.forward(pixels.clone()), &r["last_hidden_state"], "dinov2 last_hidden_state"));
    push("dinov2 pooler_output", diff(tower.model.embed(pixels), &r["pooler_output"], "dinov2 pooler_output"));
    let big = floats::<B, 4>(&r["pixel_values_48"], device);
    push("dinov2 48px", diff(tower.model.forward(big), &r["last_hidden_state_48"], "dinov2 last_hidden_state at 48 px"));
    // `--pooling pooler` is transformers' pooler_output for DINOv2: the normed class token.
    let tower = load_image_tower::<B>(&TowerSource::Hf(common::fixture("towers/dinov2")), Some(Pooling::Pooler), false, device).unwrap();
    push("dinov2 pooling=pooler", diff(tower.model.embed(floats::<B, 4>(&r["pixel_values"], device)), &r["pooler_output"], "dinov2 pooling = pooler"));

    // timm DINOv3: rotary embeddings, registers, layer scale, avg pooling.
    let r = reference("dinov3_timm");
    let source: TowerSource = format!("timm:vit_base_patch16_dinov3@{}", common::fixture("towers/dinov3_timm").display()).parse().unwrap();
    let tower = load_image_tower::<B>(&source, None, false, device).unwrap();
    assert!(tower.report.unused.is_empty() && tower.report.missing.is_empty(), "{}", tower.report);
    let pixels = floats::<B, 4>(&r["pixel_values"], device);
    push("dinov3 features", diff(tower.model.forward(pixels.clone()), &r["last_hidden_state"], "dinov3 forward_features"));
    push("dinov3 avg", diff(tower.model.embed(pixels.clone()), &r["pooled"], "dinov3 avg pooled"));
    // DINOv3's pooler_output (transformers' DINOv3ViTModel) is the class token after the norm.
    let tower = load_image_tower::<B>(&source, Some(Pooling::Pooler), false, device).unwrap();
    let [batch, _, width] = floats::<B, 3>(&r["last_hidden_state"], device).dims();
    let class_token = floats::<B, 3>(&r["last_hidden_state"], device).slice([0..batch, 0..1]).reshape([batch, width]).into_data();
    push("dinov3 pooling=pooler", diff(tower.model.embed(pixels), &class_token, "dinov3 pooling = pooler"));
    results
}

/// The reference hidden states with padding positions zeroed.
fn mask_ref<B: Backend>(r: &BTreeMap<String, TensorData>, key: &str, device: &B::Device) -> TensorData {
    masked(floats::<B, 3>(&r[key], device), &r["attention_mask"], device).into_data().convert::<f32>()
}

fn assert_all(results: &[(String, f32)], backend: &str) {
    let bad: Vec<_> = results.iter().filter(|(_, d)| !(*d <= TOLERANCE)).collect();
    assert!(bad.is_empty(), "{backend}: outputs differ from the reference by more than {TOLERANCE}: {bad:?}");
}

#[test]
fn towers_match_reference_on_ndarray() {
    assert_all(&check_towers::<NdArray<f32>>(&Default::default()), "ndarray");
}

#[cfg(feature = "wgpu")]
#[test]
fn towers_match_reference_on_wgpu() {
    if !common::wgpu_available("the pretrained-tower fixtures on wgpu") {
        return;
    }
    assert_all(&check_towers::<otclip::backend::WgpuBackend>(&burn::backend::wgpu::WgpuDevice::DefaultDevice), "wgpu");
}

#[test]
fn pooler_pooling_from_scratch_builds_its_pooler() {
    use otclip::model::VitConfig;
    let config = otclip::train::TrainConfig::parse(
        otclip::SYNTHETIC_VI_CONFIG,
        "synthetic_vi.toml",
        &["model.image_pooling=\"pooler\"".to_string(), "model.text_pooling=\"pooler\"".to_string()],
    )
    .unwrap();
    let model = config.model_config(120);
    assert!(model.vision.vit().unwrap().add_pooling_layer && model.text.add_pooling_layer);
    let device = Default::default();
    let dual = model.init::<NdArray<f32>>(&device);
    assert!(dual.vision_model.as_ref().unwrap().pooler.is_some() && dual.text_model.pooler.is_some());
    // A BERT config that pools with a pooler it lacks is refused, naming the key.
    let mut text = model.text.clone();
    text.add_pooling_layer = false;
    let error = text.validate().unwrap_err().to_string();
    assert!(error.contains("pooling") && error.contains("pooler"), "{error}");
    // A ViT without a dense pooler pools the normed class token (DINOv2's pooler_output).
    let vit = VitConfig::new(16, 8, 16, 1, 2, 32).with_pooling(Pooling::Pooler);
    let tower = vit.init::<NdArray<f32>>(&device);
    let pixels = Tensor::<NdArray<f32>, 4>::random([2, 3, 16, 16], burn::tensor::Distribution::Default, &device);
    let hidden = tower.forward(pixels.clone());
    let class_token: Vec<f32> = hidden.slice([0..2, 0..1]).reshape([2, 16]).into_data().into_vec().unwrap();
    let pooled: Vec<f32> = tower.embed(pixels).into_data().into_vec().unwrap();
    assert_eq!(pooled, class_token);
}
