//! The layering of `src/` holds: no `use crate::…` runs upwards, nothing is imported through the
//! crate root's re-exports, and no files import each other in a circle. The checker reads the
//! sources as text; its own tests plant an upward import and a circle and expect it to see them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may import only modules of a lower layer.
const LAYERS: &[(&str, u32)] = &[
    ("app", 7),
    ("train", 6),
    ("eval", 5),
    ("weights", 5),
    ("data", 4),
    ("model", 3),
    ("loss", 3),
    ("text", 3),
    ("backend", 2),
    ("npy", 1),
    ("seed", 1),
    ("tensor", 1),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, rank)| *rank)
}

/// A source file: its module path (`["data", "spec"]`; `[]` for `lib.rs`) and its text.
struct Source {
    file: String,
    module: Vec<String>,
    is_module_root: bool,
    text: String,
}

fn module_of(relative: &Path) -> (Vec<String>, bool) {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    match last.as_str() {
        "lib.rs" | "mod.rs" => (parts, true),
        name => {
            parts.push(name.trim_end_matches(".rs").to_string());
            (parts, false)
        }
    }
}

fn read_tree(src: &Path) -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|f| {
            let relative = f.strip_prefix(src).unwrap();
            let (module, is_module_root) = module_of(relative);
            Source { file: format!("src/{}", relative.display()), module, is_module_root, text: std::fs::read_to_string(&f).unwrap() }
        })
        .collect()
}

/// The code of a file without comments (line comments; doc comments are line comments too).
fn code_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let mut in_string = false;
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                match bytes[i] {
                    b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
                    b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return line[..i].to_string(),
                    _ => {}
                }
            }
            line.to_string()
        })
        .collect()
}

/// Expands a `use` tree (`crate::a::{b, c::{d, e}}`) into flat paths.
fn expand_use(tree: &str) -> Vec<String> {
    // Drop `as alias`, then the whitespace.
    let mut tree = tree.replace(['\n', '\t'], " ");
    while let Some(at) = tree.find(" as ") {
        let end = tree[at + 4..].find(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(tree.len(), |e| at + 4 + e);
        tree.replace_range(at..end, "");
    }
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    // Prose such as "… so use it {" in a string is no use tree.
    let close = tree.rfind('}').filter(|&close| close > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.extend(expand_use(&inner[start..i]).into_iter().map(|p| format!("{prefix}{p}")));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(expand_use(&inner[start..]).into_iter().map(|p| format!("{prefix}{p}")));
    out.retain(|p| !p.ends_with("::") && !p.is_empty());
    out
}

/// One reference of a file to a module path, absolute (`["data", "spec", "DatasetSpec"]`).
struct Reference {
    path: Vec<String>,
    /// A `pub use` in a module's root file: its public face, not a dependency of its code.
    reexport: bool,
}

fn references(source: &Source, modules: &BTreeSet<Vec<String>>) -> Vec<Reference> {
    let code = code_lines(&source.text).join("\n");
    let mut out = Vec::new();
    let mut resolve = |raw: &str, reexport: bool| {
        let mut parts: Vec<String> = raw.split("::").map(str::to_string).collect();
        let absolute = match parts.first().map(String::as_str) {
            Some("crate") => parts.split_off(1),
            Some("super") | Some("self") => {
                let mut base = source.module.clone();
                let mut rest = parts.as_slice();
                while let Some(first) = rest.first() {
                    match first.as_str() {
                        "super" => {
                            base.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                base
            }
            // A child module named by a module root's own `use` (2018 relative paths).
            Some(first) if source.is_module_root => {
                let mut child = source.module.clone();
                child.push(first.to_string());
                if !modules.contains(&child) {
                    return;
                }
                child.extend(parts[1..].iter().cloned());
                child
            }
            _ => return,
        };
        out.push(Reference { path: absolute, reexport });
    };
    // `use` statements, which may span lines.
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let boundary = before.chars().last().is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}');
        let end = rest[at..].find(';').map(|e| at + e).unwrap_or(rest.len());
        if boundary {
            let reexport = source.is_module_root && before.trim_end().ends_with("pub");
            for path in expand_use(&rest[at + 4..end]) {
                resolve(&path, reexport);
            }
        }
        rest = &rest[(at + 4).min(rest.len())..];
    }
    // Paths written inline in code: `crate::train::load_run(...)`, `super::x::y`.
    for prefix in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(prefix).map(|i| from + i) {
            let is_start = code[..at].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            let len = code[at..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(code.len() - at);
            if is_start {
                resolve(code[at..at + len].trim_end_matches(':'), false);
            }
            from = at + len.max(1);
        }
    }
    out
}

/// The file a path lands in: the longest prefix that is a module.
fn target_module(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|prefix| modules.contains(prefix)).unwrap_or_default()
}

/// Every violation of the layering in `sources`, as readable lines.
fn violations(sources: &[Source]) -> Vec<String> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for source in sources {
        let own_top = source.module.first().cloned();
        for reference in references(source, &modules) {
            let Some(top) = reference.path.first() else { continue };
            let target = target_module(&reference.path, &modules);
            if target.is_empty() && !source.module.is_empty() {
                problems.push(format!("{}: `crate::{}` goes through the crate root's re-exports; name its module", source.file, reference.path.join("::")));
                continue;
            }
            if let Some(own) = &own_top {
                if top != own {
                    match (layer(own), layer(top)) {
                        (Some(from), Some(to)) if to >= from => problems.push(format!(
                            "{}: imports `crate::{}`, but `{top}` (layer {to}) is not below `{own}` (layer {from})",
                            source.file,
                            reference.path.join("::")
                        )),
                        (None, _) => problems.push(format!("{}: module `{own}` has no layer in tests/suite/architecture.rs", source.file)),
                        (_, None) => problems.push(format!("{}: module `{top}` has no layer in tests/suite/architecture.rs", source.file)),
                        _ => {}
                    }
                }
            }
            if !reference.reexport && target != source.module {
                edges.entry(source.module.clone()).or_default().insert(target);
            }
        }
    }
    for circle in circles(&edges) {
        let files: Vec<String> = circle.iter().map(|m| sources.iter().find(|s| &s.module == m).map(|s| s.file.clone()).unwrap_or_default()).collect();
        problems.push(format!("files import each other in a circle: {}", files.join(" → ")));
    }
    problems
}

/// The strongly connected groups of more than one module (Tarjan's algorithm).
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        found: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a Vec<String>) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.edges.get(node).into_iter().flatten() {
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[next].min(s.low[node]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.index[next].min(s.low[node]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut group = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                group.push(top.clone());
                if top == node {
                    break;
                }
            }
            if group.len() > 1 {
                s.found.push(group);
            }
        }
    }
    let mut state = State { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), found: Vec::new() };
    for node in edges.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_layers_import_only_downwards_and_no_files_form_a_circle() {
    let sources = read_tree(&src());
    assert!(sources.len() > 40, "read only {} files of src/", sources.len());
    let problems = violations(&sources);
    assert!(problems.is_empty(), "{} layering problems:\n{}", problems.len(), problems.join("\n"));
}

