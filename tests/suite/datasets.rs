//! Every dataset reader on its fixture (tests/fixtures/datasets, written by
//! tools/gen_dataset_fixtures.py): exact counts, exact skip reasons, and the errors for
//! malformed annotation files.

use std::collections::BTreeMap;

use otclip::data::{DatasetSpec, ImageTextDataset, SkipReason, Split};

use crate::common::{self, otclip};

fn spec(format: &str, path: &str, query: &str) -> DatasetSpec {
    let path = common::fixture(&format!("datasets/{path}"));
    let text = if query.is_empty() { format!("{format}:{}", path.display()) } else { format!("{format}:{}?{query}", path.display()) };
    DatasetSpec::parse(&text).unwrap()
}

fn open(format: &str, path: &str, query: &str) -> ImageTextDataset {
    spec(format, path, query).open().unwrap_or_else(|e| panic!("{format}:{path}?{query}: {e:#}"))
}

fn skips(dataset: &ImageTextDataset) -> BTreeMap<&'static str, usize> {
    dataset.skipped_by_reason()
}

fn counts(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    pairs.iter().copied().collect()
}

#[test]
fn uit_openviic_test_split_skips_corrupt_missing_unsafe_and_empty() {
    let d = open("uit-openviic", "uit-openviic", "split=test");
    assert_eq!((d.image_count(), d.caption_count()), (2, 7));
    assert_eq!(skips(&d), counts(&[("corrupt_image", 1), ("empty_caption", 2), ("missing_image", 1), ("unsafe_path", 1)]));
    let ids: Vec<&str> = d.items.iter().map(|i| i.image_id.as_str()).collect();
    assert_eq!(ids[0], "00000005095.jpg", "11-digit names are kept as written");
    // The combining-diacritics caption comes out in NFC, equal to its precomposed spelling.
    assert_eq!(d.items[1].caption, "Hai người đàn ông đang đứng cạnh chiếc xe máy.");
    assert!(d.skipped.iter().any(|s| s.reason == SkipReason::CorruptImage && s.item.ends_with("00000000017.jpg")));
    assert!(d.skipped.iter().any(|s| s.reason == SkipReason::MissingImage && s.item.ends_with("00000000018.jpg")));
    let captioned = d.to_captioned();
    assert_eq!(captioned.entries.len(), 2);
    assert_eq!(captioned.entries[1].captions.len(), 2);
    assert_eq!(captioned.language, "vi");
}

#[test]
fn uit_openviic_splits_and_dev_alias() {
    let s = spec("uit-openviic", "uit-openviic", "");
    assert_eq!(s.available_splits(), vec![Split::Train, Split::Val, Split::Test]);
    let dev = open("uit-openviic", "uit-openviic", "split=dev");
    let val = open("uit-openviic", "uit-openviic", "split=val");
    assert_eq!((dev.image_count(), dev.caption_count()), (1, 2));
    assert_eq!(dev.items, val.items);
    let train = open("uit-openviic", "uit-openviic", "split=train");
    assert_eq!((train.image_count(), train.caption_count(), train.skipped.len()), (2, 4, 0));
    let err = s.open().unwrap_err().to_string();
    assert!(err.contains("split=train|val|test"), "{err}");
}

#[test]
fn ktvic_reads_captions_or_segmented_captions() {
    let d = open("ktvic", "ktvic", "split=test");
    assert_eq!((d.image_count(), d.caption_count(), d.skipped.len()), (2, 10, 0));
    assert!(d.items[0].image.ends_with("public-test-images/00000000001.jpg"));
    let seg = open("ktvic", "ktvic", "split=test&text=segment_caption");
    assert!(seg.items.iter().any(|i| i.caption.contains("đàn_ông")), "segment_caption keeps `_`");
    let train = open("ktvic", "ktvic", "split=train");
    assert_eq!((train.image_count(), train.caption_count()), (2, 10));
    assert!(train.items[0].image.ends_with("train-images/00000000001.jpg"));
    assert!(spec("ktvic", "ktvic", "split=val").open().unwrap_err().to_string().contains("no split `val`"));
}

