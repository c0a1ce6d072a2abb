//! Using a trained model: `embed` with a run or an export, `index` (resumable), `search` (which
//! ranks exactly as `eval` does), and `serve` over HTTP and in a real headless browser.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use burn::backend::{Autodiff, NdArray};
use otclip::app::embed::{EmbedInput, EmbedTask, Embedder};
use otclip::app::eval::embed_run_split;
use otclip::app::export::ExportTask;
use otclip::app::index::{IndexInput, IndexTask};
use otclip::app::search::{Gallery, Query, Searcher};
use otclip::app::trained::ModelSource;
use otclip::data::synthetic::generate;
use otclip::data::Split;
use otclip::train::{train, TrainConfig, TrainOptions};
use otclip::{DeviceSpec, SYNTHETIC_VI_CONFIG};

use crate::common::http::{Browser, Served};
use crate::common::otclip;

type B = NdArray<f32>;

const TEST_IMAGES: usize = 40;

fn config() -> TrainConfig {
    let overrides: Vec<String> = [
        "data.synthetic.train_images=64",
        "data.synthetic.val_images=12",
        "data.synthetic.test_images=40",
        "data.synthetic.image_size=32",
        "optim.batch_size=16",
        "optim.epochs=2",
        "optim.warmup_steps=1",
        "tokenizer.vocab_size=300",
        "loss.transport_warmup_epochs=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &overrides).unwrap()
}

/// A small run, trained once for this binary's tests, in a folder kept for the process.
fn trained_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = tempfile::tempdir().unwrap().keep().join("run");
        train::<Autodiff<B>>(&config(), &run, &Default::default(), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
        run
    })
}

fn run_source() -> ModelSource {
    ModelSource::Run { dir: trained_run().to_path_buf(), checkpoint: "best".into() }
}

/// An index of the run's test split (images and captions), in batches of the eval batch size.
fn index_test_split(out: &Path) -> otclip::app::index::IndexSummary {
    let task = IndexTask { model: run_source(), input: IndexInput::Dataset { spec: None, split: Split::Test }, out: out.to_path_buf(), batch_size: config().eval.batch_size };
    task.run_on(DeviceSpec::default()).unwrap()
}

