//! `poptune run` on malformed experiment files, as a user runs it: exit code 2, the file's
//! `path:line:column`, a message in poptune's words, and nothing written to disk.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Words of serde or Rust that poptune's messages never use.
const FOREIGN: &[&str] = &[
    "missing field",
    "unknown field",
    "unknown variant",
    "invalid type",
    "i64",
    "u64",
    "f64",
    "struct",
    "os error",
    "panicked",
];

const GOOD: &str = r#"name = "demo"
population = 4
seed = 3

[policy]
interval = 5

[space.lr]
type = "float"
low = 1e-4
high = 1e-1
log = true

[space.batch]
type = "ordered"
values = [16, 32, 64]

[stop]
steps = 20

[trainable]
command = ["python3", "train.py"]
"#;

/// Runs `poptune run FILE`: the exit code and what it wrote to stderr.
fn run(file: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .arg("run")
        .arg(file)
        .output()
        .expect("the poptune binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every path under `dir`, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("a readable directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            all.push(path);
        }
    }
    all.sort();
    all
}

/// Checks that `err` names `file` with a line and a column, in poptune's words.
fn check_message(what: &str, file: &Path, code: Option<i32>, err: &str) {
    assert_eq!(code, Some(2), "{what}: {err}");
    let shown = format!("{}:", file.display());
    let at = err
        .find(&shown)
        .unwrap_or_else(|| panic!("{what}: the file is not named: {err}"));
    let rest = &err[at + shown.len()..];
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().unwrap_or("");
    let column = parts.next().unwrap_or("");
    assert!(
        !line.is_empty() && line.chars().all(|c| c.is_ascii_digit()),
        "{what}: no line in {err}"
    );
    assert!(
        !column.is_empty() && column.chars().all(|c| c.is_ascii_digit()),
        "{what}: no column in {err}"
    );
    for word in FOREIGN {
        assert!(!err.contains(word), "{what}: {word:?} in {err}");
    }
    assert!(err.len() < 1000, "{what}: too long: {err}");
}

/// (what, the file, words its message has): files that `poptune run` must refuse.
fn malformed() -> Vec<(&'static str, String, &'static str)> {
    let long_name = format!("name = \"{}\"", "x".repeat(10_000));
    vec![
        ("name .", GOOD.replace("\"demo\"", "\".\""), "name"),
        ("name ..", GOOD.replace("\"demo\"", "\"..\""), "name"),
        ("name with /", GOOD.replace("\"demo\"", "\"../x\""), "name"),
        (
            "a long name",
            GOOD.replace("name = \"demo\"", &long_name),
            "at most 255",
        ),
        (
            "a non-ASCII name",
            GOOD.replace("\"demo\"", "\"r\u{e9}seau\""),
            "ASCII letters",
        ),
        (
            "directory is a file",
            GOOD.replace("seed = 3", "seed = 3\ndirectory = \"exp.toml\""),
            "is a file",
        ),
        (
            "mixed values",
            GOOD.replace("[16, 32, 64]", "[16, \"32\", 64]"),
            "mixed types",
        ),
        (
            "a missing name",
            GOOD.replace("name = \"demo\"", ""),
            "needs `name`",
        ),
        (
            "a near miss",
            GOOD.replace("population", "populaton"),
            "did you mean `population`",
        ),
        (
            "log as a string",
            GOOD.replace("log = true", "log = \"true\""),
            "`log`",
        ),
        (
            "an unknown strategy",
            GOOD.replace(
                "interval = 5",
                "interval = 5\n[policy.exploit]\nstrategy = \"best\"",
            ),
            "strategy",
        ),
        (
            "a huge population",
            GOOD.replace("population = 4", "population = 1000000000000"),
            "population",
        ),
        (
            "steps past 64 bits",
            GOOD.replace("steps = 20", "steps = 18446744073709551615"),
            "steps",
        ),
        (
            "interval past steps",
            GOOD.replace("interval = 5", "interval = 50"),
            "interval",
        ),
        ("a NaN", GOOD.replace("high = 1e-1", "high = nan"), "finite"),
        (
            "a huge timeout",
            GOOD.replace("[trainable]", "[trainable]\nstep_timeout = 1e300"),
            "step_timeout",
        ),
        (
            "a duplicate key",
            GOOD.replace("seed = 3", "seed = 3\nseed = 4"),
            "twice",
        ),
        ("an empty file", String::new(), "empty"),
        (
            "no [space]",
            GOOD[..GOOD.find("[space.lr]").unwrap_or(0)].to_string()
                + "[stop]\nsteps = 2\n[trainable]\ncommand = [\"python3\"]\n",
            "[space]",
        ),
        ("binary", "\u{0}\u{1}\u{2}garbage = = =".to_string(), "TOML"),
    ]
}

#[test]
fn malformed_files_exit_2_at_their_place_and_touch_nothing() {
    for (what, text, needle) in malformed() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let dir = root.path().join("here");
        std::fs::create_dir(&dir).expect("created");
        let file = dir.join("exp.toml");
        std::fs::write(&file, &text).expect("written");
        let before = listing(root.path());
        let (code, err) = run(&file);
        check_message(what, &file, code, &err);
        assert!(err.contains(needle), "{what}: {needle:?} not in {err}");
        assert_eq!(
            listing(root.path()),
            before,
            "{what}: something was written"
        );
    }
}

#[test]
fn files_that_cannot_be_read_exit_2_at_their_place() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"name = \"r\xe9seau\"\n").expect("written");
    let before = listing(dir.path());
    for (what, file, needle) in [
        (
            "a missing file",
            dir.path().join("missing.toml"),
            "no such file",
        ),
        (
            "a folder",
            dir.path().to_path_buf(),
            "a folder, not an experiment file",
        ),
        ("not UTF-8", latin1, "not UTF-8"),
    ] {
        let (code, err) = run(&file);
        check_message(what, &file, code, &err);
        assert!(err.contains(needle), "{what}: {needle:?} not in {err}");
    }
    assert_eq!(listing(dir.path()), before, "something was written");
}