#[test]
fn xm3600_first_and_all_captions_and_missing_language() {
    let first = open("xm3600", "xm3600", "lang=vi");
    assert_eq!((first.image_count(), first.caption_count()), (2, 2));
    assert_eq!(skips(&first), counts(&[("missing_language", 1)]));
    assert!(first.name.contains("captions=first"), "the name records the caption mode: {}", first.name);
    let all = open("xm3600", "xm3600", "lang=vi&captions=all");
    assert_eq!((all.image_count(), all.caption_count()), (2, 5));
    assert!(all.items[0].image.ends_with("images/000411001ff7dd4f.jpg"));
    assert_eq!(all.items[2].caption, "Một người phụ nữ đội nón lá bán hoa quả ở chợ.");
    let en = open("xm3600", "xm3600", "lang=en&captions=all");
    assert_eq!((en.image_count(), en.caption_count(), en.skipped.len()), (3, 4, 0));
    let err = spec("xm3600", "xm3600", "").open().unwrap_err().to_string();
    assert!(err.contains("lang=") && err.contains("en, vi"), "{err}");
}

#[test]
fn flickr_token_files_with_crlf_and_split_lists() {
    let all = open("flickr-token", "flickr8k", "");
    assert_eq!((all.image_count(), all.caption_count()), (4, 20));
    assert_eq!(skips(&all), counts(&[("missing_image", 1)]));
    assert!(all.skipped[0].item.ends_with("2258277193_586949ec62.jpg.1"));
    assert!(all.items.iter().all(|i| !i.caption.contains('\r')), "CRLF endings are stripped");
    let test = open("flickr-token", "flickr8k", "split=test");
    assert_eq!((test.image_count(), test.caption_count(), test.skipped.len()), (1, 5, 0));
    let train = open("flickr-token", "flickr8k", "split=train");
    assert_eq!((train.image_count(), train.caption_count()), (2, 10));
    assert_eq!(spec("flickr-token", "flickr8k", "").available_splits(), vec![Split::Train, Split::Val, Split::Test]);
    let f30k = open("flickr-token", "flickr30k", "");
    assert_eq!((f30k.image_count(), f30k.caption_count(), f30k.skipped.len()), (2, 10, 0));
    assert!(spec("flickr-token", "flickr30k", "split=test").open().is_err(), "Flickr30k has no split lists");
}

#[test]
fn flickr_kaggle_csvs() {
    let f8k = open("flickr-csv", "flickr8k-kaggle", "");
    assert_eq!((f8k.image_count(), f8k.caption_count(), f8k.skipped.len()), (2, 10, 0));
    assert!(f8k.items.iter().any(|i| i.caption.ends_with(", indoors")), "quoted fields keep their commas");
    let f30k = open("flickr-csv", "flickr30k-kaggle", "");
    assert_eq!((f30k.image_count(), f30k.caption_count(), f30k.skipped.len()), (2, 10, 0));
    assert_eq!(f30k.items[0].caption, "A child in a pink dress is climbing up a set of stairs in an entry way .");
    assert!(f30k.items[0].image.ends_with("flickr30k_images/1000092795.jpg"));
}

#[test]
fn karpathy_splits_with_restval_in_train() {
    let train = open("karpathy", "flickr8k/dataset_flickr8k.json", "split=train");
    assert_eq!((train.image_count(), train.caption_count(), train.skipped.len()), (2, 10, 0));
    let test = open("karpathy", "flickr8k/dataset_flickr8k.json", "split=test");
    assert_eq!((test.image_count(), test.caption_count()), (1, 5));
    let coco_train = open("karpathy", "karpathy-coco", "split=train");
    assert_eq!((coco_train.image_count(), coco_train.caption_count(), coco_train.skipped.len()), (2, 4, 0));
    assert!(coco_train.items[0].image.ends_with("val2014/COCO_val2014_000000391895.jpg"));
    let restval = open("karpathy", "karpathy-coco", "split=restval");
    assert_eq!(restval.image_count(), 1);
    assert_eq!(spec("karpathy", "karpathy-coco", "").available_splits(), vec![Split::Train, Split::Val, Split::Test]);
}

#[test]
fn coco_captions_by_split_and_by_file() {
    let val = open("coco", "coco", "split=val");
    assert_eq!((val.image_count(), val.caption_count(), val.skipped.len()), (2, 11, 0));
    assert!(val.items[0].image.ends_with("val2017/000000397133.jpg"));
    assert!(!val.items[0].caption.ends_with('\n'), "captions are trimmed");
    let by_file = open("coco", "coco/annotations/captions_val2017.json", "");
    assert_eq!(by_file.items, val.items);
    let train = open("coco", "coco", "split=train");
    assert_eq!((train.image_count(), train.caption_count()), (1, 5));
    assert!(spec("coco", "coco", "split=test").open().is_err());
}

