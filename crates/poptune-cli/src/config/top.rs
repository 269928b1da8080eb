//! The top-level keys: the experiment's name and directory, its population and its seed.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use poptune::{InitialKind, Mode};

use super::keys::{self, MAX_NAME_BYTES, MAX_POPULATION, MAX_SLOTS};
use super::read::{At, Table};
use super::ConfigError;

/// The checked top-level keys.
pub(super) struct TopLevel {
    pub(super) name: String,
    pub(super) metric: String,
    pub(super) mode: Mode,
    pub(super) population: usize,
    pub(super) seed: u64,
    pub(super) slots: usize,
    pub(super) initial: InitialKind,
    /// The experiment directory: `directory` or NAME, beside the file.
    pub(super) directory: PathBuf,
}

/// Checks the top level's keys and reads those that are not tables.
pub(super) fn read(root: &Table<'_>, base: &Path) -> Result<TopLevel, ConfigError> {
    if root.entries().is_empty() {
        return Err(root.err(
            0..0,
            "the experiment file is empty: it needs at least `name`, `population`, a \
             [space.NAME] table, [stop] `steps` and [trainable] `command` (see the complete \
             example in docs/experiment-file.md)",
        ));
    }
    root.check_keys(keys::TOP)?;
    let name = read_name(root)?;
    let metric = match root.string("metric")? {
        Some(m) if m.value.trim().is_empty() => {
            return Err(root.bad(
                "metric",
                &m.span,
                "the score needs a name; e.g. metric = \"val_accuracy\", or leave `metric` out for \"score\"",
            ))
        }
        Some(m) => m.value,
        None => "score".into(),
    };
    let mode = root
        .word("mode", &[("max", Mode::Max), ("min", Mode::Min)])?
        .map_or(Mode::Max, |m| m.value);
    let population = match root.int("population")? {
        Some(p) => count(
            root,
            "population",
            &p,
            MAX_POPULATION,
            "the population needs at least 1 member (PBT needs 2 or more to compare)",
        )?,
        None => return Err(root.missing("population")),
    };
    let seed = match root.int("seed")? {
        Some(s) if s.value < 0 => {
            return Err(root.bad("seed", &s.span, "a seed is 0 or more, e.g. seed = 1"))
        }
        Some(s) => s.value as u64,
        None => 0,
    };
    let slots = match root.int("slots")? {
        Some(s) => count(
            root,
            "slots",
            &s,
            MAX_SLOTS,
            "at least 1 trainable process must run",
        )?,
        None => 1,
    };
    let initial = root
        .word(
            "initial",
            &[("prior", InitialKind::Prior), ("grid", InitialKind::Grid)],
        )?
        .map_or(InitialKind::Prior, |i| i.value);
    let directory = read_directory(root, base, &name)?;
    Ok(TopLevel {
        name: name.value,
        metric,
        mode,
        population,
        seed,
        slots,
        initial,
        directory,
    })
}

/// A count from 1 to `max`; `why` says why 0 is too few.
fn count(t: &Table<'_>, key: &str, n: &At<i64>, max: i64, why: &str) -> Result<usize, ConfigError> {
    let (_, example) = keys::about(key);
    if n.value < 1 {
        return Err(t.bad(
            key,
            &n.span,
            format!("{why}; give 1 or more, e.g. {example}"),
        ));
    }
    if n.value > max {
        return Err(t.bad(
            key,
            &n.span,
            format!(
                "more than poptune runs (at most {max}); give a smaller number, e.g. {example}"
            ),
        ));
    }
    usize::try_from(n.value).map_err(|_| t.bad(key, &n.span, "too large for this machine"))
}

