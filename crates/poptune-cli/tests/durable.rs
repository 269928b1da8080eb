//! `poptune run` with an external Python trainable: kill -9 and resume, faults, bad files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use poptune_store::{RunStatus, SqliteStore, Store};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn poptune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poptune"));
    c.env("PYTHONPATH", root().join("python")); // examples/noop/noop.py imports poptune
    c
}

fn experiment(dir: &Path, sync: &str, extra_trainable: &str) -> PathBuf {
    let noop = root().join("examples/noop/noop.py");
    let text = format!(
        r#"
name = "exp"
population = 6
seed = 5
slots = 2

[policy]
interval = 5
sync = "{sync}"
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
steps = 30

[trainable]
command = ["python3", "{noop}"]
max_failures = 2
{extra_trainable}
"#,
        noop = noop.display()
    );
    let file = dir.join("exp.toml");
    std::fs::write(&file, text).unwrap();
    file
}

type Snapshot = (Vec<String>, Vec<(usize, u64, u64)>, Vec<String>);

fn snapshot(dir: &Path) -> Snapshot {
    let store = SqliteStore::open(&dir.join("exp/experiment.db")).unwrap();
    let members = store
        .members()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {:?} {}",
                m.id,
                m.h,
                m.step,
                m.score.map(f64::to_bits),
                m.done
            )
        })
        .collect();
    let steps = store
        .steps()
        .unwrap()
        .iter()
        .map(|s| (s.member, s.step, s.score.to_bits()))
        .collect();
    let events = store
        .events()
        .unwrap()
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    (members, steps, events)
}