#[test]
fn search_ranks_exactly_as_eval_does() {
    let device = Default::default();
    let run = trained_run();
    let report = otclip::evaluate_run::<B>(run, "best", Split::Test, None, &device).unwrap();
    let (_, _, eval) = embed_run_split::<B>(run, "best", Split::Test, None, &device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("index");
    let summary = index_test_split(&out);
    assert_eq!((summary.images, summary.captions, summary.failed), (TEST_IMAGES, 5 * TEST_IMAGES, 0));

    let searcher = Searcher::<B>::open(&out, None, &device).unwrap();
    // The index holds the very embeddings that eval ranks.
    assert_eq!(searcher.index.images.rows, eval.images, "image rows differ from eval's");
    assert_eq!(searcher.index.captions.rows, eval.texts, "caption rows differ from eval's");

    // Each caption's own image among the top k, as often as eval's t2i R@k says.
    let captions = &searcher.index.captions;
    for (at, k) in [1, 5].into_iter().enumerate() {
        let hits = (0..captions.len())
            .filter(|&c| searcher.rank(captions.row(c), Gallery::Images, k).unwrap().iter().any(|f| f.image == captions.items[c].image))
            .count();
        assert_eq!(hits as f64 / captions.len() as f64, report.metrics.t2i_recall[at], "t2i R@{k}");
    }
    // Image → captions: a hit when the best caption is one of the image's own (i2t R@1).
    let hits = (0..TEST_IMAGES).filter(|&i| searcher.rank(searcher.index.images.row(i), Gallery::Captions, 1).unwrap()[0].image == i).count();
    assert_eq!(hits as f64 / TEST_IMAGES as f64, report.metrics.i2t_recall[0], "i2t R@1");
    assert!(report.metrics.t2i_recall[1] > 0.0, "no caption found its image in the top 5, so the check above proved little: {:?}", report.metrics);

    // The command line gives the library's answers.
    let text = captions.items[3].text.clone();
    let (ok, stdout, stderr) = otclip(&["search", "--index", out.to_str().unwrap(), "--text", &text, "-k", "3", "--json"]);
    assert!(ok, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let expected = searcher.search(&Query::Text(text.clone()), Gallery::Images, 3).unwrap();
    let results = printed[0].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (printed, found) in results.iter().zip(&expected) {
        assert_eq!(printed["key"], found.key.as_str());
        assert!((printed["score"].as_f64().unwrap() - found.score as f64).abs() < 1e-6);
    }
    let image = searcher.index.image_path(7);
    let (ok, stdout, stderr) = otclip(&["search", "--index", out.to_str().unwrap(), "--image", image.to_str().unwrap(), "--captions", "-k", "2", "--json"]);
    assert!(ok, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let expected = searcher.search(&Query::Image(image.clone()), Gallery::Captions, 2).unwrap();
    assert_eq!(printed[0][0]["caption"], expected[0].caption.clone().unwrap().as_str());
    // The stored PNG is the image itself: searching by it finds its own row first, score 1.
    let itself = searcher.search(&Query::Image(image), Gallery::Images, 1).unwrap();
    assert_eq!(itself[0].image, 7);
    assert!((itself[0].score - 1.0).abs() < 1e-4, "{}", itself[0].score);

    // Bad queries are refused with a message.
    let (ok, _, stderr) = otclip(&["search", "--index", out.to_str().unwrap(), "--text", "   "]);
    assert!(!ok && stderr.contains("empty"), "{stderr}");
    let (ok, _, stderr) = otclip(&["search", "--index", tmp.path().to_str().unwrap(), "--text", "x"]);
    assert!(!ok && stderr.contains("index.json"), "{stderr}");
}

/// Writes `count` test-split images as PNG under `root` (some in sub-folders), plus files that
/// are not images, a hidden image and one broken JPEG.
fn image_folder(root: &Path, count: usize) {
    let data = generate(config().synthetic().unwrap(), Split::Test).unwrap().dataset;
    for (i, entry) in data.entries.iter().take(count).enumerate() {
        let folder = if i % 2 == 0 { root.join("a") } else { root.join("b/deeper") };
        std::fs::create_dir_all(&folder).unwrap();
        entry.image.load().unwrap().save(folder.join(format!("{i:02}.png"))).unwrap();
    }
    std::fs::write(root.join("broken.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    std::fs::write(root.join("notes.txt"), "not an image").unwrap();
    std::fs::copy(root.join("a/00.png"), root.join(".hidden.png")).unwrap();
}

fn index_folder(root: &Path, out: &Path) -> anyhow::Result<otclip::app::index::IndexSummary> {
    IndexTask { model: run_source(), input: IndexInput::Folder(root.to_path_buf()), out: out.to_path_buf(), batch_size: 3 }.run_on(DeviceSpec::default())
}

#[test]
fn an_interrupted_index_resumes_with_every_image_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    image_folder(&root, 7);
    let full = tmp.path().join("full");
    let summary = index_folder(&root, &full).unwrap();
    assert_eq!((summary.images, summary.added, summary.failed), (7, 7, 1));
    let failed = std::fs::read_to_string(full.join("failed.jsonl")).unwrap();
    assert!(failed.contains("broken.jpg") && failed.lines().count() == 1, "{failed}");

    // An interruption: the rows stop mid-row after 5, the lines mid-line after 6.
    let torn = tmp.path().join("torn");
    std::fs::create_dir(&torn).unwrap();
    for name in ["index.json", "images.f32", "images.jsonl", "failed.jsonl"] {
        std::fs::copy(full.join(name), torn.join(name)).unwrap();
    }
    let dim = otclip::eval::index::Index::open(&full).unwrap().manifest.dim;
    let rows = std::fs::read(full.join("images.f32")).unwrap();
    std::fs::write(torn.join("images.f32"), &rows[..5 * dim * 4 + 7]).unwrap();
    let lines = std::fs::read_to_string(full.join("images.jsonl")).unwrap();
    let kept: String = lines.lines().take(6).map(|l| format!("{l}\n")).collect::<String>() + &lines.lines().nth(6).unwrap()[..10];
    std::fs::write(torn.join("images.jsonl"), kept).unwrap();
    let resumed = index_folder(&root, &torn).unwrap();
    assert_eq!((resumed.images, resumed.added, resumed.failed), (7, 2, 1), "two images re-embedded, the broken one not retried");
    assert_eq!(std::fs::read(torn.join("images.f32")).unwrap(), rows, "the resumed rows differ from an uninterrupted run's");
    assert_eq!(std::fs::read_to_string(torn.join("images.jsonl")).unwrap(), lines);

    // Running it again adds nothing.
    assert_eq!(index_folder(&root, &torn).unwrap().added, 0);

    // A folder that is not an index is not written into; nor is an index of something else.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), "mine").unwrap();
    let error = index_folder(&root, &foreign).unwrap_err().to_string();
    assert!(error.contains("not empty"), "{error}");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
    let error = index_folder(&root.join("a"), &full).unwrap_err().to_string();
    assert!(error.contains("Choose another --out"), "{error}");
    assert_eq!(std::fs::read(full.join("images.f32")).unwrap(), rows);
}

#[test]
fn embed_with_a_run_and_with_its_export_agree() {
    let device = Default::default();
    let run = trained_run();
    let (_, dataset, eval) = embed_run_split::<B>(run, "best", Split::Test, None, &device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let texts_file = tmp.path().join("texts.txt");
    // The first image's captions: eval embeds them in its first batch, with others.
    let captions = &dataset.entries[0].captions;
    std::fs::write(&texts_file, captions.join("\n")).unwrap();
    let images = tmp.path().join("images");
    image_folder(&images, 4);
    std::fs::remove_file(images.join("broken.jpg")).unwrap();
    let export = tmp.path().join("export");
    ExportTask { run_dir: run.to_path_buf(), checkpoint: "best".into(), out: export.clone() }.run_on(DeviceSpec::default()).unwrap();

    let embed = |embedder: Embedder, input: EmbedInput, name: &str| {
        let out = tmp.path().join(name);
        let task = EmbedTask { embedder, input, pooling: None, project: false, batch_size: 8, max_length: 512, allow_partial: false, out: out.clone() };
        let summary = task.run_on(DeviceSpec::default()).unwrap();
        let array = otclip::npy::read(&out).unwrap();
        assert_eq!(array.shape, vec![summary.rows, summary.dim]);
        array.data
    };
    let from_run = embed(Embedder::Trained(run_source()), EmbedInput::Texts(texts_file.clone()), "run_texts.npy");
    let from_export = embed(Embedder::Trained(ModelSource::Export { dir: export.clone() }), EmbedInput::Texts(texts_file), "export_texts.npy");
    let dim = eval.dim;
    assert_eq!(from_run.len(), captions.len() * dim);
    // The same rows as eval's (other batch companions change only the padding).
    for (a, b) in from_run.iter().zip(&eval.texts[..captions.len() * dim]) {
        assert!((*a as f32 - b).abs() < 1e-5, "run {a} vs eval {b}");
    }
    for (a, b) in from_run.iter().zip(&from_export) {
        assert!((a - b).abs() < 1e-6, "run {a} vs export {b}");
    }
    let run_images = embed(Embedder::Trained(run_source()), EmbedInput::Images(images.join("a")), "run_images.npy");
    let export_images = embed(Embedder::Trained(ModelSource::Export { dir: export }), EmbedInput::Images(images.join("a")), "export_images.npy");
    assert_eq!(run_images.len(), 2 * dim);
    // a/00.png is test image 0, a/02.png test image 2.
    for (a, b) in run_images.iter().zip(eval.images[..dim].iter().chain(&eval.images[2 * dim..3 * dim])) {
        assert!((*a as f32 - b).abs() < 1e-5, "run {a} vs eval {b}");
    }
    for (a, b) in run_images.iter().zip(&export_images) {
        assert!((a - b).abs() < 1e-6, "run {a} vs export {b}");
    }
    let (ok, _, stderr) = otclip(&["embed", "--run", run.to_str().unwrap(), "--texts", "/nonexistent.txt", "--out", "/tmp/x.npy"]);
    assert!(!ok && stderr.contains("/nonexistent.txt"), "{stderr}");
}

/// `%XX`-encodes everything but unreserved ASCII.
fn percent_encode(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[test]
fn serve_answers_queries_and_serves_only_indexed_images() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("index");
    index_test_split(&out);
    let searcher = Searcher::<B>::open(&out, None, &Default::default()).unwrap();
    let served = Served::start(&out);

    let page = served.get("/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page.body).contains("search-form"));
    assert_eq!(served.get("/api/info").json()["images"], TEST_IMAGES);

    let text = searcher.index.captions.items[11].text.clone();
    let reply = served.get(&format!("/api/search?q={}&k=5", percent_encode(&text)));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let expected = searcher.search(&Query::Text(text), Gallery::Images, 5).unwrap();
    let results = reply.json()["results"].as_array().unwrap().clone();
    let keys: Vec<&str> = results.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, expected.iter().map(|f| f.key.as_str()).collect::<Vec<_>>());
    let by_image = served.get(&format!("/api/search?image={}&k=3", expected[0].image)).json();
    assert_eq!(by_image["results"][0]["image"], expected[0].image, "an image finds itself first");

    for (target, status, says) in [
        ("/api/search?q=", 400, "empty"),
        ("/api/search?q=%20%20", 400, "empty"),
        ("/api/search?q=%ZZ", 400, "percent-encoded"),
        ("/api/search?q=%C3", 400, "UTF-8"),
        ("/api/search?q=a&k=0", 400, "k=0"),
        ("/api/search?q=a&k=1000", 400, "k=1000"),
        ("/api/search?q=a&image=1", 400, "either"),
        ("/api/search", 400, "either"),
        ("/api/search?image=99999", 400, "not in the index"),
        ("/api/search?image=-1", 400, "image number"),
        ("/image/40", 404, "no such image"),
        ("/image/../../etc/passwd", 404, "no such image"),
        ("/image/%2e%2e%2fetc%2fpasswd", 404, "no such image"),
        ("/../../etc/passwd", 404, "not found"),
        ("/images/000000.png", 404, "not found"),
    ] {
        let reply = served.get(target);
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(reply.status, status, "{target}: {body}");
        assert!(body.contains(says), "{target}: {body}");
    }
    let long = "a".repeat(otclip::app::search::MAX_QUERY_CHARS + 1);
    assert_eq!(served.get(&format!("/api/search?q={long}")).status, 400);
    let post = crate::common::http::request(served.address, "POST", "/api/search?q=a", None);
    assert_eq!(post.status, 405);

    let image = served.get("/image/0");
    assert_eq!((image.status, image.header("content-type")), (200, Some("image/png")));
    assert_eq!(image.body, std::fs::read(searcher.index.image_path(0)).unwrap());
    // Still answering after all that.
    assert_eq!(served.get("/api/info").status, 200);
}

/// The browser test's programs: `OTCLIP_CHROMEDRIVER` / `OTCLIP_CHROMIUM`, else Debian's.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let find = |variable: &str, names: &[&str]| {
        std::env::var_os(variable).map(PathBuf::from).or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|p| p.is_file())
        })
    };
    Some((find("OTCLIP_CHROMEDRIVER", &["chromedriver"])?, find("OTCLIP_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"])?))
}