#[test]
fn viclip_ot_truncated_png_and_unsafe_path() {
    let test = open("viclip-ot", "viclip-ot", "split=test");
    assert_eq!((test.image_count(), test.caption_count()), (1, 2));
    assert_eq!(skips(&test), counts(&[("truncated_image", 1), ("unsafe_path", 1)]));
    assert!(test.skipped.iter().any(|s| s.reason == SkipReason::TruncatedImage && s.item.ends_with("b.png")));
    assert!(test.skipped.iter().any(|s| s.reason == SkipReason::UnsafePath && s.item.contains("../../etc/passwd")));
    let train = open("viclip-ot", "viclip-ot", "split=train");
    assert_eq!((train.image_count(), train.caption_count()), (2, 4));
    assert_eq!(spec("viclip-ot", "viclip-ot", "").available_splits(), vec![Split::Train, Split::Val, Split::Test]);
}

#[test]
fn generic_tables_open_clip_csv_and_jsonl() {
    let tsv = open("csv", "table/open_clip.tsv", "");
    assert_eq!((tsv.image_count(), tsv.caption_count(), tsv.skipped.len()), (2, 3, 0), "grouped by filepath");
    let csv = open("csv", "table/pairs.csv", "");
    assert_eq!((csv.image_count(), csv.caption_count()), (2, 3));
    assert_eq!(skips(&csv), counts(&[("missing_image", 1), ("truncated_image", 1)]));
    let csv_train = open("csv", "table/pairs.csv", "split=train");
    assert_eq!((csv_train.image_count(), csv_train.caption_count(), csv_train.skipped.len()), (2, 3, 0));
    let jsonl = open("jsonl", "table/pairs.jsonl", "");
    assert_eq!((jsonl.image_count(), jsonl.caption_count()), (2, 3));
    assert_eq!(skips(&jsonl), counts(&[("empty_caption", 1), ("unsafe_path", 1)]));
    let renamed = open("csv", "table/open_clip.tsv", "image_column=filepath&caption_column=title&sep=tab");
    assert_eq!(renamed.items, tsv.items);
    let err = spec("csv", "table/open_clip.tsv", "caption_column=text").open().unwrap_err().to_string();
    assert!(err.contains("open_clip.tsv:1") && err.contains("`text`"), "{err}");
}

