//! TensorBoard files: written live by `poptune run` and after the fact by
//! `poptune report --tensorboard`, read back with the `tensorboard` package's own reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use poptune_store::{SqliteStore, Store};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn poptune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poptune"));
    c.env("PYTHONPATH", root().join("python")); // examples/noop/noop.py imports poptune
    c
}

fn experiment(dir: &Path, name: &str) -> PathBuf {
    let noop = root().join("examples/noop/noop.py");
    let text = format!(
        r#"
name = "{name}"
population = 4
seed = 5
slots = 2

[policy]
interval = 5
sync = "synchronous"
[policy.exploit]
strategy = "truncation"
fraction = 0.34
[policy.explore]
method = "perturb"

[space.lr]
type = "float"
low = 0.1
high = 10.0
log = true

[stop]
steps = 20

[trainable]
command = ["python3", "{noop}"]
"#,
        noop = noop.display()
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Each member's scalars, by tag: (step, value), as TensorBoard's `EventAccumulator` reads
/// them from `logdir/member-NNNN`.
type Scalars = BTreeMap<String, BTreeMap<String, Vec<(u64, f64)>>>;

const READER: &str = r#"
import json, os, sys
try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except ImportError as e:
    print("cannot import the tensorboard package (%s): install it with "
          "`python3 -m pip install tensorboard`" % e, file=sys.stderr)
    sys.exit(3)
logdir = sys.argv[1]
out = {}
for run in sorted(os.listdir(logdir)):
    acc = EventAccumulator(os.path.join(logdir, run))
    acc.Reload()
    out[run] = {t: [[s.step, s.value] for s in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
print(json.dumps(out))
"#;

fn read_back(logdir: &Path) -> Scalars {
    let out = Command::new("python3")
        .arg("-c")
        .arg(READER)
        .arg(logdir)
        .output()
        .expect("python3 must be on PATH to read TensorBoard files back");
    assert!(
        out.status.success(),
        "reading {} back with the tensorboard package failed (this test needs it: \
         `python3 -m pip install tensorboard`):\n{}",
        logdir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reader prints JSON")
}

/// The files hold what the store holds: every step's score and hyperparameter, every exploit.
fn check_against_store(scalars: &Scalars, store: &SqliteStore) {
    let steps = store.steps().unwrap();
    let events = store.events().unwrap();
    assert_eq!(scalars.len(), 4, "one TensorBoard run per member");
    for m in 0..4 {
        let run = &scalars[&format!("member-{m:04}")];
        let mine: Vec<_> = steps.iter().filter(|s| s.member == m).collect();
        let want: Vec<(u64, f64)> = mine
            .iter()
            .map(|s| (s.step, f64::from(s.score as f32)))
            .collect();
        assert_eq!(run["score"], want, "member {m}: the score of every step");
        assert_eq!(
            run["h/lr"].len(),
            mine.len(),
            "member {m}: lr at every step"
        );
        let exploits: Vec<(u64, f64)> = events
            .iter()
            .filter(|e| e.recipient == m)
            .filter_map(|e| e.donor.map(|d| (e.step, d as f64)))
            .collect();
        let donors = run.get("exploit/donor").cloned().unwrap_or_default();
        assert_eq!(donors, exploits, "member {m}: its exploits' donors");
        let donor_steps = run.get("exploit/donor_step").map_or(0, Vec::len);
        assert_eq!(
            donor_steps,
            exploits.len(),
            "member {m}: its exploits' donor steps"
        );
        // The hyperparameters after an exploit are the event's new ones.
        for e in events.iter().filter(|e| e.recipient == m) {
            let after = mine
                .iter()
                .position(|s| s.step == e.donor_step + 1 && s.epoch > 0);
            if let (Some(i), Some(lr)) = (after, e.new_h.f64("lr")) {
                assert_eq!(
                    run["h/lr"][i].1,
                    f64::from(lr as f32),
                    "member {m}: lr after {e:?}"
                );
            }
        }
    }
    assert!(
        events.iter().any(|e| e.donor.is_some()),
        "the experiment must exploit for this test to mean something"
    );
}

#[test]
fn live_files_and_the_reports_files_hold_the_whole_history() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), "exp");
    ok(
        poptune()
            .arg("run")
            .arg(&file)
            .arg("--quiet")
            .output()
            .unwrap(),
        "poptune run",
    );
    let dir = tmp.path().join("exp");
    let store = SqliteStore::open(&dir.join("experiment.db")).unwrap();

    let live = read_back(&dir.join("tensorboard"));
    check_against_store(&live, &store);

    let logdir = tmp.path().join("tb");
    let out = ok(
        poptune()
            .args(["report", dir.to_str().unwrap(), "--tensorboard"])
            .arg(&logdir)
            .output()
            .unwrap(),
        "poptune report --tensorboard",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tensorboard --logdir"), "{text}");
    assert!(
        !dir.join("report").exists(),
        "without --out, only the TensorBoard files"
    );
    let after = read_back(&logdir);
    check_against_store(&after, &store);
    assert_eq!(live, after, "the live files and the report's say the same");

    // Again into the same directory: refused (bad input), TensorBoard would show both.
    let again = poptune()
        .args(["report", dir.to_str().unwrap(), "--tensorboard"])
        .arg(&logdir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("twice"));
}

#[test]
fn no_tensorboard_writes_none() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), "quiet");
    ok(
        poptune()
            .arg("run")
            .arg(&file)
            .args(["--quiet", "--no-tensorboard"])
            .output()
            .unwrap(),
        "poptune run --no-tensorboard",
    );
    assert!(tmp.path().join("quiet/experiment.db").exists());
    assert!(!tmp.path().join("quiet/tensorboard").exists());
}