fn run_to_end(file: &Path) -> Output {
    let out = poptune()
        .arg("run")
        .arg(file)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `poptune run FILE --quiet` in the background, its output discarded.
fn start_quietly(file: &Path) -> Child {
    poptune()
        .arg("run")
        .arg(file)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts a run and kills it (SIGKILL) after `delay` unless it ended first; whether it did.
fn run_killed_after(file: &Path, delay: Duration) -> bool {
    let mut child = start_quietly(file);
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    killed
}

#[test]
fn killed_runs_resume_to_the_same_result() {
    let reference = tempfile::tempdir().unwrap();
    let file = experiment(
        reference.path(),
        "synchronous",
        "env = { POPTUNE_NOOP_SLEEP = \"0.002\" }",
    );
    let start = Instant::now();
    run_to_end(&file);
    let full = start.elapsed();
    let expected = snapshot(reference.path());
    assert_eq!(expected.1.len(), 6 * 30, "every step recorded once");
    assert!(!expected.2.is_empty(), "the run exploited");

    let dir = tempfile::tempdir().unwrap();
    let file = experiment(
        dir.path(),
        "synchronous",
        "env = { POPTUNE_NOOP_SLEEP = \"0.002\" }",
    );
    // Kill it at many points, then let it finish.
    let mut kills = 0;
    for i in 0..12u32 {
        let delay = full.mul_f64(0.08 + 0.05 * f64::from(i % 5)) + Duration::from_millis(40);
        kills += u32::from(run_killed_after(&file, delay));
        // The history is consistent at every point: no duplicate, no gap per member.
        let (_, steps, _) = snapshot(dir.path());
        for m in 0..6 {
            let mine: Vec<u64> = steps.iter().filter(|s| s.0 == m).map(|s| s.1).collect();
            assert_eq!(
                mine,
                (1..=mine.len() as u64).collect::<Vec<_>>(),
                "member {m}"
            );
        }
    }
    assert!(
        kills > 3,
        "the test must really interrupt runs ({kills} kills)"
    );
    run_to_end(&file);
    let got = snapshot(dir.path());
    assert_eq!(got.1, expected.1, "step histories differ");
    assert_eq!(got.2, expected.2, "lineage differs");
    assert_eq!(got.0, expected.0, "final members differ");
    // Resuming a finished experiment does nothing and says so.
    let out = run_to_end(&file);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already finished"));

    // The report, the replay of the best member and the export work on the result.
    let exp = dir.path().join("exp");
    let out = poptune().arg("report").arg(&exp).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(exp.join("report/steps.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6 * 30);
    let html = std::fs::read_to_string(exp.join("report/report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    for f in [
        "scores.png",
        "hyperparameters.png",
        "lineage.png",
        "events.jsonl",
    ] {
        assert!(exp.join("report").join(f).is_file(), "{f}");
    }
    // A relative directory, as a user types it: the trainable (in its own working
    // directory) must still get absolute checkpoint paths.
    let parent = dir.path().parent().unwrap();
    let relative = dir.path().strip_prefix(parent).unwrap().join("exp");
    let out = poptune()
        .arg("replay")
        .arg(&relative)
        .current_dir(parent)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("identical"), "{text}");
    let dest = dir.path().join("best");
    let out = poptune()
        .arg("export")
        .arg(&exp)
        .arg("--out")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dest.join("state.txt").is_file());
}

/// Checks what a store and its checkpoint folder say after any stop. Per member, each epoch
/// (stretch of training between decisions) records contiguous steps, each once, starting
/// where the member's state was: where its previous epoch ended, or at the step of a donor it
/// copied; its step is where its state is now. Every member's checkpoint is indexed and every
/// indexed checkpoint is whole.
fn check_consistent(exp: &Path) {
    let store = SqliteStore::open(&exp.join("experiment.db")).unwrap();
    let steps = store.steps().unwrap();
    let members = store.members().unwrap();
    let events = store.events().unwrap();
    let index = store.checkpoints().unwrap();
    let ckpts = poptune_store::Checkpoints::open(&exp.join("checkpoints")).unwrap();
    common::check_histories(&steps, &events, &members);
    for m in &members {
        if let Some(c) = &m.checkpoint {
            assert!(
                index.iter().any(|k| &k.name == c),
                "member {}'s checkpoint {c} is not indexed",
                m.id
            );
        }
    }
    for k in &index {
        ckpts.verify(&k.name, &k.checksum).unwrap();
    }
}

#[test]
fn killed_asynchronous_runs_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), "asynchronous", "");
    let exp = dir.path().join("exp");
    let mut kills = 0;
    for i in 0..12u64 {
        kills += u32::from(run_killed_after(&file, Duration::from_millis(60 + 15 * i)));
        check_consistent(&exp);
    }
    assert!(
        kills > 3,
        "the test must really interrupt runs ({kills} kills)"
    );
    // A checkpoint directory that no index records (what a run killed between placing a
    // checkpoint and recording it leaves) is deleted when the run continues.
    let orphan = exp.join("checkpoints/m0099-s00000005");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("state.txt"), "0 0.5").unwrap();
    run_to_end(&file);
    check_consistent(&exp);
    let store = SqliteStore::open(&exp.join("experiment.db")).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    // Every member's state trained exactly the 30 steps (steps trained again after an exploit
    // of a donor behind it are recorded too, in a later epoch; a member that copied a donor
    // already at step 30 is done without training them itself). The compute counts every
    // recorded step, and the steps of the segments that the kills cut short.
    let members = store.members().unwrap();
    assert!(
        members.iter().all(|m| m.done && m.step == 30),
        "{members:?}"
    );
    let recorded = store.steps().unwrap().len() as u64;
    assert!(store.tally().unwrap().unwrap().compute >= recorded);
    // No checkpoint went missing or bad on the way (that would be a fault of kind
    // "checkpoint"): the no-op trainable itself never fails here.
    assert_eq!(store.faults().unwrap(), vec![], "faults");
    let mut on_disk: Vec<String> = std::fs::read_dir(exp.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".tmp")
        .collect();
    on_disk.sort();
    let mut indexed: Vec<String> = store
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    indexed.sort();
    assert_eq!(
        on_disk, indexed,
        "the folder holds exactly the indexed checkpoints"
    );
}

#[test]
fn a_stopping_rule_ends_the_run_and_the_store_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), "asynchronous", "");
    // The no-op member 5 scores 0.805 and more from its first step.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("steps = 30", "steps = 30\ntarget = 0.8");
    std::fs::write(&file, text).unwrap();
    let out = run_to_end(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("stopped: member 5 reached the target"),
        "{stdout}"
    );
    let exp = dir.path().join("exp");
    let store = SqliteStore::open(&exp.join("experiment.db")).unwrap();
    let (status, elapsed) = store.status().unwrap();
    assert!(
        status
            .to_string()
            .starts_with("stopped: member 5 reached the target"),
        "{status}"
    );
    assert!(elapsed > 0.0, "running time {elapsed}");
    assert!(store.steps().unwrap().len() < 6 * 30, "it stopped early");
    check_consistent(&exp);
}

