//! Trainables that do not keep the protocol (docs/protocol.md) in every way we could think of:
//! each run ends, with exit code 1 and the fault recorded in the trainable's own words, never a
//! panic, a hang or unbounded memory.

use std::path::Path;
use std::process::Command;

use poptune_store::{FaultKind, RunStatus, SqliteStore, Store};

fn poptune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_poptune"))
}

/// An experiment whose trainable is the Python program `body`, which reads requests from
/// stdin (`req` is each one, parsed) and answers on stdout as it likes.
fn experiment(dir: &Path, body: &str) -> std::path::PathBuf {
    let script = dir.join("t.py");
    std::fs::write(
        &script,
        format!(
            "import json, os, sys, time\nfor line in sys.stdin:\n    req = json.loads(line)\n    if req.get('type') == 'exit':\n        break\n{}\n",
            body.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
    .unwrap();
    let file = dir.join("exp.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "h"
population = 3
slots = 1
[policy]
interval = 2
[space.lr]
type = "float"
low = 0.1
high = 1.0
[stop]
steps = 4
[trainable]
command = ["python3", "{}"]
step_timeout = 5
max_failures = 1
"#,
            script.display()
        ),
    )
    .unwrap();
    file
}

/// Runs it; the run must fail (nothing ever trains) with a protocol-level fault of `kind` whose
/// message contains `says`.
fn fails_with(body: &str, kind: FaultKind, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), body);
    let out = poptune()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{body}: {err}");
    assert!(!err.contains("panicked"), "{body}: {err}");
    assert!(err.contains("no member has trained"), "{body}: {err}");
    let store = SqliteStore::open(&dir.path().join("h/experiment.db")).unwrap();
    let faults = store.faults().unwrap();
    assert!(!faults.is_empty(), "{body}");
    assert!(
        faults
            .iter()
            .all(|f| f.kind == kind && f.message.contains(says)),
        "{body}: {faults:?}"
    );
    assert!(matches!(store.status().unwrap().0, RunStatus::Failed(_)));
}

#[test]
fn a_line_of_many_megabytes_without_a_newline_is_a_protocol_fault() {
    fails_with(
        "sys.stdout.write('x' * (40 << 20)); sys.stdout.flush(); time.sleep(30)",
        FaultKind::Protocol,
        "longer than 16 MiB",
    );
}

#[test]
fn bytes_that_are_not_utf8_are_a_protocol_fault() {
    fails_with(
        "sys.stdout.buffer.write(b'\\xff\\xfe{\\x00}\\n'); sys.stdout.flush()",
        FaultKind::Protocol,
        "not JSON",
    );
}

#[test]
fn json_of_the_wrong_shape_is_a_protocol_fault() {
    for (body, says) in [
        ("print(json.dumps([1, 2, 3]), flush=True)", "unexpected message"),
        (
            "print(json.dumps({'type': 'step', 'step': 'one', 'score': 1}), flush=True)",
            "needs \"step\"",
        ),
        (
            "print(json.dumps({'type': 'step', 'step': req['start_step'] + 7, 'score': 1}), flush=True)",
            "expected step",
        ),
        (
            "print(json.dumps({'type': 'step', 'step': req['start_step'] + 1, 'score': [1]}), flush=True)",
            "needs \"score\"",
        ),
        (
            "print(json.dumps({'type': 'step', 'step': req['start_step'] + 1, 'score': 1, 'metrics': 3}), flush=True)",
            "\"metrics\" must be an object",
        ),
        ("print(json.dumps({'type': 'saved'}), flush=True)", "said \"saved\" after 0"),
    ] {
        fails_with(body, FaultKind::Protocol, says);
    }
}

#[test]
fn numbers_json_cannot_hold_are_not_finite() {
    for (score, says) in [
        ("1e999", "beyond a double"),
        ("NaN", "NaN"),
        ("-Infinity", "Infinity"),
    ] {
        fails_with(
            &format!(
                "print('{{\"type\": \"step\", \"step\": %d, \"score\": {score}}}' % (req['start_step'] + 1), flush=True)"
            ),
            FaultKind::NonFinite,
            says,
        );
    }
}

#[test]
fn a_trainable_that_closes_stdout_and_lingers_is_a_crash_not_a_hang() {
    fails_with(
        "os.close(1); time.sleep(30)",
        FaultKind::Crash,
        "ended after 0",
    );
}
