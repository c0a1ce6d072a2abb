//! Hostile input, as a careless or malicious user would give it, to the real `otclip` binary:
//! every case must end in an error (exit 1, never a panic, an abort or a signal) whose message
//! names the file and the key, and no user file may change. Each case builds its input in a
//! temporary folder.

mod data;
mod run;
mod solve;
mod towers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// What a panic, an abort or a failed allocation prints.
const CRASH_TEXT: [&str; 6] = ["panicked at", "RUST_BACKTRACE", "double free", "memory allocation of", "stack overflow", "core dumped"];

/// Runs `otclip args` and asserts that it fails cleanly: exit code 1 (an error) or 2 (the
/// command line's parser), not a panic's 101 nor a signal; no crash text; and a message
/// containing every one of `needles`.
/// Returns the standard error.
pub fn refused(args: &[&str], needles: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_otclip")).args(args).env("RUST_BACKTRACE", "0").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let label = args.join(" ");
    assert!(matches!(out.status.code(), Some(1 | 2)), "otclip {label}: expected a clean error (exit 1 or 2), got {:?}\n{stderr}", out.status);
    for crash in CRASH_TEXT {
        assert!(!stderr.contains(crash), "otclip {label}: crashed (`{crash}`):\n{stderr}");
    }
    for needle in needles {
        assert!(stderr.contains(needle), "otclip {label}: the message lacks `{needle}`:\n{stderr}");
    }
    stderr
}

/// Runs `otclip args` and asserts success; returns (stdout, stderr).
pub fn succeeded(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_otclip")).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "otclip {} failed:\n{stderr}", args.join(" "));
    (stdout, stderr)
}

/// The SHA-256 of every file under `root` (symlinks not followed), by path.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut hashes = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                hashes.insert(path.clone(), Sha256::digest(std::fs::read(&path).unwrap()).to_vec());
            }
        }
    }
    hashes
}

/// Asserts that the files under `root` are exactly those of `before`, unchanged.
pub fn unchanged(root: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let after = snapshot(root);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "files under {} were added or removed", root.display());
    for (path, hash) in before {
        assert_eq!(hash, &after[path], "{} changed", path.display());
    }
}

/// Copies the files of `from` (flat) into a new folder `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Rewrites the JSON file at `path` through `edit`.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

/// `path` as a `&str` for an argument list.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}
