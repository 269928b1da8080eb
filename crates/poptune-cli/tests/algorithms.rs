//! PB2, PB2-Mix and FIRE-PBT through the binary: a synchronous run decides the same way every
//! time, keeps its hyperparameters in the space and copies only better members; and (with the
//! `pg-tests` feature and a server in POPTUNE_TEST_PG_URL) PostgreSQL workers make the same
//! decisions as a local run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use poptune::Event;
use poptune_store::Store;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn poptune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poptune"));
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c.env("PYTHONPATH", root().join("python"));
    c
}

/// An experiment file: noop members whose score climbs at a rate set by `lr` (and, for
/// PB2-Mix, a `width` choice that does nothing), `algorithm` in `[policy]`.
fn experiment(dir: &Path, name: &str, algorithm: &str, population: usize) -> PathBuf {
    let noop = root().join("examples/noop/noop.py");
    let text = format!(
        r#"
name = "{name}"
population = {population}
seed = 5
slots = 2
directory = "run"

[policy]
interval = 5
sync = "synchronous"
algorithm = "{algorithm}"

[space.lr]
type = "float"
low = 0.1
high = 10.0
log = true

[space.width]
type = "choice"
values = ["narrow", "wide"]

[stop]
steps = 40

[trainable]
command = ["python3", "{noop}"]
"#,
        noop = noop.display(),
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

fn run_local(file: &Path) {
    let out = poptune()
        .args(["run", file.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a decision is: round, recipient, donor (and its step), new hyperparameters.
fn decisions(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {:?} {} {:?}",
                e.step, e.recipient, e.donor, e.donor_step, e.new_h
            )
        })
        .collect()
}

fn local_events(dir: &Path) -> Vec<Event> {
    let (store, _) = poptune_run::local::open_dir(dir).unwrap();
    store.events().unwrap()
}

fn check_run(algorithm: &str, population: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    run_local(&experiment(&a, "alg", algorithm, population));
    run_local(&experiment(&b, "alg", algorithm, population));
    let ea = local_events(&a.join("run"));
    let eb = local_events(&b.join("run"));
    assert!(!ea.is_empty(), "{algorithm}: no member exploited");
    assert_eq!(
        decisions(&ea),
        decisions(&eb),
        "{algorithm}: two synchronous runs with one seed decided differently"
    );
    for e in &ea {
        let lr = e.new_h.f64("lr").unwrap();
        assert!(
            (0.1..=10.0).contains(&lr),
            "{algorithm}: lr {lr} left the space"
        );
        let w = e.new_h.get("width").unwrap().to_string();
        assert!(w.contains("narrow") || w.contains("wide"), "{w}");
        if algorithm != "fire" {
            // Truncation: a donor scores better than the member that copies it.
            assert!(
                e.donor_score.unwrap() > e.recipient_score,
                "{algorithm}: {e:?} copied a worse member"
            );
        }
    }
}

#[test]
fn pb2_runs_decide_the_same_way_every_time() {
    check_run("pb2", 6);
}

#[test]
fn pb2_mix_runs_decide_the_same_way_every_time() {
    check_run("pb2-mix", 6);
}

#[test]
fn fire_runs_decide_the_same_way_every_time() {
    check_run("fire", 7);
}

/// Asynchronous PB2 decides outside the runner's lock and settles the decision afterwards:
/// every member still trains all its steps, and the decisions are recorded.
#[test]
fn an_asynchronous_pb2_run_trains_every_member_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let file = asynchronous(tmp.path(), "async", "pb2", 6);
    run_local(&file);
    let (store, _) = poptune_run::local::open_dir(&tmp.path().join("run")).unwrap();
    check_finished_async_pb2(&store);
}

/// An asynchronous PB2 run of [`asynchronous`] ended: every member trained all 40 steps, every
/// segment trained from a scored state left an interval in its trail (up to 7 per member,
/// fewer after exploits move a member to a donor's step), and every exploit copied a better
/// member with an `lr` in the space.
fn check_finished_async_pb2(store: &dyn poptune_store::Store) {
    assert_eq!(
        store.status().unwrap().0,
        poptune_store::RunStatus::Finished
    );
    let members = store.members().unwrap();
    assert!(
        members.iter().all(|m| m.done && m.step == 40),
        "{members:?}"
    );
    let events = store.events().unwrap();
    // A member without an interval trained only its first segment (from no score) and then
    // took the state of a donor that had finished (a slot's first process can start so late
    // on a busy machine that the other slot trains everyone else to the end meanwhile).
    for m in members.iter().filter(|m| m.trail.intervals.is_empty()) {
        assert!(
            events
                .iter()
                .any(|e| e.recipient == m.id && e.step == 5 && e.donor_step == 40),
            "member {} has no interval: {members:?}\n{events:?}",
            m.id
        );
    }
    assert!(!events.is_empty(), "no member exploited");
    for e in &events {
        let lr = e.new_h.f64("lr").unwrap();
        assert!((0.1..=10.0).contains(&lr), "lr {lr} left the space");
        assert!(e.donor_score.unwrap() > e.recipient_score, "{e:?}");
    }
    // Each exploit is a decision, counted in the member's row.
    let decided: u64 = members.iter().map(|m| m.decisions).sum();
    assert!(
        decided >= events.len() as u64,
        "{decided} decisions, {} events",
        events.len()
    );
}

/// The experiment file for `algorithm`, asynchronous.
fn asynchronous(dir: &Path, name: &str, algorithm: &str, population: usize) -> PathBuf {
    let file = experiment(dir, name, algorithm, population);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("sync = \"synchronous\"", "sync = \"asynchronous\"");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn fire_refuses_a_population_that_its_sizes_do_not_add_up_to() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), "bad", "fire", 9);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "[space.lr]",
        "[policy.fire]\nsub_populations = [3, 3]\nevaluators = 2\n\n[space.lr]",
    );
    std::fs::write(&file, text).unwrap();
    let out = poptune()
        .args(["run", file.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("make 8 members, but population = 9"), "{err}");
    assert!(
        !tmp.path().join("run").exists(),
        "a refused file made a directory"
    );
}

