//! The `otclip` command line: parses the arguments into a task of `otclip::app` and prints its
//! result. The device is resolved once, then everything runs generically.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use otclip::app::data_dedup::DedupTask;
use otclip::app::embed::{EmbedInput, EmbedTask, Embedder};
use otclip::app::index::{IndexInput, IndexTask};
use otclip::app::search::{self, Gallery, Query, SearchTask};
use otclip::app::serve::ServeTask;
use otclip::app::trained::ModelSource;
use otclip::app::eval::EvalTask;
use otclip::app::export::ExportTask;
use otclip::app::ot_solve::SolveTask;
use otclip::app::plot::PlotTask;
use otclip::app::teacher::{TeacherEncoder, TeacherTask};
use otclip::app::train::TrainTask;
use otclip::app::translate::{DecodingOptions, TranslateInput, TranslateOutput, TranslateTask};
use otclip::model::seq2seq::EarlyStopping;
use otclip::app::data_check;
use otclip::backend::{compiled_backends, DeviceSpec};
use otclip::data::{DatasetSpec, Split};
use otclip::eval::plots::TrainingPlot;
use otclip::loss::{GradMode, SinkhornConfig, SolverPath};
use otclip::train::{Nodes, TrainConfig, TrainOptions};
use otclip::weights::TowerSource;