/// Plants, in memory, each kind of violation into the real tree and expects the checker to name it.
#[test]
fn the_checker_sees_an_upward_import_a_circle_and_a_root_import() {
    let plant = |file: &str, line: &str| {
        let mut sources = read_tree(&src());
        let source = sources.iter_mut().find(|s| s.file == file).unwrap_or_else(|| panic!("no {file}"));
        source.text = format!("{line}\n{}", source.text);
        violations(&sources)
    };
    let upward = plant("src/model/dual.rs", "use crate::train::TrainConfig;");
    assert!(upward.iter().any(|p| p.contains("src/model/dual.rs") && p.contains("crate::train::TrainConfig")), "{upward:?}");
    let inline = plant("src/data/batcher.rs", "fn f() { let _ = crate::eval::embed_split; }");
    assert!(inline.iter().any(|p| p.contains("src/data/batcher.rs") && p.contains("`eval`")), "{inline:?}");
    let sideways = plant("src/loss/clip.rs", "use crate::model::l2_normalize;");
    assert!(sideways.iter().any(|p| p.contains("src/loss/clip.rs")), "same-layer import: {sideways:?}");
    let root = plant("src/eval/mod.rs", "use crate::f64_tensor;");
    assert!(root.iter().any(|p| p.contains("crate root")), "{root:?}");
    let circle = plant("src/train/schedule.rs", "use super::trainer::Trainer;");
    assert!(circle.iter().any(|p| p.contains("circle") && p.contains("src/train/schedule.rs")), "{circle:?}");
    let grouped = expand_use("crate::a::{b, c::{d, e as f}, g}");
    assert_eq!(grouped, ["crate::a::b", "crate::a::c::d", "crate::a::c::e", "crate::a::g"]);
}
