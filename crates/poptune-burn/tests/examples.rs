//! The examples end to end (run in release: `cargo test --release`).

use std::path::Path;

use poptune_burn::tasks::{self, Method, Setup, Task};
use poptune_cli::commands::{run, RunArgs};
use poptune_run::local as durable;
use poptune_store::Store;

fn setup(task: Task, method: Method, synchronous: bool) -> Setup {
    Setup {
        task,
        method,
        // FIRE-PBT's two sub-populations and evaluator need 5 or more.
        population: if method == Method::Fire { 6 } else { 4 },
        steps: 6,
        interval: 2,
        seed: 3,
        slots: 2,
        synchronous,
    }
}

fn steps_of(dir: &Path) -> Vec<(usize, u64, f64)> {
    let (store, _) = durable::open_dir(dir).unwrap();
    let mut s: Vec<(usize, u64, f64)> = store
        .steps()
        .unwrap()
        .into_iter()
        .map(|r| (r.member, r.step, r.score))
        .collect();
    s.sort_by_key(|a| (a.0, a.1));
    s
}

#[test]
fn in_process_and_external_process_runs_are_identical() {
    let exe = Path::new(env!("CARGO_BIN_EXE_poptune-burn"));
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(Task::Digits, Method::Pbt, true);
    let a = tmp.path().join("inprocess");
    let r = tasks::tune_with(&s, &a, true, exe).unwrap();
    assert!(r.score > 0.5, "validation accuracy {}", r.score);
    let test = r.test_accuracy.unwrap();
    assert!((0.5..=1.0).contains(&test), "test accuracy {test}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("result.json")).unwrap()).unwrap();
    assert_eq!(json["best_member"], r.best_member);

    // The same experiment, with the trainable as an external process (`serve`).
    let b = tmp.path().join("external");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("experiment.toml"), s.experiment_toml(exe)).unwrap();
    run(&RunArgs {
        file: b.join("experiment.toml"),
        quiet: true,
        no_tensorboard: true,
        store: None,
        lease: 30.0,
        outage_limit: 300.0,
    })
    .unwrap();
    let (sa, sb) = (steps_of(&a), steps_of(&b));
    assert_eq!(sa.len(), 4 * 6);
    for (x, y) in sa.iter().zip(&sb) {
        assert_eq!(x, y, "in-process {x:?}, external {y:?}");
    }
    let (store_a, _) = durable::open_dir(&a).unwrap();
    let (store_b, _) = durable::open_dir(&b).unwrap();
    assert_eq!(store_a.events().unwrap(), store_b.events().unwrap());
    assert!(!store_a.events().unwrap().is_empty());

    // Running it again continues the finished experiment: nothing new is trained.
    let again = tasks::tune_with(&s, &a, true, exe).unwrap();
    assert_eq!(again.best_member, r.best_member);
    assert_eq!(steps_of(&a), sa);
}

#[test]
fn baselines_change_nothing_and_grid_starts_on_a_grid() {
    let exe = Path::new(env!("CARGO_BIN_EXE_poptune-burn"));
    let tmp = tempfile::tempdir().unwrap();
    for method in [Method::Random, Method::Grid] {
        let dir = tmp.path().join(method.name());
        tasks::tune_with(&setup(Task::Tsp, method, false), &dir, true, exe).unwrap();
        let (store, _) = durable::open_dir(&dir).unwrap();
        assert!(
            store.events().unwrap().is_empty(),
            "{method:?} changed hyperparameters"
        );
    }
    let (store, def) = durable::open_dir(&tmp.path().join("grid")).unwrap();
    let members = store.members().unwrap();
    let two_opt: Vec<f64> = members
        .iter()
        .map(|m| m.h.f64("two_opt").unwrap())
        .collect();
    assert_eq!(def.initial, poptune_cli::config::InitialKind::Grid);
    let mut sorted = two_opt.clone();
    sorted.sort_by(f64::total_cmp);
    // Two values per dimension for 4 members over 2 dimensions: the cells' centres.
    assert_eq!(sorted, [0.25, 0.25, 0.75, 0.75], "{two_opt:?}");
}

#[test]
fn annealing_shortens_tours_and_pbt_exploits() {
    let exe = Path::new(env!("CARGO_BIN_EXE_poptune-burn"));
    let tmp = tempfile::tempdir().unwrap();
    let mut s = setup(Task::Tsp, Method::Pbt, true);
    s.steps = 20;
    let r = tasks::tune_with(&s, tmp.path(), true, exe).unwrap();
    // Annealing gets far below a random tour (about 104 long for 200 cities).
    let random = poptune_burn::tsp::Annealer::new(tasks::tsp_instance(), 1, 1).length();
    assert!(random > 80.0, "a random tour is {random} long");
    assert!(
        r.score < 0.4 * random,
        "tour length {} vs random {random}",
        r.score
    );
    assert!(r.test_accuracy.is_none());
    let (store, _) = durable::open_dir(tmp.path()).unwrap();
    assert!(store.events().unwrap().iter().any(|e| e.donor.is_some()));
}

/// The experiment file an example writes (for `poptune replay` and `poptune resume`) states
/// the definition the example runs, for every task, method and mode.
#[test]
fn the_written_experiment_file_states_the_definition_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("poptune-burn");
    std::fs::write(&exe, "").unwrap();
    let mut perms = std::fs::metadata(&exe).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&exe, perms).unwrap();
    for task in [Task::Mnist1d, Task::Digits, Task::Tsp] {
        for method in Method::ALL {
            for synchronous in [false, true] {
                let s = setup(task, method, synchronous);
                let dir = tmp
                    .path()
                    .join(format!("{task:?}-{method:?}-{synchronous}"));
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join("experiment.toml");
                let parsed = poptune_cli::config::parse(&file, &s.experiment_toml(&exe))
                    .unwrap_or_else(|e| panic!("{task:?} {method:?}: {e}"));
                let built = s.definition(&exe, &dir).unwrap();
                assert!(
                    built.same_as(&parsed),
                    "{task:?} {method:?} sync {synchronous}:\n built {}\nparsed {}",
                    built.to_json(),
                    parsed.to_json()
                );
            }
        }
    }
}