#[derive(Parser)]
#[command(name = "otclip", version, about = "CLIP-style image–text retrieval with optimal transport, on burn")]
struct Cli {
    /// ndarray, wgpu[:N] or cuda[:N], among the backends compiled in.
    #[arg(long, global = true, default_value_t = DeviceSpec::default())]
    device: DeviceSpec,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a dual encoder from a TOML config.
    Train {
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, e.g. `--set optim.epochs=2`. Repeatable. Setting `data.dataset`
        /// replaces the built-in data.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// The run directory (default: runs/<config name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from the run directory's last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Train data-parallel, one worker per device, all of one backend: `ndarray,ndarray`,
        /// `cuda:0,cuda:1`. Each update is split among them (overrides `--device`).
        #[arg(long, value_delimiter = ',', value_name = "DEVICE,DEVICE,...")]
        devices: Vec<DeviceSpec>,
        /// Train with this many processes (nodes), each running this command with its own
        /// `--node-rank` and the same config and device count.
        #[arg(long, env = "OTCLIP_NODES", requires_all = ["node_rank", "orchestrator", "node_address"])]
        nodes: Option<usize>,
        /// This process's rank among the nodes; node 0 starts the orchestrator and writes the run.
        #[arg(long, env = "OTCLIP_NODE_RANK", requires = "nodes")]
        node_rank: Option<usize>,
        /// HOST:PORT of the orchestrator, on node 0's machine.
        #[arg(long, env = "OTCLIP_ORCHESTRATOR", requires = "nodes")]
        orchestrator: Option<String>,
        /// HOST:PORT where this node serves its tensors, reachable from the other nodes.
        #[arg(long, env = "OTCLIP_NODE_ADDRESS", requires = "nodes")]
        node_address: Option<String>,
    },
    /// Evaluate a trained run on a split and write RUN/results.json, and a 2-D projection of the
    /// split's embeddings, RUN/plots/embeddings-<split>.png.
    Eval {
        #[arg(long)]
        run: PathBuf,
        #[arg(long, default_value = "test")]
        split: Split,
        /// `best` (by validation t2i R@1), `best-2`, … (with train.keep_best), or `last`.
        #[arg(long, default_value = "best")]
        checkpoint: String,
        /// Print the result JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Evaluate on this dataset spec instead of the run's own (e.g. `xm3600:/data/xm3600?lang=vi`).
        #[arg(long)]
        data: Option<DatasetSpec>,
    },
    /// Redraw a run's training plots (RUN/plots/: loss, learning rate, validation recall) from
    /// its metrics.jsonl.
    Plot {
        #[arg(long)]
        run: PathBuf,
    },
    /// Embed a dataset split with a trained run or pretrained towers and write a SIGROT teacher
    /// file (safetensors, keyed by the dataset's image ids and caption texts).
    Teacher {
        /// A trained run (its images and captions share one space).
        #[arg(long, conflicts_with_all = ["image_tower", "text_tower"], required_unless_present_any = ["image_tower", "text_tower"])]
        run: Option<PathBuf>,
        /// A pretrained image tower: an HF (ViT, CLIP, DINOv2) or timm folder, or `timm:NAME@DIR`.
        #[arg(long)]
        image_tower: Option<String>,
        /// A pretrained text tower: an HF folder (BERT, RoBERTa, XLM-R, PhoBERT, sentence-transformers).
        #[arg(long)]
        text_tower: Option<PathBuf>,
        /// Apply the image tower's own projection head (CLIP's visual_projection).
        #[arg(long)]
        project: bool,
        /// The dataset to embed (`FORMAT:PATH[?key=value]`); default: the run's own.
        #[arg(long)]
        data: Option<DatasetSpec>,
        #[arg(long, default_value = "train")]
        split: Split,
        #[arg(long, default_value = "best")]
        checkpoint: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 512)]
        max_length: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Optimal-transport tools.
    Ot {
        #[command(subcommand)]
        command: OtCommand,
    },
    /// Dataset tools: check a dataset spec, find near-duplicates.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Embed texts or images with a trained model (`--run`, `--export`) or one pretrained tower;
    /// writes an f32 `.npy` of shape [n, d].
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// An HF folder (BERT, RoBERTa, XLM-R, PhoBERT) with config.json and model.safetensors.
        #[arg(long, conflicts_with_all = ["image_tower", "run", "export"], required_unless_present_any = ["image_tower", "run", "export"])]
        text_tower: Option<PathBuf>,
        /// An HF (ViT, CLIP, DINOv2) or timm folder; `timm:NAME@DIR` also works; a convolutional
        /// tower is `torchvision:NAME@FILE`, `timm:NAME@DIR` or `effnet:NAME@FILE` (resnet50,
        /// mobilenet_v2, efficientnet_b0, efficientnet_lite0, swin_t, ...).
        #[arg(long, conflicts_with_all = ["run", "export"])]
        image_tower: Option<String>,
        /// The architecture when the folder cannot say it, e.g. `timm:vit_base_patch16_dinov3`.
        #[arg(long)]
        arch: Option<String>,
        /// cls, mean (avg), or pooler; default: what the checkpoint declares.
        #[arg(long)]
        pooling: Option<otclip::model::Pooling>,
        /// One text per line.
        #[arg(long, conflicts_with_all = ["images", "pixel_values"])]
        texts: Option<PathBuf>,
        /// A folder of images, or a file listing image paths.
        #[arg(long, conflicts_with = "pixel_values")]
        images: Option<PathBuf>,
        /// Preprocessed pixels `[n, 3, H, W]` (`.npy`).
        #[arg(long)]
        pixel_values: Option<PathBuf>,
        /// Apply the model's own projection head (CLIP's visual_projection).
        #[arg(long)]
        project: bool,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 512)]
        max_length: usize,
        /// Keep randomly initialised weights where the checkpoint lacks them.
        #[arg(long)]
        allow_partial: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Export a trained run as a folder that Hugging Face transformers loads with
    /// trust_remote_code=True: weights, config, modelling code, tokenizer, image processor, model card.
    Export {
        #[arg(long)]
        run: PathBuf,
        /// `best` (by validation t2i R@1), `best-2`, … (with train.keep_best), or `last`.
        #[arg(long, default_value = "best")]
        checkpoint: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Embed an image folder (or a dataset split, with its captions) into an index for
    /// `search` and `serve`; rerunning the same command resumes it.
    Index {
        #[command(flatten)]
        model: ModelArgs,
        /// A folder of images (JPEG, PNG; searched recursively).
        #[arg(long, conflicts_with = "split", required_unless_present = "split")]
        images: Option<PathBuf>,
        /// Index this split of the run's dataset (or of --data) with its captions.
        #[arg(long)]
        split: Option<Split>,
        /// The dataset for --split (`FORMAT:PATH[?key=value]`); default: the run's own.
        #[arg(long, requires = "split")]
        data: Option<DatasetSpec>,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// The closest images of an index to a text or an image (or, with `--captions`, the
    /// closest captions of a dataset index).
    Search {
        #[arg(long)]
        index: PathBuf,
        /// A text query; repeat for several.
        #[arg(long, conflicts_with = "image", required_unless_present = "image")]
        text: Vec<String>,
        /// An image file as the query.
        #[arg(long)]
        image: Option<PathBuf>,
        /// Search the index's captions instead of its images (an index of a dataset split).
        #[arg(long)]
        captions: bool,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve a search page for an index (http://127.0.0.1:8080 by default).
    Serve {
        #[arg(long)]
        index: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// 0 picks a free port (printed).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Translate captions with a Marian (OPUS-MT) or NLLB model folder: every caption of --data
    /// into a JSONL dataset (`jsonl:OUT`), or --text to the screen. Rerunning resumes.
    Translate {
        /// A Hugging Face folder: config.json, model.safetensors or pytorch_model.bin, tokenizer files.
        #[arg(long)]
        model: PathBuf,
        /// The dataset whose captions are translated (`FORMAT:PATH[?key=value]`).
        #[arg(long, conflicts_with = "text", required_unless_present = "text", requires = "out")]
        data: Option<DatasetSpec>,
        /// The JSONL dataset to write (never overwritten).
        #[arg(long, requires = "data")]
        out: Option<PathBuf>,
        /// A text to translate; repeat for several.
        #[arg(long)]
        text: Vec<String>,
        /// Source language: `en` or NLLB's `eng_Latn` (NLLB's default: its tokenizer's).
        #[arg(long)]
        src_lang: Option<String>,
        /// Target language: `vi`, `az`, or NLLB's `vie_Latn`, `azj_Latn` (needed by NLLB).
        #[arg(long)]
        tgt_lang: Option<String>,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// Beams (default: the model's generation_config.json; 1 is greedy).
        #[arg(long)]
        num_beams: Option<usize>,
        /// Longest translation in tokens (default: the model's max_length).
        #[arg(long)]
        max_new_tokens: Option<usize>,
        #[arg(long)]
        length_penalty: Option<f32>,
        #[arg(long)]
        no_repeat_ngram_size: Option<usize>,
        #[arg(long, value_enum)]
        early_stopping: Option<EarlyStoppingArg>,
        /// Decode without the key–value cache (slower; to measure what the cache saves).
        #[arg(long)]
        no_cache: bool,
    },
    /// List the backends this binary was built with.
    Devices,
}

/// transformers' `early_stopping` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum EarlyStoppingArg {
    False,
    True,
    Never,
}

/// A trained model: a run's checkpoint or an export folder.
#[derive(clap::Args)]
struct ModelArgs {
    /// A run directory.
    #[arg(long, conflicts_with = "export")]
    run: Option<PathBuf>,
    /// The run's checkpoint: `best`, `best-2`, … or `last`.
    #[arg(long, default_value = "best", requires = "run")]
    checkpoint: String,
    /// A folder written by `otclip export`.
    #[arg(long)]
    export: Option<PathBuf>,
}

impl ModelArgs {
    fn source(self) -> Option<ModelSource> {
        match (self.run, self.export) {
            (Some(dir), _) => Some(ModelSource::Run { dir, checkpoint: self.checkpoint }),
            (None, Some(dir)) => Some(ModelSource::Export { dir }),
            (None, None) => None,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Solver {
    Fused,
    Reference,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Read a dataset (FORMAT:PATH[?key=value&...]), decode every image, print the counts.
    Check {
        spec: DatasetSpec,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Find images of SPEC that nearly duplicate images of --against (perceptual hash) and write
    /// their ids, one per line, for `exclude=FILE`.
    Dedup {
        spec: DatasetSpec,
        #[arg(long)]
        against: DatasetSpec,
        /// Largest Hamming distance (of 64 bits) counted as a duplicate.
        #[arg(long, default_value_t = 10)]
        max_distance: u32,
        #[arg(long, default_value = "dedup-drop.txt")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum OtCommand {
    /// Solve entropic (unbalanced) OT for a cost matrix; writes P = N·Γ* as f64 and prints a JSON summary.
    Solve {
        /// N × M cost, f32 or f64 `.npy`.
        #[arg(long)]
        cost: PathBuf,
        #[arg(long, default_value_t = 0.05)]
        eps: f64,
        /// KL marginal penalty τ.
        #[arg(long, default_value_t = 0.5, conflicts_with = "balanced")]
        tau: f64,
        /// Solve the balanced problem instead.
        #[arg(long)]
        balanced: bool,
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// Early-stop tolerance on max |Δf|/ε, checked every 10 iterations; 0 runs every iteration.
        #[arg(long, default_value_t = 0.0)]
        tol: f64,
        /// Source marginal (`.npy`, length N); uniform when absent.
        #[arg(long)]
        a: Option<PathBuf>,
        /// Target marginal (`.npy`, length M); uniform when absent.
        #[arg(long)]
        b: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Solve in f32 on ndarray too (the GPU backends always use f32).
        #[arg(long)]
        f32: bool,
        /// `fused` (the backend's Sinkhorn kernels) or `reference` (tensor ops).
        #[arg(long, value_enum, default_value_t = Solver::Fused)]
        solver: Solver,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train { config, overrides, out, resume, devices, nodes, node_rank, orchestrator, node_address } => {
            let parsed = TrainConfig::load(&config, &overrides)?;
            let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
            let run_dir = out.unwrap_or_else(|| PathBuf::from("runs").join(stem));
            let devices = if devices.is_empty() { vec![cli.device] } else { devices };
            let names: Vec<String> = devices.iter().map(ToString::to_string).collect();
            eprintln!("training on {} into {}", names.join(", "), run_dir.display());
            let options = TrainOptions { resume, ..Default::default() };
            let nodes = match (nodes, node_rank, orchestrator, node_address) {
                (Some(count), Some(rank), Some(orchestrator), Some(address)) => Some(Nodes { count, rank, orchestrator, address }),
                _ => None,
            };
            let summary = TrainTask { config: parsed, run_dir, options, nodes }.run_on(&devices)?;
            println!(
                "trained {} epochs ({} steps) in {:.0}s; loss {:.4} → {:.4}; best epoch {}",
                summary.epochs, summary.steps, summary.seconds, summary.first_loss, summary.last_loss, summary.best_epoch
            );
            if let Some(val) = summary.best_val {
                println!("best validation mean recall {:.2}%, t2i R@1 {:.2}%", val.mean_recall() * 100.0, val.t2i_recall[0] * 100.0);
            }
        }
        Command::Eval { run, split, checkpoint, json, data } => {
            let evaluation = EvalTask { run_dir: run.clone(), checkpoint, split, data }.run_on(cli.device)?;
            let report = evaluation.report;
            let value = report.to_json();
            let path = run.join("results.json");
            std::fs::write(&path, serde_json::to_string_pretty(&value)?).with_context(|| format!("cannot write {}", path.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", report.table());
                println!("wrote {}", path.display());
            }
            if let Some(plot) = evaluation.embedding_plot {
                // With --json, stdout holds the JSON alone.
                if json {
                    eprintln!("wrote {}", plot.display());
                } else {
                    println!("wrote {}", plot.display());
                }
            }
        }
        Command::Plot { run } => {
            let written = PlotTask { run_dir: run.clone() }.run()?;
            for (_, path) in &written {
                println!("wrote {}", path.display());
            }
            if !written.iter().any(|(plot, _)| *plot == TrainingPlot::Recall) {
                println!("no validation rows yet, so no {}", TrainingPlot::Recall.file_name());
            }
        }
        Command::Ot { command: OtCommand::Solve { cost, eps, tau, balanced, iters, tol, a, b, out, f32, solver } } => {
            let config = SinkhornConfig::new()
                .with_eps(eps)
                .with_tau((!balanced).then_some(tau))
                .with_iterations(iters)
                .with_tolerance(tol)
                .with_grad(GradMode::Detach)
                .with_solver(match solver {
                    Solver::Fused => SolverPath::Fused,
                    Solver::Reference => SolverPath::Reference,
                });
            let summary = SolveTask { cost, a, b, config, out }.run_on(cli.device, !f32)?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Command::Teacher { run, image_tower, text_tower, project, data, split, checkpoint, batch_size, max_length, out } => {
            let encoder = match run {
                Some(dir) => TeacherEncoder::Run { dir, checkpoint },
                None => {
                    let image = image_tower.map(|spec| spec.parse::<TowerSource>()).transpose()?;
                    TeacherEncoder::Towers { image, text: text_tower, project, max_length, batch_size }
                }
            };
            let images = TeacherTask { encoder, data, split, out: out.clone() }.run_on(cli.device)?;
            println!("wrote teacher embeddings of {images} images to {}", out.display());
        }
        Command::Data { command } => data_command(command)?,
        Command::Embed { model, text_tower, image_tower, arch, pooling, texts, images, pixel_values, project, batch_size, max_length, allow_partial, out } => {
            let (embedder, input) = match (model.source(), text_tower, image_tower, texts, images, pixel_values) {
                (Some(source), None, None, Some(texts), None, None) => (Embedder::Trained(source), EmbedInput::Texts(texts)),
                (Some(source), None, None, None, Some(images), None) => (Embedder::Trained(source), EmbedInput::Images(images)),
                (Some(source), None, None, None, None, Some(pixels)) => (Embedder::Trained(source), EmbedInput::PixelValues(pixels)),
                (Some(_), ..) => anyhow::bail!("--run/--export need one of --texts FILE, --images DIR|LIST or --pixel-values FILE.npy"),
                (None, Some(dir), None, Some(texts), None, None) => (Embedder::Tower(TowerSource::Hf(dir)), EmbedInput::Texts(texts)),
                (None, Some(_), None, ..) => anyhow::bail!("--text-tower needs --texts FILE"),
                (None, None, Some(spec), None, Some(images), None) => (Embedder::Tower(spec.parse::<TowerSource>()?.with_arch(arch.as_deref())?), EmbedInput::Images(images)),
                (None, None, Some(spec), None, None, Some(pixels)) => (Embedder::Tower(spec.parse::<TowerSource>()?.with_arch(arch.as_deref())?), EmbedInput::PixelValues(pixels)),
                _ => anyhow::bail!("--image-tower needs --images DIR|LIST or --pixel-values FILE.npy"),
            };
            let task = EmbedTask { embedder, input, pooling, project, batch_size, max_length, allow_partial, out: out.clone() };
            let summary = task.run_on(cli.device)?;
            println!("wrote {} × {} embeddings to {}", summary.rows, summary.dim, out.display());
        }
        Command::Export { run, checkpoint, out } => {
            let task = ExportTask { run_dir: run, checkpoint, out: out.clone() };
            let tensors = task.run_on(cli.device)?;
            println!("wrote {tensors} tensors to {}", out.join("model.safetensors").display());
        }
        Command::Index { model, images, split, data, batch_size, out } => {
            let model = model.source().ok_or_else(|| anyhow::anyhow!("index needs a model: --run RUN or --export DIR"))?;
            let input = match (images, split) {
                (Some(folder), None) => IndexInput::Folder(folder),
                (None, Some(split)) => IndexInput::Dataset { spec: data, split },
                _ => anyhow::bail!("index needs --images DIR or --split SPLIT"),
            };
            let summary = IndexTask { model, input, out: out.clone(), batch_size }.run_on(cli.device)?;
            println!(
                "{}: {} images, {} captions ({} added in {:.1}s, {:.1} images/s); {} could not be read",
                out.display(),
                summary.images,
                summary.captions,
                summary.added,
                summary.seconds,
                summary.added as f64 / summary.seconds.max(1e-9),
                summary.failed
            );
        }
        Command::Search { index, text, image, captions, k, json } => {
            let queries: Vec<Query> = match image {
                Some(path) => vec![Query::Image(path)],
                None => text.into_iter().map(Query::Text).collect(),
            };
            let gallery = if captions { Gallery::Captions } else { Gallery::Images };
            let found = SearchTask { index, model: None, queries, gallery, k }.run_on(cli.device)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                for results in &found {
                    print!("{}", search::table(results));
                }
            }
        }
        Command::Serve { index, host, port } => {
            let on_listen = |address: std::net::SocketAddr, what: &str| {
                println!("serving {what} on http://{address}/ (Ctrl-C stops)");
            };
            ServeTask { index, model: None, address: (host, port).into(), on_listen }.run_on(cli.device)?;
        }
        Command::Translate { model, data, out, text, src_lang, tgt_lang, batch_size, num_beams, max_new_tokens, length_penalty, no_repeat_ngram_size, early_stopping, no_cache } => {
            let early_stopping = early_stopping.map(|e| match e {
                EarlyStoppingArg::False => EarlyStopping::Heuristic,
                EarlyStoppingArg::True => EarlyStopping::Done,
                EarlyStoppingArg::Never => EarlyStopping::Never,
            });
            let decoding = DecodingOptions { num_beams, max_new_tokens, length_penalty, no_repeat_ngram_size, early_stopping };
            let input = match (data, out) {
                (Some(spec), Some(out)) => TranslateInput::Dataset { spec, out },
                _ => TranslateInput::Texts(text),
            };
            let task = TranslateTask { model, input, src_lang, tgt_lang, batch_size, decoding, use_cache: !no_cache };
            match task.run_on(cli.device)? {
                TranslateOutput::Texts(lines) => lines.iter().for_each(|line| println!("{line}")),
                TranslateOutput::Dataset(s) => println!(
                    "{} captions ({} distinct): {} translated in {:.1}s ({:.1} captions/s), {} from the interrupted run; {} empty captions and {} empty translations left out, {} cut to the model's length; {} rows written, read them as {}",
                    s.captions,
                    s.distinct,
                    s.translated_now,
                    s.seconds,
                    s.translated_now as f64 / s.seconds.max(1e-9),
                    s.resumed,
                    s.empty,
                    s.empty_translations,
                    s.truncated,
                    s.written,
                    s.read_as
                ),
            }
        }
        Command::Devices => println!("{}", compiled_backends().join("\n")),
    }
    Ok(())
}

fn data_command(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Check { spec, json } => {
            data_check::run(&spec, json)?;
        }
        DataCommand::Dedup { spec, against, max_distance, out } => {
            DedupTask { spec, against, max_distance, out }.run()?;
        }
    }
    Ok(())
}
