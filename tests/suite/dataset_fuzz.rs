//! Fuzzing the annotation parsers with proptest: whatever the bytes of an annotation file, every
//! reader returns a dataset or an error, and never panics. Inputs are arbitrary strings and
//! mutations of each real format (so the parsers get past the first byte).

use std::path::Path;

use otclip::data::DatasetSpec;
use proptest::prelude::*;

/// (format, file name, query, a valid sample of the format)
const FORMATS: [(&str, &str, &str, &str); 10] = [
    ("uit-openviic", "uit-openviic-annotation-test.json", "split=test", r#"{"00000005095.jpg": {"captions": ["Một con mèo", "x"]}}"#),
    ("ktvic", "test_data.json", "split=test", r#"{"images":[{"id":1,"filename":"00000000001.jpg"}],"annotations":[{"id":0,"image_id":1,"caption":"a","segment_caption":"a_b"}]}"#),
    ("xm3600", "captions.jsonl", "lang=vi&captions=all", "{\"image/key\": \"000411001ff7dd4f\", \"vi\": {\"caption\": [\"a\"]}}\n"),
    ("flickr-token", "Flickr8k.token.txt", "", "1000268201_693b08cb0e.jpg#0\tA child .\r\n1000268201_693b08cb0e.jpg#1\tA girl .\r\n"),
    ("flickr-csv", "captions.txt", "", "image,caption\n1.jpg,\"a, b\"\n2.jpg,c\n"),
    ("flickr-csv", "results.csv", "", "image_name| comment_number| comment\n1.jpg| 0| a dog\n"),
    ("karpathy", "dataset_flickr8k.json", "split=test", r#"{"images":[{"filename":"a.jpg","imgid":0,"split":"test","sentences":[{"raw":"a","tokens":["a"]}]}]}"#),
    ("coco", "captions_val2017.json", "", r#"{"images":[{"id":1,"file_name":"1.jpg"}],"annotations":[{"id":2,"image_id":1,"caption":"a"}]}"#),
    ("viclip-ot", "test.json", "", r#"{"images":[{"id":"a","image_path":"images/a.jpg"}],"annotations":[{"id":0,"caption":"x","image_id":"a"}]}"#),
    ("jsonl", "pairs.jsonl", "", "{\"image\": \"a.jpg\", \"caption\": \"x\", \"image_id\": 1}\n"),
];

fn open(format: &str, dir: &Path, name: &str, query: &str, text: &[u8]) {
    std::fs::write(dir.join(name), text).unwrap();
    let spec = DatasetSpec::parse(&format!("{format}:{}?{query}", dir.join(name).display())).unwrap();
    // Ok or Err are both fine; a panic fails the test.
    let _ = spec.open();
}

/// A valid text sample with bytes replaced, deleted or inserted at random places.
fn mutate(sample: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    crate::common::mutate(sample.as_bytes(), edits)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn readers_never_panic_on_arbitrary_text(text in ".{0,200}") {
        let dir = tempfile::tempdir().unwrap();
        for (format, name, query, _) in FORMATS {
            open(format, dir.path(), name, query, text.as_bytes());
        }
        open("csv", dir.path(), "pairs.csv", "", text.as_bytes());
    }

    #[test]
    fn readers_never_panic_on_mutated_samples(edits in proptest::collection::vec((0usize..400, 0u8..3, prop::sample::select(b"{}[]\":,\t\r\n#|/.\\0 a1\xc3\xff".to_vec())), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        for (format, name, query, sample) in FORMATS {
            open(format, dir.path(), name, query, &mutate(sample, &edits));
        }
        open("csv", dir.path(), "pairs.csv", "", &mutate("image,caption,image_id,split\na.jpg,x,1,train\n", &edits));
    }

    #[test]
    fn spec_strings_never_panic(text in ".{0,80}") {
        let _ = DatasetSpec::parse(&text);
        let _ = DatasetSpec::parse(&format!("xm3600:{text}"));
    }

    #[test]
    fn paths_never_escape_the_root(parts in proptest::collection::vec(prop::sample::select(vec!["..", ".", "a", "b", "/", "", "c.jpg"]), 1..8)) {
        let relative = parts.join("/");
        let root = Path::new("/data/set");
        if let Some(joined) = otclip::data::collector::safe_join(root, &relative) {
            // Lexically resolved, the path stays under the root.
            let mut depth = 0i32;
            for c in joined.strip_prefix(root).unwrap().components() {
                match c {
                    std::path::Component::ParentDir => depth -= 1,
                    std::path::Component::Normal(_) => depth += 1,
                    _ => {}
                }
                prop_assert!(depth >= 0, "{relative} escaped as {}", joined.display());
            }
        }
    }
}
