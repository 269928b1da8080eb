//! A library run kept in an experiment directory (`Run::run_in`), as the README shows it:
//! cancelled part-way, continued by the same call, every step recorded once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use poptune::{Experiment, Hyperparams, Metrics, Param, Space, Trainable, TrainableError};
use poptune_run::inprocess::Persist;
use poptune_run::{NoCancel, Observer, Quiet, Run, RunEvent};
use poptune_store::{RunStatus, SqliteStore, Store};

struct Quadratic {
    x: f64,
}

impl Trainable for Quadratic {
    type State = f64;
    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
        let lr = h
            .f64("lr")
            .ok_or_else(|| TrainableError::new("missing lr"))?;
        self.x -= lr * 2.0 * (self.x - 3.0);
        Ok(Metrics::new(-(self.x - 3.0).powi(2)))
    }
    fn save(&self) -> f64 {
        self.x
    }
    fn restore(&mut self, s: &f64) {
        self.x = *s
    }
}

impl Persist for Quadratic {
    fn save_state(x: &f64, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("x"), x.to_string())
    }
    fn load_state(&self, dir: &Path) -> std::io::Result<f64> {
        let text = std::fs::read_to_string(dir.join("x"))?;
        text.trim().parse().map_err(std::io::Error::other)
    }
}

/// Cancels the run once `after` steps were trained.
struct StopAfter {
    after: u64,
    seen: AtomicU64,
    stop: AtomicBool,
}

impl Observer for StopAfter {
    fn event(&self, e: &RunEvent) {
        if let RunEvent::Step { .. } = e {
            if self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }
}

#[test]
fn a_library_run_in_a_directory_is_cancelled_and_continued() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("quadratic");
    let e = Experiment::new(Space::new().with("lr", Param::log_float(1e-4, 0.4)))
        .population(6)
        .steps(40)
        .workers(2)
        .seed(7);
    let make = |_member| Quadratic { x: 0.0 };
    let stop = StopAfter {
        after: 60,
        seen: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let first = e
        .run_in("quadratic", &dir, make, &stop, &stop.stop)
        .unwrap();
    assert_eq!(first.status, RunStatus::Interrupted);
    let store = SqliteStore::open(&dir.join("experiment.db")).unwrap();
    let recorded = store.steps().unwrap().len();
    assert!((60..240).contains(&recorded), "{recorded} steps recorded");
    drop(store);
    // The same call continues it.
    let second = e
        .run_in("quadratic", &dir, make, &Quiet, &NoCancel)
        .unwrap();
    assert_eq!(second.status, RunStatus::Finished);
    let store = SqliteStore::open(&dir.join("experiment.db")).unwrap();
    // Every step is recorded once in its epoch, each epoch's steps are contiguous, and every
    // member's state trained exactly the 40 steps (after an exploit a member counts on from
    // its donor's step, so a later epoch may train step numbers again).
    let steps = store.steps().unwrap();
    for m in 0..6 {
        let mine: Vec<(u64, u64)> = steps
            .iter()
            .filter(|s| s.member == m)
            .map(|s| (s.epoch, s.step))
            .collect();
        for w in mine.windows(2) {
            let ((e0, s0), (e1, s1)) = (w[0], w[1]);
            assert!(
                (e1 == e0 && s1 == s0 + 1) || e1 > e0,
                "member {m}: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }
    let members = store.members().unwrap();
    assert!(
        members.iter().all(|r| r.done && r.step == 40),
        "{members:?}"
    );
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    let (best, score) = second.best.unwrap();
    assert!(score > -1e-3, "member {best}: {score}");
    // A different experiment in the same directory is refused.
    let other = e.clone().population(5);
    let err = other
        .run_in("quadratic", &dir, make, &Quiet, &NoCancel)
        .unwrap_err();
    assert!(err.is_usage(), "{err}");
}

fn quadratic(steps: u64) -> Experiment {
    Experiment::new(Space::new().with("lr", Param::log_float(1e-4, 0.4)))
        .population(6)
        .steps(steps)
        .workers(2)
        .seed(11)
}

/// The checkpoint folder's entries (without `.tmp`), and the index's names.
fn folder_and_index(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut folder: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".tmp")
        .collect();
    folder.sort();
    let store = SqliteStore::open(&dir.join("experiment.db")).unwrap();
    let mut index: Vec<String> = store
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    index.sort();
    (folder, index)
}

#[test]
fn a_finished_experiment_trains_for_longer_when_only_its_stop_rules_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    let make = |_member| Quadratic { x: 0.0 };
    let first = quadratic(20)
        .run_in("q", &dir, make, &Quiet, &NoCancel)
        .unwrap();
    assert_eq!(first.status, RunStatus::Finished);
    let longer = quadratic(30)
        .run_in("q", &dir, make, &Quiet, &NoCancel)
        .unwrap();
    assert_eq!(longer.status, RunStatus::Finished);
    let (store, def) = poptune_run::local::open_dir(&dir).unwrap();
    assert_eq!(def.stop.steps, 30, "the new stop rules are stored");
    assert!(store
        .members()
        .unwrap()
        .iter()
        .all(|m| m.step == 30 && m.done));
    // Every member's steps 1..=30 in its epochs, none twice.
    let mut keys: Vec<(usize, u64, u64)> = store
        .steps()
        .unwrap()
        .iter()
        .map(|r| (r.member, r.epoch, r.step))
        .collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n);
    assert!(store.steps().unwrap().iter().any(|r| r.step > 20));
    drop(store);
    // Any other change is still a different experiment.
    let other = quadratic(30)
        .population(7)
        .run_in("q", &dir, make, &Quiet, &NoCancel);
    assert!(
        matches!(&other, Err(e) if e.is_usage()),
        "{:?}",
        other.map(|s| s.status)
    );
}

#[test]
fn a_finished_run_leaves_only_the_checkpoints_its_index_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    quadratic(40)
        .run_in("q", &dir, |_| Quadratic { x: 0.0 }, &Quiet, &NoCancel)
        .unwrap();
    let (folder, index) = folder_and_index(&dir);
    assert_eq!(folder, index);
    let tmp_left: Vec<_> = std::fs::read_dir(dir.join("checkpoints/.tmp"))
        .unwrap()
        .collect();
    assert!(tmp_left.is_empty(), "{tmp_left:?}");
}