#[test]
fn spec_strings_parse_and_print() {
    let s = DatasetSpec::parse("xm3600:/data/xm3600?lang=vi&captions=all").unwrap();
    assert_eq!(s.to_string(), "xm3600:/data/xm3600?captions=all&lang=vi");
    assert_eq!(s.get("lang"), Some("vi"));
    assert!(DatasetSpec::parse("synthetic").is_ok());
    for (bad, says) in [
        ("flickr:/x", "unknown dataset format `flickr`"),
        ("ktvic:/x?spilt=test", "unknown key `spilt`"),
        ("xm3600:/x?captions=some", "expected `first` or `all`"),
        ("coco", "FORMAT:PATH"),
        ("ktvic:/x?split", "not key=value"),
    ] {
        let err = DatasetSpec::parse(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

/// Writes `text` as `name` in a fresh folder and returns the error of opening it as `format`.
fn malformed(format: &str, name: &str, text: &str, query: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    let spec = DatasetSpec::parse(&format!("{format}:{}?{query}", dir.path().join(name).display())).unwrap();
    format!("{:#}", spec.open().expect_err("malformed annotations must stop the run"))
}

#[test]
fn malformed_annotations_name_file_place_and_expectation() {
    let err = malformed("uit-openviic", "uit-openviic-annotation-test.json", "{\"a.jpg\": {\"captions\": [\"x\", 3]}}", "split=test");
    assert!(err.contains("uit-openviic-annotation-test.json") && err.contains("`a.jpg.captions[1]`") && err.contains("expected a string"), "{err}");
    let err = malformed("ktvic", "test_data.json", "{\"images\": [{\"id\": 1}], \"annotations\": []}", "split=test");
    assert!(err.contains("test_data.json") && err.contains("`images[0]`") && err.contains("missing field `filename`"), "{err}");
    let err = malformed("ktvic", "test_data.json", "{\"images\": [], \"annotations\": [{\"image_id\": 7, \"caption\": \"x\"}]}", "split=test");
    assert!(err.contains("`annotations[0].image_id`") && err.contains("7"), "{err}");
    let err = malformed("coco", "captions_val2017.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}], \"annotations\": [", "");
    assert!(err.contains("captions_val2017.json") && err.contains("line 1"), "{err}");
    let err = malformed("xm3600", "captions.jsonl", "{\"image/key\": \"ab\", \"vi\": {\"caption\": [\"x\"]}}\n{\"vi\": {}}\n", "lang=vi");
    assert!(err.contains("captions.jsonl:2") && err.contains("`image/key`"), "{err}");
    let err = malformed("xm3600", "captions.jsonl", "{\"image/key\": \"ab\", \"vi\": {\"caption\": \"x\"}}\n", "lang=vi");
    assert!(err.contains("captions.jsonl:1") && err.contains("`vi.caption`") && err.contains("array of strings"), "{err}");
    let err = malformed("flickr-token", "Flickr8k.token.txt", "a.jpg#0\tok\r\na.jpg#1 no tab\r\n", "");
    assert!(err.contains("Flickr8k.token.txt:2") && err.contains("no tab"), "{err}");
    let err = malformed("flickr-csv", "captions.txt", "image,caption\na.jpg,x\nb.jpg\n", "");
    assert!(err.contains("captions.txt:3"), "{err}");
    let err = malformed("karpathy", "dataset_x.json", "{\"images\": [{\"filename\": \"a.jpg\", \"imgid\": 0, \"split\": \"test\", \"sentences\": [{\"tokens\": []}]}]}", "");
    assert!(err.contains("`images[0].sentences[0]`") && err.contains("missing field `raw`"), "{err}");
    let err = malformed("viclip-ot", "test.json", "{\"images\": [{\"id\": [1], \"image_path\": \"a.jpg\"}], \"annotations\": []}", "");
    assert!(err.contains("`images[0].id`") && err.contains("an integer or a string id"), "{err}");
    let err = malformed("jsonl", "pairs.jsonl", "{\"image\": \"a.jpg\", \"caption\": \"x\"}\n[1, 2]\n", "");
    assert!(err.contains("pairs.jsonl:2") && err.contains("expected a JSON object"), "{err}");
    let err = malformed("jsonl", "pairs.jsonl", "{\"image\": \"a.jpg\", \"caption\": \"x\"}\n{\"image\": \"b.jpg\"}\n", "");
    assert!(err.contains("pairs.jsonl:2") && err.contains("`caption`"), "{err}");
}


#[test]
fn data_check_prints_counts_and_json() {
    let uit = format!("uit-openviic:{}", common::fixture("datasets/uit-openviic").display());
    let (ok, stdout, stderr) = otclip(&["data", "check", &uit, "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["images"], 2 + 1 + 2, "train 2, dev 1, test 2");
    assert_eq!(v["captions"], 4 + 2 + 7);
    assert_eq!(v["skipped"], serde_json::json!({"corrupt_image": 1, "empty_caption": 2, "missing_image": 1, "unsafe_path": 1}));
    assert_eq!(v["splits"]["test"]["images"], 2);
    assert_eq!(v["splits"]["test"]["captions_per_image"], serde_json::json!({"min": 2, "mean": 3.5, "max": 5}));
    assert_eq!(v["captions_per_image"]["max"], 5);
    let (ok, stdout, stderr) = otclip(&["data", "check", &format!("{uit}?split=test")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("skipped  5 (corrupt_image 1, empty_caption 2, missing_image 1, unsafe_path 1)"), "{stdout}");
    assert!(stderr.contains("00000000017.jpg (corrupt_image"), "one warning per skipped item: {stderr}");
    let (ok, _, stderr) = otclip(&["data", "check", "ktvic:/nonexistent?split=test"]);
    assert!(!ok && stderr.contains("/nonexistent/test_data.json"), "{stderr}");
}

#[test]
fn dedup_finds_the_ktvic_image_that_repeats_uit_and_exclude_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("drop.txt");
    let ktvic = format!("ktvic:{}?split=test", common::fixture("datasets/ktvic").display());
    let uit = format!("uit-openviic:{}?split=test", common::fixture("datasets/uit-openviic").display());
    let (ok, stdout, stderr) = otclip(&["data", "dedup", &ktvic, "--against", &uit, "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("1 of 2 images"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "2\n", "KTVIC image 2 is the re-encoded UIT 00000005095.jpg");
    let kept = DatasetSpec::parse(&format!("{ktvic}&exclude={}", out.display())).unwrap().open().unwrap();
    assert_eq!((kept.image_count(), kept.caption_count()), (1, 5));
    assert_eq!(kept.skipped_by_reason(), counts(&[("excluded", 1)]));
}
