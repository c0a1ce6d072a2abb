//! `otclip translate` on the tiny fixture models: `--text` prints transformers' beam-4
//! translations; a dataset becomes a JSONL dataset that `jsonl:` reads back, each distinct
//! caption translated once, empty and over-long captions counted; a killed run resumes and
//! finishes with every caption translated exactly once; no user file is overwritten.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use otclip::data::dataset::ImageTextDataset;
use otclip::data::DatasetSpec;
use otclip::text::translation_tokenizer::TranslationTokenizer;
use serde_json::Value;

use crate::common::{fixture, otclip, read_json};
use crate::translation::{ids, source_ids};

fn model(name: &str) -> String {
    fixture(&format!("translation/{name}")).display().to_string()
}

#[test]
fn text_translations_are_transformers_beam_search_decoded() {
    let reference = read_json("translation/reference.json");
    for (name, langs) in [("marian", vec![]), ("m2m100", vec!["--src-lang", "en", "--tgt-lang", "vi"])] {
        let section = &reference[name];
        let case = section["generate"].as_array().unwrap().iter().find(|c| c["name"] == "beam4").unwrap();
        let tokenizer = TranslationTokenizer::from_dir(&fixture(&format!("translation/{name}"))).unwrap();
        let picked = [0usize, 3, 9, 18];
        let model = model(name);
        let mut args = vec!["translate", "--model", model.as_str(), "--num-beams", "4", "--max-new-tokens", "24"];
        args.extend(&langs);
        for &i in &picked {
            args.extend(["--text", section["sentences"][i].as_str().unwrap()]);
            assert!(!source_ids(section, i).is_empty());
        }
        let (ok, stdout, stderr) = otclip(&args);
        assert!(ok, "{name}: {stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), picked.len(), "{name}: one line per text:\n{stdout}");
        for (line, &i) in lines.iter().zip(&picked) {
            let expected = ids(&case["sequences"][i]);
            assert_eq!(*line, tokenizer.decode(&expected).unwrap().trim(), "{name} sentence {i}");
        }
    }
    let (ok, _, stderr) = otclip(&["translate", "--model", &model("m2m100"), "--text", "a dog"]);
    assert!(!ok && stderr.contains("--tgt-lang"), "NLLB without a target language: {stderr}");
}

/// A JSONL dataset of `count` distinct captions, plus a duplicate, an empty and an over-long one.
fn write_dataset(dir: &Path, count: usize) -> String {
    let animals = ["dog", "cat", "horse", "child", "woman", "man", "bird", "boy"];
    let places = ["on the grass", "in the park", "by the river", "on a red bench", "near the house"];
    let mut lines = Vec::new();
    for i in 0..count {
        let caption = format!("A {} number {i} is {} {}.", animals[i % animals.len()], ["running", "sitting", "playing"][i % 3], places[i % places.len()]);
        lines.push(serde_json::json!({ "image": format!("images/{i}.jpg"), "caption": caption, "image_id": i.to_string(), "split": "train" }));
    }
    lines.push(serde_json::json!({ "image": "images/0.jpg", "caption": lines[0]["caption"], "image_id": "0", "split": "train" }));
    lines.push(serde_json::json!({ "image": "images/1.jpg", "caption": "   ", "image_id": "1", "split": "train" }));
    let long = "a dog runs on the green grass near a red house ".repeat(12);
    lines.push(serde_json::json!({ "image": "images/2.jpg", "caption": long, "image_id": "2", "split": "train" }));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let path = dir.join("captions.jsonl");
    std::fs::write(&path, text).unwrap();
    format!("jsonl:{}?split=train", path.display())
}

fn translate_args<'a>(data: &'a str, out: &'a str, model: &'a str) -> Vec<&'a str> {
    vec!["translate", "--model", model, "--data", data, "--out", out, "--num-beams", "4", "--max-new-tokens", "24", "--batch-size", "1"]
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_dataset_becomes_a_jsonl_dataset_and_a_killed_run_resumes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let count = 400;
    let data = write_dataset(dir.path(), count);
    let model = model("marian");
    // An uninterrupted run: the reference output.
    let whole = dir.path().join("whole.jsonl");
    let (ok, stdout, stderr) = otclip(&translate_args(&data, whole.to_str().unwrap(), &model));
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("{} captions ({} distinct): {} translated", count + 2, count + 1, count + 1)), "{stdout}");
    eprintln!("{stdout}");
    let expected = rows(&whole);
    let empty_translations = count + 2 - expected.len();
    assert!(stdout.contains(&format!("1 empty captions and {empty_translations} empty translations left out, 1 cut")), "{stdout}");
    assert!(empty_translations < count / 4, "the tiny model translated most captions to something: {stdout}");
    let duplicate = |r: &&Value| r["image_id"] == "0";
    let copies: Vec<&Value> = expected.iter().filter(duplicate).collect();
    assert!(copies.len() == 2 || copies.is_empty(), "both copies of the duplicated caption are written, or neither");
    if copies.len() == 2 {
        assert_eq!(copies[0]["caption"], copies[1]["caption"], "a duplicate caption gets the same translation");
    }
    assert_eq!(expected.iter().filter(|r| r["truncated"] == true).count(), 1);
    assert!(expected.iter().all(|r| r["model"] == model.as_str() && r["source_caption"].is_string() && r["split"] == "train"));
    let spec: DatasetSpec = format!("jsonl:{}?split=train", whole.display()).parse().unwrap();
    let read_back = ImageTextDataset::read(&spec).unwrap();
    assert_eq!(read_back.items.len(), expected.len(), "every written row reads back");
    assert_eq!(read_back.items[5].caption, expected[5]["caption"].as_str().unwrap());
    let image = expected[5]["image"].as_str().unwrap();
    assert!(image.starts_with("images/"), "image paths are kept relative to the output's folder: {image}");
    assert_eq!(read_back.items[5].image, dir.path().join(image), "image paths resolve as in the source dataset");

    // Killed after a few batches, then resumed; written beside (not above) the images this time.
    std::fs::create_dir(dir.path().join("translated")).unwrap();
    let out = dir.path().join("translated/resumed.jsonl");
    let progress = dir.path().join("translated/resumed.jsonl.progress.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_otclip")).args(translate_args(&data, out.to_str().unwrap(), &model)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let lines = |p: &Path| std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0);
    while lines(&progress) < 12 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress within two minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "a killed run left no output");
    let done_before = lines(&progress) - 1;
    assert!(done_before < count + 1, "the run was killed before it finished");
    // A line cut short by the kill is dropped and redone.
    let mut text = std::fs::read_to_string(&progress).unwrap();
    text.push_str("{\"source\": \"A dog num");
    std::fs::write(&progress, &text).unwrap();
    // Other settings do not mix with the earlier ones.
    let mut other = translate_args(&data, out.to_str().unwrap(), &model);
    other[8] = "2";
    let (ok, _, stderr) = otclip(&other);
    assert!(!ok && stderr.contains("progress.jsonl") && stderr.contains("other settings"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&progress).unwrap(), text, "a refused rerun left the progress file alone");

    let (ok, stdout, stderr) = otclip(&translate_args(&data, out.to_str().unwrap(), &model));
    assert!(ok, "{stderr}");
    let now = count + 1 - done_before;
    assert!(stdout.contains(&format!("{now} translated")) && stdout.contains(&format!("{done_before} from the interrupted run")), "{stdout}");
    assert!(!progress.exists(), "the progress file is removed when the output is complete");
    let without_image = |mut rows: Vec<Value>| {
        rows.iter_mut().for_each(|r| drop(r.as_object_mut().unwrap().remove("image")));
        rows
    };
    assert_eq!(without_image(rows(&out)), without_image(expected.clone()), "the resumed output equals the uninterrupted one");
    let read_as = stdout.trim().rsplit("read them as ").next().unwrap();
    assert_eq!(read_as, format!("jsonl:{}?images=../images", out.display()));
    let read_back = ImageTextDataset::read(&format!("{read_as}&split=train").parse().unwrap()).unwrap();
    assert_eq!(read_back.items[5].image, dir.path().join("translated/../images/5.jpg"), "the printed spec finds the images");

    // The output is never overwritten.
    let before = std::fs::read(&out).unwrap();
    let (ok, _, stderr) = otclip(&translate_args(&data, out.to_str().unwrap(), &model));
    assert!(!ok && stderr.contains("does not overwrite"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
}