/// Runs experiment `file` (named `name`) in the store at `url` to its end: `poptune run` and a
/// second `poptune worker` joining it.
#[cfg(feature = "pg-tests")]
fn run_on_two_workers(file: &Path, url: &str, name: &str) {
    let mut first = poptune()
        .args(["run", file.to_str().unwrap(), "--store", url, "--quiet"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut second = poptune()
        .args(["worker", "--store", url, "--experiment", name, "--quiet"])
        .spawn()
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
}

#[cfg(feature = "pg-tests")]
#[test]
fn postgres_workers_make_the_same_pb2_and_fire_decisions_as_a_local_run() {
    use poptune_pg::PostgresStore;
    let url = std::env::var("POPTUNE_TEST_PG_URL")
        .expect("POPTUNE_TEST_PG_URL is not set: start a server with scripts/pg-test-server");
    for (algorithm, population) in [("pb2", 6), ("fire", 7)] {
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("local");
        let dist = tmp.path().join("dist");
        std::fs::create_dir_all(&local).unwrap();
        std::fs::create_dir_all(&dist).unwrap();
        run_local(&experiment(&local, "alg", algorithm, population));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("alg-{algorithm}-{}-{nanos}", std::process::id());
        let file = experiment(&dist, &name, algorithm, population);
        run_on_two_workers(&file, &url, &name);
        let store = PostgresStore::open(&url, &name).unwrap();
        let want = decisions(&local_events(&local.join("run")));
        assert!(!want.is_empty());
        assert_eq!(
            decisions(&store.events().unwrap()),
            want,
            "{algorithm}: the workers decided differently from the local run"
        );
    }
}

/// Asynchronous PB2 on PostgreSQL workers: the decisions are made on a snapshot outside the
/// ready transaction and settled inside it. Every member trains to the end, and every exploit
/// recorded copies a better member with hyperparameters inside the space.
#[cfg(feature = "pg-tests")]
#[test]
fn asynchronous_pb2_on_postgres_workers_trains_every_member_and_records_its_decisions() {
    use poptune_pg::PostgresStore;
    let url = std::env::var("POPTUNE_TEST_PG_URL")
        .expect("POPTUNE_TEST_PG_URL is not set: start a server with scripts/pg-test-server");
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("async-pb2-{}", std::process::id());
    let file = asynchronous(tmp.path(), &name, "pb2", 6);
    run_on_two_workers(&file, &url, &name);
    let mut store = PostgresStore::open(&url, &name).unwrap();
    check_finished_async_pb2(&store);
    let _ = store.delete();
}

/// A synchronous PB2 or FIRE-PBT run killed (SIGKILL) at many points and run again ends as
/// an uninterrupted one: same decisions, same trails (PB2's intervals, FIRE-PBT's curves and
/// evaluations come back from the store).
#[test]
fn killed_pb2_and_fire_runs_resume_to_the_same_decisions() {
    for (algorithm, population) in [("pb2", 6), ("fire", 7)] {
        let slow = |dir: &Path| {
            let file = experiment(dir, "alg", algorithm, population);
            let text = std::fs::read_to_string(&file).unwrap().replace(
                "[trainable]\n",
                "[trainable]\nenv = { POPTUNE_NOOP_SLEEP = \"0.003\" }\n",
            );
            std::fs::write(&file, text).unwrap();
            file
        };
        let reference = tempfile::tempdir().unwrap();
        let file = slow(reference.path());
        let start = std::time::Instant::now();
        run_local(&file);
        let full = start.elapsed();
        let (store, _) = poptune_run::local::open_dir(&reference.path().join("run")).unwrap();
        let want_events = decisions(&store.events().unwrap());
        let want_trails: Vec<_> = store
            .members()
            .unwrap()
            .into_iter()
            .map(|m| m.trail)
            .collect();
        assert!(!want_events.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let file = slow(dir.path());
        let mut kills = 0;
        for i in 0..8u32 {
            let mut child = poptune()
                .args(["run", file.to_str().unwrap(), "--quiet"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(full.mul_f64(0.1 + 0.1 * f64::from(i % 5)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
        }
        assert!(
            kills > 2,
            "{algorithm}: the test must interrupt runs ({kills} kills)"
        );
        run_local(&file);
        let (store, _) = poptune_run::local::open_dir(&dir.path().join("run")).unwrap();
        assert_eq!(
            decisions(&store.events().unwrap()),
            want_events,
            "{algorithm}: a killed and resumed run decided differently"
        );
        let trails: Vec<_> = store
            .members()
            .unwrap()
            .into_iter()
            .map(|m| m.trail)
            .collect();
        assert_eq!(trails, want_trails, "{algorithm}: trails differ");
    }
}
