//! Files that cannot be read, and text that is not TOML: messages that say what to fix.

use std::path::Path;

use super::{keys, ConfigError, Ctx};

/// Why the file at `path` cannot be read, and what to do.
pub(super) fn unreadable(path: &Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    if path.is_dir() {
        let resume = if path.join("experiment.db").exists() {
            format!(
                "; to continue the experiment in it, run `poptune resume {}`",
                path.display()
            )
        } else {
            String::new()
        };
        return format!(
            "this is a folder, not an experiment file: give the experiment's .toml file, \
             e.g. poptune run {}{resume}",
            path.join("experiment.toml").display()
        );
    }
    match e.kind() {
        ErrorKind::NotFound => {
            "there is no such file: check the path to the experiment's .toml file".into()
        }
        ErrorKind::PermissionDenied => {
            "the file cannot be read (permission denied): make it readable, e.g. chmod u+r FILE"
                .into()
        }
        _ => format!("the experiment file cannot be read: {e}; give a readable .toml file"),
    }
}

/// Text that is not UTF-8: `byte` is the first bad one.
pub(super) fn not_utf8(byte: Option<u8>) -> String {
    let byte = byte.map_or(String::new(), |b| format!(" (byte 0x{b:02x})"));
    format!(
        "the file is not UTF-8 text{byte}: an experiment file is TOML text; save it as UTF-8, \
         or give the experiment's .toml file"
    )
}

/// The key assigned on the line holding `offset`, if any.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.split('\n').next().unwrap_or("");
    let eq = line.find('=')?;
    let key = line[..eq].trim().trim_matches('"');
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    bare.then(|| key.rsplit('.').next().unwrap_or(key).to_string())
}

/// A TOML syntax error, in words that say what to fix.
pub(super) fn toml_error(cx: &Ctx<'_>, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let msg = e.message().trim();
    let what = msg.split(", expected").next().unwrap_or(msg);
    let text = cx.text;
    let at = text
        .get(span.clone())
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    let key = key_on_line(text, span.start);
    let example = |k: &str| -> String {
        if keys::TABLES.iter().any(|(_, ks)| ks.contains(&k)) {
            keys::about(k).1.to_string()
        } else {
            format!("{k} = \"text\" or {k} = 3")
        }
    };
    let line_start = text
        .get(..span.start.min(text.len()))
        .and_then(|b| b.rfind('\n'))
        .map_or(0, |i| i + 1);
    let header = text
        .get(line_start..)
        .is_some_and(|l| l.trim_start().starts_with('['));
    let after_eq = text
        .get(line_start..)
        .and_then(|l| l.split('\n').next())
        .and_then(|l| l.split_once('='))
        .map(|(_, rest)| rest.split('#').next().unwrap_or("").trim().to_string());
    let no_value = after_eq.as_deref() == Some("");
    // Text after a complete value, as in `seed = 3 4`.
    let extra = after_eq.as_deref().is_some_and(|v| {
        let mut words = v.split_whitespace();
        let first = words.next().unwrap_or("").replace('_', "");
        let complete = first.parse::<f64>().is_ok() || matches!(first.as_str(), "true" | "false");
        complete && words.next().is_some()
    });
    let message = match (what, &key) {
        (_, Some(k)) if no_value => {
            format!("`{k}` has no value: give one, e.g. {}", example(k))
        }
        (_, Some(k)) if extra => format!(
            "`{k}` takes one value, and this line has more: e.g. {} (a list is written [1, 2])",
            example(k)
        ),
        ("duplicate key", _) if header => format!(
            "the table [{at}] appears twice (or one of its keys sets it too): merge them into one [{at}] table"
        ),
        ("duplicate key", _) => format!(
            "`{at}` is set twice in this table: keep one of them"
        ),
        (w, Some(k)) if w.starts_with("string values must be quoted") => format!(
            "`{k}`: text must be in quotes, e.g. {}",
            example(k)
        ),
        (w, Some(k)) if w.contains("missing value") || w.contains("no value") => {
            format!("`{k}` has no value: give one, e.g. {}", example(k))
        }
        (w, _) if w.contains("recurse") => {
            "values are nested too deeply: an experiment file needs lists and tables one or two levels deep"
                .to_string()
        }
        (w, _) if w.starts_with("unclosed table") || w.starts_with("unclosed array table") => {
            "this table header is not closed: write it as [NAME], e.g. [stop]".to_string()
        }
        (_, Some(k)) => format!(
            "`{k}`: this is not valid TOML ({msg}); write it as e.g. {}",
            example(k)
        ),
        _ => format!(
            "this is not valid TOML ({msg}); an experiment file holds lines like key = \"text\", \
             key = 3, key = [1, 2] and [table] headers (see docs/experiment-file.md)"
        ),
    };
    cx.err(span, message)
}
