//! Experiment files (TOML): parsing, validation, and errors that point at the file, line and
//! column. `docs/experiment-file.md` documents every key.
//!
//! The file is parsed into TOML values that keep their places, then read table by table
//! ([`read::Table`]): every key is checked against those its table may hold, every value
//! against what it must be, and every message names the key, says what a valid value looks
//! like and gives an example, in poptune's words.

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use poptune::{ExperimentDef, InitialKind, StopRules, TrainableDef};

mod devices;
mod fire;
mod keys;
mod policy;
mod read;
mod space;
mod stop;
mod suggest;
mod syntax;
mod top;
mod trainable;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_corpus;

pub use trainable::find_program;

/// The longest experiment file read: an experiment file is a few lines of TOML.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// A bad experiment file: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// The line and column (both from 1; the column counts characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The file being read: where errors point.
pub(crate) struct Ctx<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Ctx<'_> {
    /// An error at `span` (the start of the file for an empty span at 0).
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The text at `span` as written in the file, shortened when long.
    fn shown(&self, span: &Range<usize>) -> String {
        let raw = self.text.get(span.clone()).unwrap_or("");
        shorten(raw.trim())
    }
}

/// `s`, or its start and end and how long it is when it would flood a message.
fn shorten(s: &str) -> String {
    const KEEP: usize = 30;
    let n = s.chars().count();
    if n <= 3 * KEEP {
        return s.to_string();
    }
    let head: String = s.chars().take(KEEP).collect();
    let tail: String = s.chars().skip(n - KEEP).collect();
    format!("{head}...{tail} ({n} characters)")
}

/// Reads and validates an experiment file.
pub fn load(path: &Path) -> Result<ExperimentDef, ConfigError> {
    let at_start = |message: String| ConfigError {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        message,
    };
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
        Ok(())
    });
    if let Err(e) = read {
        return Err(at_start(syntax::unreadable(path, &e)));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(at_start(format!(
            "the file is larger than {} MiB: an experiment file is a few lines of TOML; \
             give the experiment's .toml file (see docs/experiment-file.md)",
            MAX_FILE_BYTES >> 20
        )));
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let good = std::str::from_utf8(good).unwrap_or("");
            let (line, column) = line_col(good, good.len());
            return Err(ConfigError {
                path: path.to_path_buf(),
                line,
                column,
                message: syntax::not_utf8(bytes.get(e.valid_up_to()).copied()),
            });
        }
    };
    parse(path, text)
}

/// Parses and validates experiment-file text; `path` locates relative paths and errors.
pub fn parse(path: &Path, text: &str) -> Result<ExperimentDef, ConfigError> {
    let cx = Ctx { path, text };
    let doc = toml::de::DeTable::parse(text).map_err(|e| syntax::toml_error(&cx, &e))?;
    let base = base_dir(path);
    let root = read::Table::root(&cx, &doc);
    let top = top::read(&root, &base)?;
    let policy = policy::read(&root, top.population)?;
    let space = space::read(&root)?;
    let stop = stop::read(&root)?;
    let trainable = trainable::read(&root, &base)?;
    policy.check_against(&root, &stop)?;
    stop.check_against(&root)?;
    // Enough GPUs on this machine for the slots that can train at once.
    devices::check_against(&root, &trainable, top.slots.min(top.population))?;
    let def = ExperimentDef {
        name: top.name,
        metric: top.metric,
        mode: top.mode,
        population: top.population,
        seed: top.seed,
        slots: top.slots,
        initial: top.initial,
        directory: top.directory,
        policy: policy.policy,
        space,
        stop: stop.rules,
        trainable,
    };
    // Everything was checked above; the library's own checks stay as a backstop.
    def.experiment()
        .validate()
        .map_err(|e| cx.err(policy.span, format!("{e}; see docs/experiment-file.md")))?;
    Ok(def)
}

/// The absolute directory holding the experiment file, against which relative paths resolve.
fn base_dir(path: &Path) -> PathBuf {
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf())
}
