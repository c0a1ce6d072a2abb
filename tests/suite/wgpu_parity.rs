//! The same weights give the same embeddings on ndarray and on wgpu (lavapipe in CI).
//! Without a Vulkan adapter the test says so; with OTCLIP_REQUIRE_WGPU=1 (CI) that is a failure.
#![cfg(feature = "wgpu")]

use crate::common;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::NdArray;
use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, Recorder};
use otclip::backend::WgpuBackend;
use otclip::model::{BertConfig, DualEncoderConfig, TextBatch, VitConfig};

#[test]
fn forward_matches_ndarray() {
    if !common::wgpu_available("the ndarray/wgpu parity check") {
        return;
    }
    let config = DualEncoderConfig::new(
        VitConfig::new(32, 8, 64, 2, 4, 128).into(),
        BertConfig::new(100, 64, 2, 4, 128).with_max_position_embeddings(32),
        48,
    );
    let cpu = Default::default();
    let gpu = WgpuDevice::DefaultDevice;
    // One set of weights, serialised once and loaded on both devices. (Cloning a freshly built
    // model would not do: burn initialises parameters lazily, so each clone draws its own.)
    let recorder = burn::record::BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(config.init::<NdArray<f32>>(&cpu).into_record(), ()).unwrap();
    let model = config.init::<NdArray<f32>>(&cpu).load_record(recorder.load(bytes.clone(), &cpu).unwrap());
    let gpu_model = config.init::<WgpuBackend>(&gpu).load_record(recorder.load(bytes, &gpu).unwrap());

    let pixels: Vec<f32> = (0..2 * 3 * 32 * 32).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let ids: Vec<i64> = vec![2, 17, 45, 3, 0, 0, 2, 9, 99, 54, 23, 3];
    let mask: Vec<i64> = vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1];

    fn run<B: Backend>(model: &otclip::model::DualEncoder<B>, pixels: &[f32], ids: &[i64], mask: &[i64], device: &B::Device) -> Vec<f32> {
        let images = model.encode_image(Tensor::<B, 1>::from_floats(pixels, device).reshape([2, 3, 32, 32]));
        let text = TextBatch {
            input_ids: Tensor::<B, 1, Int>::from_ints(ids, device).reshape([2, 6]),
            attention_mask: Tensor::<B, 1, Int>::from_ints(mask, device).reshape([2, 6]),
        };
        let texts = model.encode_text(&text);
        Tensor::cat(vec![images, texts], 0).into_data().convert::<f32>().into_vec().unwrap()
    }
    let a = run(&model, &pixels, &ids, &mask, &cpu);
    let b = run(&gpu_model, &pixels, &ids, &mask, &gpu);
    let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max <= 1e-4, "ndarray and wgpu differ by {max}");
    eprintln!("ndarray vs wgpu: max abs diff {max:e} over {} values", a.len());
}

/// Every convolutional tower's fixture on wgpu: the same pooled features as torchvision and timm,
/// in eval mode and with batch statistics.
#[test]
fn convnets_match_their_libraries_on_wgpu() {
    use crate::convnets::{case, compare_running_stats, expected_running_stats, max_diff, running_stats, tensor, CASES};
    use otclip::model::convnet::ConvArch;
    use otclip::weights::load_conv_tower;
    if !common::wgpu_available("the convolutional towers on wgpu") {
        return;
    }
    let device = WgpuDevice::DefaultDevice;
    for name in CASES {
        let case = case(name);
        let (tower, _) = load_conv_tower::<WgpuBackend>(&case.config, case.source, &case.weights, false, &device).unwrap();
        let pixels: Tensor<WgpuBackend, 4> = tensor(&case.reference["pixels"], &device);
        let (eval, _) = tower.forward_with(pixels.clone(), false);
        let (train, stats) = tower.forward_with(pixels, true);
        let (eval_diff, train_diff) = (max_diff(eval, &case.reference["eval_pooled"]), max_diff(train, &case.reference["train_pooled"]));
        eprintln!("{name} on wgpu: pooled features differ by {eval_diff:e} (eval), {train_diff:e} (train)");
        assert!(eval_diff <= 1e-4 && train_diff <= 1e-4, "{name} on wgpu: eval {eval_diff}, train {train_diff}");
        if !matches!(case.config.arch, ConvArch::Swin(_)) {
            let worst = compare_running_stats(&running_stats(&tower.absorb(stats)), &expected_running_stats(&case)).unwrap_or_else(|e| panic!("{name} on wgpu: {e}"));
            eprintln!("{name} on wgpu: running statistics within {worst:e}");
        }
    }
}

/// The translation models on wgpu: transformers' encoder output and first-step logits within
/// 1e-4, and its greedy and beam-4 token ids for one batch.
#[test]
fn translation_models_match_transformers_on_wgpu() {
    use crate::translation::{floats, ids, source_ids, with_kwargs, MODELS};
    use otclip::model::seq2seq::generate::generate;
    use otclip::weights::{generation_config, load_seq2seq};
    if !common::wgpu_available("the translation models on wgpu") {
        return;
    }
    let reference = common::read_json("translation/reference.json");
    let device = WgpuDevice::DefaultDevice;
    for name in MODELS {
        let section = &reference[name];
        let dir = common::fixture(&format!("translation/{name}"));
        let (model, _) = load_seq2seq::<WgpuBackend>(&dir, &device).unwrap();
        let base = generation_config(&dir).unwrap();
        let mut worst = 0f64;
        for (case, logits_case) in section["encoder"].as_array().unwrap().iter().zip(section["first_logits"].as_array().unwrap()) {
            let index = case["sentence"].as_u64().unwrap() as usize;
            assert_eq!(case["sentence"], logits_case["sentence"]);
            let encoded = model.encode(&[source_ids(section, index)]).unwrap();
            let hidden: Vec<f64> = encoded.hidden.clone().into_data().convert::<f64>().into_vec().unwrap();
            let mut state = model.start(&encoded, 1);
            let logits: Vec<f64> = model.step(&mut state, &[base.decoder_start_token_id]).unwrap().into_data().convert::<f64>().into_vec().unwrap();
            for (ours, theirs, what) in [(hidden, floats(&case["hidden"]), "encoder output"), (logits, floats(&logits_case["logits"]), "first-step logits")] {
                let diff = common::max_rel_diff(&ours, &theirs);
                assert!(diff <= 1e-4, "{name} sentence {index} on wgpu: {what} differ by {diff:e}");
                worst = worst.max(diff);
            }
        }
        // One batch of sentences: lavapipe is slow, and the ndarray suite checks all of them.
        let sources: Vec<Vec<u32>> = (0..8).map(|i| source_ids(section, i)).collect();
        for case in section["generate"].as_array().unwrap().iter().filter(|c| ["greedy", "beam4"].contains(&c["name"].as_str().unwrap())) {
            let config = with_kwargs(base.clone(), &case["kwargs"]);
            let batch = case["batch_size"].as_u64().unwrap() as usize;
            let ours: Vec<Vec<u32>> = sources.chunks(batch).flat_map(|chunk| generate(&model, chunk, &config, true).unwrap()).collect();
            for (i, (row, expected)) in ours.iter().zip(case["sequences"].as_array().unwrap()).enumerate() {
                let expected = ids(expected);
                assert!(expected.starts_with(row) && expected[row.len()..].iter().all(|&t| t == config.pad_token_id), "{name} {} sentence {i} on wgpu: ours {row:?}, transformers {expected:?}", case["name"]);
            }
        }
        eprintln!("{name} on wgpu: encoder and first-step logits within {worst:e}; greedy and beam-4 ids of 8 sentences identical");
    }
}
