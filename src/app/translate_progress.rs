//! The progress file of `otclip translate` (`OUT.progress.jsonl`): its settings on the first
//! line, then one line per translated caption, synced after each batch. A rerun with the same
//! settings picks up there; the output is written (through a temporary file) only at the end.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub struct ProgressFile {
    path: PathBuf,
    file: File,
    /// Source caption → (translation, whether the source was cut).
    pub done: HashMap<String, (String, bool)>,
}

/// `OUT.progress.jsonl` beside `OUT`.
pub fn progress_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".progress.jsonl");
    out.with_file_name(name)
}

impl ProgressFile {
    /// An error when `out` exists (it is never overwritten) or its folder does not.
    pub fn check_output(out: &Path) -> Result<()> {
        if out.exists() {
            bail!("{} exists; otclip translate does not overwrite it (delete it or choose another --out)", out.display());
        }
        match out.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(folder) if !folder.is_dir() => bail!("{}: the folder {} does not exist", out.display(), folder.display()),
            _ => Ok(()),
        }
    }

    /// Opens the progress file of `out`, or starts one. An existing file must hold `settings`.
    pub fn open(out: &Path, settings: &Value) -> Result<Self> {
        let path = progress_path(out);
        let header = json!({ "settings": settings });
        if !path.exists() {
            let mut file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{header}")?;
            file.sync_data()?;
            return Ok(Self { path, file, done: HashMap::new() });
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut done = HashMap::new();
        let mut complete = 0;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            let whole = line.ends_with('\n');
            let value: Option<Value> = serde_json::from_str(line.trim_end()).ok();
            match (index, value) {
                (0, Some(found)) if found == header => {}
                (0, Some(found)) => bail!("{}: written by a run with other settings ({}; now {}); delete it to start over, or rerun with the same settings", path.display(), found["settings"], settings),
                (0, None) => bail!("{}: the first line is not the settings line of otclip translate; delete the file to start over", path.display()),
                // The last line of a killed run may be cut short: it is dropped and redone.
                (_, None) if !whole => break,
                (_, None) => bail!("{}:{}: not a JSON line of otclip translate; delete the file to start over", path.display(), index + 1),
                (_, Some(entry)) => {
                    let (Some(source), Some(translation)) = (entry["source"].as_str(), entry["translation"].as_str()) else {
                        bail!("{}:{}: expected keys `source` and `translation`", path.display(), index + 1);
                    };
                    done.insert(source.to_string(), (translation.to_string(), entry["truncated"].as_bool().unwrap_or(false)));
                }
            }
            complete += line.len();
        }
        let mut file = OpenOptions::new().write(true).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        file.set_len(complete as u64)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Self { path, file, done })
    }

    /// Records a finished batch (synced before returning).
    pub fn append(&mut self, sources: &[&str], translations: &[(String, bool)]) -> Result<()> {
        let mut lines = String::new();
        for (source, (translation, truncated)) in sources.iter().zip(translations) {
            lines.push_str(&json!({ "source": source, "translation": translation, "truncated": truncated }).to_string());
            lines.push('\n');
            self.done.insert(source.to_string(), (translation.clone(), *truncated));
        }
        self.file.write_all(lines.as_bytes()).with_context(|| format!("cannot write {}", self.path.display()))?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Writes `rows` to `out` (through `OUT.tmp`, renamed when complete) and removes the progress file.
    pub fn finish(self, out: &Path, rows: &[Value]) -> Result<()> {
        let mut temporary = out.as_os_str().to_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut text = String::new();
        for row in rows {
            text.push_str(&row.to_string());
            text.push('\n');
        }
        let mut file = File::create(&temporary).with_context(|| format!("cannot create {}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if out.exists() {
            bail!("{} appeared while translating; it is not overwritten (the translations stay in {})", out.display(), self.path.display());
        }
        std::fs::rename(&temporary, out).with_context(|| format!("cannot rename {} to {}", temporary.display(), out.display()))?;
        drop(self.file);
        std::fs::remove_file(&self.path).with_context(|| format!("cannot remove {}", self.path.display()))?;
        Ok(())
    }
}