/// `name`: one folder's name, of ASCII letters, digits, '-', '_' and '.'.
fn read_name(root: &Table<'_>) -> Result<At<String>, ConfigError> {
    let Some(name) = root.string("name")? else {
        return Err(root.missing("name"));
    };
    let span = &name.span;
    let value = name.value.trim().to_string();
    let rule = "a name uses only ASCII letters, digits, '-', '_' and '.' (it names the \
                experiment directory), e.g. name = \"digits\"";
    if value.is_empty() {
        return Err(root.bad("name", span, format!("the name is empty; {rule}")));
    }
    if value.contains(['/', '\\', '\0']) {
        return Err(root.bad(
            "name",
            span,
            "a name is one folder's name, without '/', '\\' or NUL; to put the experiment \
             elsewhere, set `directory`, e.g. directory = \"runs/digits\"",
        ));
    }
    if value == "." || value == ".." {
        return Err(root.bad(
            "name",
            span,
            format!(
                "this would put the experiment's files into {}; give the experiment a name of \
                 its own, e.g. name = \"digits\"",
                if value == "." {
                    "the folder that holds this file"
                } else {
                    "the folder above this file's"
                }
            ),
        ));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(root.bad(
            "name",
            span,
            format!(
                "the name is {} bytes long, and a file system allows at most {MAX_NAME_BYTES}; \
                 give a shorter name, e.g. name = \"digits\"",
                value.len()
            ),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(root.bad("name", span, format!("{c:?} is not allowed: {rule}")));
    }
    Ok(At {
        value,
        span: name.span,
    })
}

/// The experiment directory: `directory`, or NAME, beside the file; it must be a directory
/// or not exist yet (and be creatable: no file on its way).
fn read_directory(
    root: &Table<'_>,
    base: &Path,
    name: &At<String>,
) -> Result<PathBuf, ConfigError> {
    let (directory, key, span) = match root.string("directory")? {
        Some(d) => {
            check_path_text(root, "directory", &d)?;
            (base.join(&d.value), "directory", d.span)
        }
        None => (base.join(&name.value), "name", name.span.clone()),
    };
    check_creatable(root, &directory, key, &span)?;
    Ok(directory)
}

/// A path the file gives: not empty, no NUL, no part longer than a file system allows.
pub(super) fn check_path_text(t: &Table<'_>, key: &str, p: &At<String>) -> Result<(), ConfigError> {
    let (_, example) = keys::about(key);
    if p.value.trim().is_empty() {
        return Err(t.bad(
            key,
            &p.span,
            format!(
                "the path is empty; give a folder, e.g. {example} (\".\" is this file's folder)"
            ),
        ));
    }
    if p.value.contains('\0') {
        return Err(t.bad(
            key,
            &p.span,
            format!("a path cannot hold NUL; e.g. {example}"),
        ));
    }
    if let Some(part) = Path::new(&p.value)
        .components()
        .find(|c| c.as_os_str().len() > MAX_NAME_BYTES)
    {
        return Err(t.bad(
            key,
            &p.span,
            format!(
                "one part of the path is {} bytes long, and a file system allows at most \
                 {MAX_NAME_BYTES}; shorten it, e.g. {example}",
                part.as_os_str().len()
            ),
        ));
    }
    Ok(())
}

/// Refuses a `directory` that exists but is not a directory, or that cannot be created
/// because a file stands where one of its parents should be. Touches nothing.
fn check_creatable(
    t: &Table<'_>,
    directory: &Path,
    key: &str,
    span: &Range<usize>,
) -> Result<(), ConfigError> {
    let normal = lexical(directory);
    for at in normal.ancestors() {
        let Ok(meta) = std::fs::metadata(at) else {
            continue;
        };
        if meta.is_dir() {
            return Ok(());
        }
        let fix = if key == "name" {
            "give another `name`, or set `directory`, e.g. directory = \"runs/digits\""
        } else {
            "give a folder that is not a file, e.g. directory = \"runs/digits\""
        };
        let what = if at == normal {
            format!(
                "the experiment directory {} is a file, not a folder",
                at.display()
            )
        } else {
            format!(
                "the experiment directory {} cannot be created: {} is a file",
                normal.display(),
                at.display()
            )
        };
        return Err(t.bad(key, span, format!("{what}; {fix}")));
    }
    Ok(())
}

/// `p` with `.` and `..` parts resolved as written (without following links).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
