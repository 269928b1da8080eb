//! Devices per slot, without GPUs: each slot's trainable process sees its own
//! `CUDA_VISIBLE_DEVICES` and `POPTUNE_DEVICES` (from `[trainable] devices`, or the parent's
//! `CUDA_VISIBLE_DEVICES`), and asking for more GPUs than there are is refused.
//!
//! The trainable is the no-op one behind a shell line that first appends
//! "SLOT CUDA_VISIBLE_DEVICES POPTUNE_DEVICES" to a log: the environment poptune gave it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `poptune ARGS` with the parent's `CUDA_VISIBLE_DEVICES` set to `visible` (or unset).
fn poptune(args: &[&str], visible: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poptune"));
    c.args(args)
        .env("PYTHONPATH", root().join("python")) // examples/noop/noop.py imports poptune
        // No nvidia-smi to ask, whatever this machine has: a PATH without it.
        .env("PATH", path_without_nvidia_smi());
    match visible {
        Some(v) => c.env("CUDA_VISIBLE_DEVICES", v),
        None => c.env_remove("CUDA_VISIBLE_DEVICES"),
    };
    c.output().unwrap()
}

/// This process's PATH without the folders that hold an nvidia-smi.
fn path_without_nvidia_smi() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("nvidia-smi").exists())
        .collect();
    std::env::join_paths(dirs).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An experiment file in `dir` with `slots` slots and `extra` lines in `[trainable]`; the
/// trainable logs its environment to `dir/env.log`.
fn experiment(dir: &Path, slots: usize, stop: &str, extra: &str) -> PathBuf {
    let noop = root().join("examples/noop/noop.py");
    let log = dir.join("env.log");
    let line = format!(
        "echo \"$POPTUNE_SLOT ${{CUDA_VISIBLE_DEVICES-unset}} $POPTUNE_DEVICES\" >> '{}'; exec python3 '{}'",
        log.display(),
        noop.display()
    );
    let text = format!(
        r#"
name = "exp"
population = 4
slots = {slots}

[space.lr]
type = "float"
low = 0.1
high = 1.0

[stop]
steps = 4
{stop}

[trainable]
command = ["sh", "-c", {line:?}]
{extra}
"#
    );
    let file = dir.join("exp.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// What each slot's processes saw: slot -> the distinct "CUDA POPTUNE" pairs.
fn seen(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let log = std::fs::read_to_string(dir.join("env.log")).unwrap();
    let mut by_slot: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        let (slot, env) = line.split_once(' ').unwrap();
        let e = by_slot.entry(slot.to_string()).or_default();
        if !e.iter().any(|x| x == env) {
            e.push(env.to_string());
        }
    }
    by_slot
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(s, e)| (s.to_string(), vec![e.to_string()]))
        .collect()
}

#[test]
fn each_slot_sees_its_own_share_of_the_listed_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(
        tmp.path(),
        4,
        "",
        "gpus_per_slot = 0.5\ndevices = [\"a\", \"b\"]",
    );
    let out = poptune(&["run", file.to_str().unwrap(), "--quiet"], Some("0,1,2,3"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        seen(tmp.path()),
        map(&[("0", "a a"), ("1", "a a"), ("2", "b b"), ("3", "b b")])
    );
}

#[test]
fn the_parents_cuda_visible_devices_is_shared_out_and_without_gpus_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), 2, "", "gpus_per_slot = 1");
    let out = poptune(&["run", file.to_str().unwrap(), "--quiet"], Some("3,5"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(seen(tmp.path()), map(&[("0", "3 3"), ("1", "5 5")]));

    // No gpus_per_slot: nothing assigned; CUDA_VISIBLE_DEVICES as the parent has it.
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), 2, "", "");
    let out = poptune(&["run", file.to_str().unwrap(), "--quiet"], Some("7"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(seen(tmp.path()), map(&[("0", "7 cpu"), ("1", "7 cpu")]));
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), 1, "", "");
    let out = poptune(&["run", file.to_str().unwrap(), "--quiet"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(seen(tmp.path()), map(&[("0", "unset cpu")]));
}

#[test]
fn more_gpus_than_there_are_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), 4, "", "gpus_per_slot = 1");
    let out = poptune(&["run", file.to_str().unwrap()], Some("0,1"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "exp.toml:17:17: [trainable] `gpus_per_slot`: 4 slots × 1 GPU need 4 GPUs; 2 are \
             available (CUDA_VISIBLE_DEVICES=0,1): lower slots or gpus_per_slot, or list devices"
        ),
        "{err}"
    );
    // Refused before anything was created.
    assert!(!tmp.path().join("exp").exists());
    // No CUDA_VISIBLE_DEVICES and no nvidia-smi: no GPU at all.
    let out = poptune(&["run", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "0 are available (CUDA_VISIBLE_DEVICES is not set and nvidia-smi was not found)"
        ),
        "{err}"
    );
}

#[test]
fn a_resume_on_a_machine_with_fewer_gpus_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Stops at the first score (every score is above -1): a stopped run resumes.
    let file = experiment(tmp.path(), 2, "target = -1.0", "gpus_per_slot = 1");
    let _ = poptune(&["run", file.to_str().unwrap(), "--quiet"], Some("0,1"));
    let dir = tmp.path().join("exp");
    assert!(dir.join("experiment.db").is_file());
    let out = poptune(&["resume", dir.to_str().unwrap(), "--quiet"], Some("0"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 slots × 1 GPU need 2 GPUs; 1 is available (CUDA_VISIBLE_DEVICES=0)"),
        "{err}"
    );
}