#[test]
fn tidy_clears_what_a_killed_run_left_in_a_finished_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    quadratic(20)
        .run_in("q", &dir, |_| Quadratic { x: 0.0 }, &Quiet, &NoCancel)
        .unwrap();
    let (_, index) = folder_and_index(&dir);
    // A superseded checkpoint the index forgot but a kill kept from being deleted, and a
    // half-emptied spare.
    let orphan = dir.join("checkpoints/m0000-e0000-s00000005");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("x"), "1").unwrap();
    let spare = dir.join("checkpoints/.tmp/spare-1-2");
    std::fs::create_dir_all(&spare).unwrap();
    std::fs::write(spare.join("half"), "1").unwrap();
    let store = SqliteStore::open(&dir.join("experiment.db")).unwrap();
    poptune_run::local::tidy(&dir, &store).unwrap();
    let (folder, after) = folder_and_index(&dir);
    assert_eq!((folder, after), (index.clone(), index));
    assert!(!spare.exists() && !orphan.exists());
}

#[test]
fn a_directory_where_a_file_is_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "x").unwrap();
    for dir in [file.clone(), file.join("below")] {
        let r = quadratic(5).run_in("q", &dir, |_| Quadratic { x: 0.0 }, &Quiet, &NoCancel);
        match r {
            Err(e) => assert!(e.is_usage(), "{}: {e}", dir.display()),
            Ok(s) => panic!("{}: ran, {}", dir.display(), s.status),
        }
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}
