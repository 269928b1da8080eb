//! `poptune status --json`: one JSON object on stdout, the schema of docs/json.md, read from a
//! run of the no-op trainable with a fault, from a store holding NaN scores, and from a
//! directory of release 0.1.0.

use std::path::{Path, PathBuf};
use std::process::Command;

use poptune_store::{Commit, SqliteStore, StepRow, Store};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn poptune(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .args(args)
        .env("PYTHONPATH", root().join("python")) // examples/noop/noop.py imports poptune
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `poptune status ARGS --json`: stdout must be exactly one JSON object.
fn status_json(args: &[&str]) -> Value {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, out, err) = poptune(&all);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(v.is_object(), "{out}");
    assert_eq!(v["schema"], 1);
    v
}

/// Runs a synchronous experiment of 4 members, 10 steps, member 1 crashing once at step 7.
fn run(tmp: &Path) -> PathBuf {
    let noop = root().join("examples/noop/noop.py");
    let counter = tmp.join("fault-counter");
    let text = format!(
        r#"
name = "exp"
metric = "val_accuracy"
population = 4
seed = 3
slots = 2

[policy]
interval = 5
sync = "synchronous"

[space.lr]
type = "float"
low = 0.1
high = 10.0
log = true

[space.batch]
type = "ordered"
values = [16, 32, 64]

[stop]
steps = 10

[trainable]
command = ["python3", "{noop}"]
env = {{ POPTUNE_NOOP_FAULT = "crash", POPTUNE_NOOP_FAULT_MEMBER = "1", POPTUNE_NOOP_FAULT_STEP = "7", POPTUNE_NOOP_FAULT_COUNTER = "{counter}" }}
"#,
        noop = noop.display(),
        counter = counter.display()
    );
    let file = tmp.join("exp.toml");
    std::fs::write(&file, text).unwrap();
    let (code, _, err) = poptune(&["run", file.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    tmp.join("exp")
}

#[test]
fn a_finished_run_with_a_fault_reads_as_the_schema_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = run(tmp.path());
    let d = dir.to_str().unwrap();
    let v = status_json(&[d]);
    assert_eq!(v["name"], "exp");
    assert_eq!(v["metric"], "val_accuracy");
    assert_eq!(v["mode"], "max");
    assert_eq!(v["state"], "finished");
    assert_eq!(v["status"], "finished");
    assert_eq!(v["reason"], Value::Null);
    assert_eq!(v["population"], 4);
    assert_eq!(v["steps"], 10);
    assert!(Path::new(v["directory"].as_str().unwrap()).is_absolute());
    assert!(v["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    assert!(v["compute"].as_u64().unwrap() >= 40, "{}", v["compute"]);
    assert_eq!(v["faults_count"], 1);
    let fault = &v["faults"][0];
    assert_eq!(fault["member"], 1);
    assert_eq!(fault["kind"], "crash");
    assert!(fault["stderr"]
        .as_str()
        .unwrap()
        .contains("crashing on purpose"));
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    for (i, m) in members.iter().enumerate() {
        assert_eq!(m["id"], i);
        assert_eq!(m["step"], 10);
        assert_eq!(m["state"], "done");
        assert!(m["h"]["batch"].is_i64(), "{}", m["h"]);
        assert!(m["h"]["lr"].is_f64(), "{}", m["h"]);
        assert!(Path::new(m["checkpoint"].as_str().unwrap()).is_dir());
    }
    let best = &v["best"];
    let b = best["member"].as_u64().unwrap() as usize;
    assert_eq!(best["score"], members[b]["score"]);
    assert_eq!(best["h"], members[b]["h"]);
    assert!(Path::new(best["checkpoint"].as_str().unwrap())
        .join("state.txt")
        .is_file());
    // The schedule covers steps 0 to 10 without a gap, as `poptune replay` retrains it.
    let sched = best["schedule"].as_array().unwrap();
    assert_eq!(sched[0]["start"], 0);
    assert_eq!(sched[sched.len() - 1]["end"], 10);
    for w in sched.windows(2) {
        assert_eq!(w[0]["end"], w[1]["start"]);
    }
    assert!(best["origin"].is_u64());
    assert!(v.get("history").is_none());

    // With --steps: every recorded step, with its hyperparameters.
    let (code, out, err) = poptune(&["status", d, "--json", "--steps"]);
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    let rows = s["history"].as_array().unwrap();
    let store = SqliteStore::open(&dir.join("experiment.db")).unwrap();
    assert_eq!(rows.len(), store.steps().unwrap().len());
    for r in rows {
        assert!(r["h"]["lr"].is_f64() && r["h"]["batch"].is_i64(), "{r}");
        assert!(r["score"].is_f64(), "{r}");
        assert!(r["epoch"].is_u64() && r["metrics"].is_object(), "{r}");
    }
    // The last recorded step of each member was trained with its final hyperparameters.
    for m in members {
        let last = rows.iter().rev().find(|r| r["member"] == m["id"]).unwrap();
        assert_eq!(last["h"], m["h"], "{last}");
    }
}

#[test]
fn nan_scores_read_as_null() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = run(tmp.path());
    let mut store = SqliteStore::open(&dir.join("experiment.db")).unwrap();
    let mut members = store.members().unwrap();
    members[2].score = Some(f64::NAN);
    let c = Commit {
        members: vec![members[2].clone()],
        steps: vec![StepRow {
            member: 2,
            epoch: 99,
            step: 11,
            // SQLite refuses a NaN step score (the runner never records one: a non-finite
            // score is a fault); a metric may be NaN or infinite.
            score: 0.5,
            metrics: vec![("loss".into(), f64::INFINITY), ("acc".into(), f64::NAN)],
        }],
        ..Commit::default()
    };
    store.commit(&c).unwrap();
    drop(store);
    let (code, out, err) = poptune(&["status", dir.to_str().unwrap(), "--json", "--steps"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["members"][2]["score"], Value::Null);
    assert_ne!(v["best"]["member"], 2);
    assert!(v["best"]["score"].is_f64());
    let row = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["epoch"] == 99)
        .unwrap()
        .clone();
    assert_eq!(row["score"], 0.5);
    assert_eq!(row["metrics"]["loss"], Value::Null);
    assert_eq!(row["metrics"]["acc"], Value::Null);
}

#[test]
fn a_directory_of_release_0_1_0_and_bad_input() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.0-finished");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("v1");
    copy(&fixture, &src);
    let v = status_json(&[src.to_str().unwrap()]);
    assert_eq!(v["state"], "finished");
    assert_eq!(v["population"], 4);
    // No tally in that release: every recorded step counts once.
    assert!(v["compute"].as_u64().unwrap() >= 40);
    // --steps needs --json; a directory that is not an experiment is bad input, and stdout
    // stays empty.
    let (code, out, _) = poptune(&["status", src.to_str().unwrap(), "--steps"]);
    assert_eq!((code, out.as_str()), (2, ""));
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, out, err) = poptune(&["status", empty.to_str().unwrap(), "--json"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, "");
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