#[test]
fn a_second_run_of_a_running_experiment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(
        dir.path(),
        "asynchronous",
        "env = { POPTUNE_NOOP_SLEEP = \"0.05\" }",
    );
    let mut first = start_quietly(&file);
    // Until the first run has created the experiment, the second could be the first.
    let db = dir.path().join("exp/experiment.db");
    let start = Instant::now();
    while SqliteStore::open(&db)
        .and_then(|s| s.steps())
        .map_or(true, |s| s.is_empty())
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first run records nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for cmd in ["run", "resume"] {
        let target = if cmd == "run" {
            file.clone()
        } else {
            dir.path().join("exp")
        };
        let out = poptune().arg(cmd).arg(&target).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("another poptune process"), "{cmd}: {err}");
        // Refused before it announces a start it will not make.
        assert!(!err.contains("experiment `"), "{cmd}: {err}");
    }
    first.kill().unwrap();
    first.wait().unwrap();
    check_consistent(&dir.path().join("exp"));
}

fn faulty(kind: &str, times: u32, dir: &Path) -> (PathBuf, Output) {
    let counter = dir.join("fault-counter");
    let env = format!(
        "env = {{ POPTUNE_NOOP_CHATTY = \"1\", POPTUNE_NOOP_FAULT = \"{kind}\", POPTUNE_NOOP_FAULT_MEMBER = \"1\", POPTUNE_NOOP_FAULT_STEP = \"7\", POPTUNE_NOOP_FAULT_TIMES = \"{times}\", POPTUNE_NOOP_FAULT_COUNTER = \"{}\" }}",
        counter.display()
    );
    // Only the hang waits for the timeout; the others get a generous one (tests run in
    // parallel on a loaded machine).
    let timeout = if kind == "hang" { 3 } else { 60 };
    // Synchronous, so that member 1 surely trains its own step 7: asynchronously it may copy
    // a donor that is already past step 7 and never reach it.
    let file = experiment(
        dir,
        "synchronous",
        &format!("{env}\nstep_timeout = {timeout}"),
    );
    // Without PYTHONUNBUFFERED (set on some machines, unset on most): a crash must be a fault
    // even when the helper had nothing flushed yet for the segment.
    let out = poptune()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .env_remove("PYTHONUNBUFFERED")
        .output()
        .unwrap();
    (file, out)
}

#[test]
fn faulty_trainables_do_not_stop_the_experiment() {
    for kind in ["crash", "garbage", "nan", "hang"] {
        let dir = tempfile::tempdir().unwrap();
        let (_, out) = faulty(kind, 1, dir.path());
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store = SqliteStore::open(&dir.path().join("exp/experiment.db")).unwrap();
        let faults = store.faults().unwrap();
        assert_eq!(faults.len(), 1, "{kind}: {faults:?}");
        assert_eq!(faults[0].member, 1);
        // The step that failed: the first one without an answer, inside the segment 6..=10
        // (not its start, 5); at most step 7, where the trainable fails (a crash may lose
        // the buffered answer to step 6).
        assert!(
            (6..=7).contains(&faults[0].step),
            "{kind}: the fault names the step that failed: {faults:?}"
        );
        let expected_kind = match kind {
            "garbage" => "protocol",
            "nan" => "non-finite",
            "hang" => "timeout",
            k => k,
        };
        assert_eq!(faults[0].kind.as_str(), expected_kind, "{faults:?}");
        if kind == "crash" {
            assert!(
                faults[0].stderr.contains("crashing on purpose"),
                "{faults:?}"
            );
        }
        // The fault carries its own segment's stderr: member 1's steps, not the lines of
        // the segments the slot's process trained before (every step says its member).
        let said: Vec<&str> = faults[0]
            .stderr
            .lines()
            .filter(|l| l.starts_with("noop: member"))
            .collect();
        assert!(!said.is_empty(), "{kind}: {faults:?}");
        assert!(
            said.iter().all(|l| l.starts_with("noop: member 1 step")),
            "{kind}: another segment's output in the fault: {said:?}"
        );
        assert_eq!(store.steps().unwrap().len(), 6 * 30, "{kind}");
        assert_eq!(store.status().unwrap().0, RunStatus::Finished);
        assert!(dir.path().join("exp/logs/slot-0.stderr.log").exists());
    }
}