#[test]
fn the_search_page_works_in_a_headless_browser() {
    let Some((driver, chromium)) = browser_programs() else {
        let message = "no chromium and chromedriver (apt-get install chromium chromium-driver): the browser test did NOT run";
        if std::env::var("OTCLIP_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{message}, and OTCLIP_REQUIRE_BROWSER=1 requires it");
        }
        eprintln!("SKIPPED: {message}");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("index");
    index_test_split(&out);
    let searcher = Searcher::<B>::open(&out, None, &Default::default()).unwrap();
    let served = Served::start(&out);
    let browser = Browser::start(&driver, &chromium).expect("chromedriver starts");
    browser.open(&format!("http://{}/", served.address));
    browser.wait_for("return document.getElementById('status').textContent.includes('images indexed')", Duration::from_secs(30));

    // An empty query is answered with a message, not a request.
    browser.click("#search-button");
    let message = browser.wait_for("const s = document.getElementById('status'); return s.className === 'error' && s.textContent", Duration::from_secs(10));
    assert!(message.as_str().unwrap().contains("Type"), "{message}");

    // A Vietnamese query: the page shows the images the library ranks first, all loaded.
    let query = "hình tròn màu đỏ";
    browser.type_into("#query", query);
    browser.click("#search-button");
    let shown = browser.wait_for(
        "const imgs = [...document.querySelectorAll('figure.result img')]; \
         return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0) && imgs.map(i => i.alt)",
        Duration::from_secs(60),
    );
    let expected: Vec<String> = searcher.search(&Query::Text(query.into()), Gallery::Images, 12).unwrap().into_iter().map(|f| f.key).collect();
    assert_eq!(shown, serde_json::json!(expected), "the page's results differ from `search`'s");
    let status = browser.script("return document.getElementById('status').textContent");
    assert!(status.as_str().unwrap().contains(query), "{status}");
    if let Some(dir) = std::env::var_os("OTCLIP_SCREENSHOT_DIR") {
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD.decode(browser.screenshot_base64()).unwrap();
        std::fs::write(PathBuf::from(dir).join("serve-vi-query.png"), png).unwrap();
    }

    // Clicking the third image searches by it: it comes first.
    let third = browser.script("return document.querySelectorAll('figure.result')[2].dataset.image");
    browser.script("document.querySelectorAll('figure.result')[2].click()");
    let first = browser.wait_for(
        &format!("const s = document.getElementById('status').textContent; return s.includes('image ') && document.querySelector('figure.result').dataset.image === '{}' && s", third.as_str().unwrap()),
        Duration::from_secs(60),
    );
    assert!(first.as_str().unwrap().contains("images for image"), "{first}");
}