#[test]
fn a_trainable_that_fails_at_every_start_fails_the_run_early_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), "asynchronous", "");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        &format!(
            "command = [\"python3\", \"{}\"]",
            root().join("examples/noop/noop.py").display()
        ),
        "command = [\"python3\", \"-c\", \"import no_such_module_here\"]",
    );
    std::fs::write(&file, text).unwrap();
    let out = poptune()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no member has trained"), "{err}");
    assert!(
        err.contains("No module named 'no_such_module_here'"),
        "the error quotes the trainable's stderr: {err}"
    );
    let store = SqliteStore::open(&dir.path().join("exp/experiment.db")).unwrap();
    // max_failures = 2: it gives up at the third fault (the other slot's segment under way
    // may add one), not after every member's retries and replacements.
    let faults = store.faults().unwrap();
    assert!((3..=4).contains(&faults.len()), "{faults:?}");
    match store.status().unwrap().0 {
        RunStatus::Failed(why) => assert!(why.contains("No module named"), "{why}"),
        other => panic!("recorded as {other:?}, not failed"),
    }
    let status = poptune()
        .arg("status")
        .arg(dir.path().join("exp"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("failed"), "{shown}");
    assert!(!shown.contains("interrupted"), "{shown}");
    // The status line stays one line; the trainable's stderr follows it, indented.
    let line = shown
        .lines()
        .find(|l| l.starts_with("status:"))
        .unwrap_or_default();
    assert!(line.contains("running time"), "{shown}");
    assert!(!line.contains("Traceback"), "{shown}");
    assert!(shown.contains("\n    ModuleNotFoundError"), "{shown}");
}

#[test]
fn a_member_that_keeps_failing_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = faulty("crash", 3, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = SqliteStore::open(&dir.path().join("exp/experiment.db")).unwrap();
    assert_eq!(store.faults().unwrap().len(), 3);
    let events = store.events().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.recipient == 1 && e.donor.is_some() && e.step == 5),
        "member 1 replaced by an exploit: {events:?}"
    );
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
}

#[test]
fn malformed_experiment_files_exit_2_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(experiment(dir.path(), "synchronous", "")).unwrap();
    for (change, needle) in [
        (("population = 6", "population = 0"), "population"),
        (("low = 0.1", "low = -1.0"), "log-uniform"),
        (("fraction = 0.34", "fraction = 2.0"), "fraction"),
        (("steps = 30", "stepz = 30"), "stepz"),
        (("[stop]", "[stop\n"), "exp.toml"),
        (("slots = 2", "slots = \"two\""), "slots"),
        (("method = \"perturb\"", "method = \"mutate\""), "mutate"),
    ] {
        let bad = good.replace(change.0, change.1);
        assert_ne!(bad, good);
        let file = dir.path().join("exp.toml");
        std::fs::write(&file, bad).unwrap();
        let out = poptune().arg("run").arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{change:?}: {err}");
        assert!(err.contains(needle), "{change:?}: {err}");
        assert!(err.contains("exp.toml:"), "{change:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = poptune()
        .arg("run")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = poptune().arg("status").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_finished_experiment_runs_longer_when_its_steps_are_raised_and_not_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), "synchronous", "");
    run_to_end(&file);
    let exp = dir.path().join("exp");
    // What a kill just after the end was recorded leaves: a checkpoint the index forgot, and
    // a half-emptied spare. The next command clears them, even with nothing to train.
    let orphan = exp.join("checkpoints/m0000-e000000-s00000005");
    std::fs::create_dir_all(&orphan).unwrap();
    let spare = exp.join("checkpoints/.tmp/spare-1-1");
    std::fs::create_dir_all(&spare).unwrap();
    std::fs::write(spare.join("left"), "x").unwrap();
    let again = run_to_end(&file);
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("already finished"), "{said}");
    assert!(!orphan.exists() && !spare.exists());
    check_consistent(&exp);
    // A longer `steps` trains every member on to it.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("steps = 30", "steps = 40");
    std::fs::write(&file, &text).unwrap();
    run_to_end(&file);
    let store = SqliteStore::open(&exp.join("experiment.db")).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    assert!(store.members().unwrap().iter().all(|m| m.step == 40));
    // Every member trained steps 31 to 40 (some again, after an exploit).
    let longer = store
        .steps()
        .unwrap()
        .iter()
        .filter(|r| r.step > 30)
        .count();
    assert!(longer >= 6 * 10, "{longer} steps past 30");
    check_consistent(&exp);
    drop(store);
    // Any other change is refused, with exit code 2.
    std::fs::write(&file, text.replace("population = 6", "population = 7")).unwrap();
    let out = poptune()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different definition"), "{err}");
    assert!(
        err.contains("changed: population"),
        "it says what changed: {err}"
    );
}
