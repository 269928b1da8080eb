//! Workers coordinated by PostgreSQL, killed with SIGKILL and restarted. Needs a server: set
//! POPTUNE_TEST_PG_URL (`export POPTUNE_TEST_PG_URL=$(scripts/pg-test-server)`); without one
//! the test fails, it does not skip. Built with the `pg-tests` feature, which `scripts/test` turns
//! on; a plain `cargo test` needs no server.

#![cfg(feature = "pg-tests")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use poptune_pg::PostgresStore;
use poptune_store::{Checkpoints, RunStatus, Store};

fn url() -> String {
    std::env::var("POPTUNE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "POPTUNE_TEST_PG_URL is not set: this test needs a PostgreSQL server; start one with \
             `export POPTUNE_TEST_PG_URL=$(scripts/pg-test-server)`"
        )
    })
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const POPULATION: usize = 8;
const STEPS: u64 = 30;

fn experiment(dir: &Path, name: &str, log: &Path, sync: &str) -> PathBuf {
    let noop = root().join("examples/noop/noop.py");
    let text = format!(
        r#"
name = "{name}"
population = {POPULATION}
seed = 11
slots = 1
directory = "shared"

[policy]
interval = 5
sync = "{sync}"

[space.lr]
type = "float"
low = 0.1
high = 10.0
log = true

[stop]
steps = {STEPS}

[trainable]
command = ["python3", "{noop}"]
env = {{ POPTUNE_NOOP_SLEEP = "0.04", POPTUNE_NOOP_LOG = "{log}" }}
"#,
        noop = noop.display(),
        log = log.display()
    );
    let file = dir.join("exp.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn poptune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poptune"));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn worker(url: &str, name: &str) -> Child {
    poptune()
        .args([
            "worker",
            "--store",
            url,
            "--experiment",
            name,
            "--lease",
            "2",
            "--quiet",
        ])
        .spawn()
        .unwrap()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn wait_all(children: &mut [Child], limit: Duration) {
    let t = Instant::now();
    for c in children.iter_mut() {
        loop {
            if c.try_wait().unwrap().is_some() {
                break;
            }
            if t.elapsed() > limit {
                for c in children.iter_mut() {
                    let _ = c.kill();
                }
                panic!("the workers did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into())
}

/// Runs 4 workers (the first creates the experiment), kills one with SIGKILL `kills` times
/// while it trains and restarts it; then checks the history.
fn killed_workers(sync: &str) {
    let url = url();
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("kill");
    let log = tmp.path().join("steps.log");
    let file = experiment(tmp.path(), &name, &log, sync);
    let mut first = poptune()
        .args([
            "run",
            file.to_str().unwrap(),
            "--store",
            &url,
            "--lease",
            "2",
            "--quiet",
        ])
        .spawn()
        .unwrap();
    // The experiment exists once its first step is logged.
    let t = Instant::now();
    while !log.exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "no step within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut others: Vec<Child> = (0..3).map(|_| worker(&url, &name)).collect();
    let mut killed = BTreeSet::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let victim = &mut others[0];
        if victim.try_wait().unwrap().is_some() {
            break;
        }
        killed.insert(format!("{}-{}-", host(), victim.id()));
        victim.kill().unwrap();
        victim.wait().unwrap();
        others[0] = worker(&url, &name);
    }
    assert!(
        !killed.is_empty(),
        "the run ended before any worker was killed"
    );
    others.push(first.try_clone_placeholder());
    wait_all(&mut others, Duration::from_secs(180));

    let store = PostgresStore::open(&url, &name).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    // Every member's history is whole (no step lost, none recorded twice in an epoch), and
    // every member's state trained exactly STEPS steps.
    let steps = store.steps().unwrap();
    let members = store.members().unwrap();
    common::check_histories(&steps, &store.events().unwrap(), &members);
    assert!(
        members.iter().all(|m| m.done && m.step == STEPS),
        "{members:?}"
    );
    let mut seen: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for s in &steps {
        seen.entry(s.member).or_default().push(s.step);
    }
    assert_eq!(seen.len(), POPULATION);
    // Every checkpoint the members and the index name exists and verifies.
    let ckpts = Checkpoints::open(&tmp.path().join("shared/checkpoints")).unwrap();
    let index = store.checkpoints().unwrap();
    for c in &index {
        ckpts.verify(&c.name, &c.checksum).unwrap();
    }
    for m in store.members().unwrap() {
        assert!(m.done);
        let c = m.checkpoint.expect("a finished member has a checkpoint");
        assert!(
            index.iter().any(|i| i.name == c),
            "member {}'s {c} is not indexed",
            m.id
        );
    }
    // Every exploit copied a checkpoint its donor had recorded.
    for e in store.events().unwrap() {
        if let Some(d) = e.donor {
            assert!(seen[&d].contains(&e.donor_step), "event {e:?}");
        }
    }
    // No member was trained by two live workers at once (steps of killed workers may overlap
    // with their successors': they are never recorded).
    let text = std::fs::read_to_string(&log).unwrap();
    let mut by_member: BTreeMap<usize, Vec<(f64, f64, String)>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let worker = f[2].to_string();
        if killed.iter().any(|k| worker.starts_with(k.as_str())) {
            continue;
        }
        by_member.entry(f[0].parse().unwrap()).or_default().push((
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
            worker,
        ));
    }
    for (m, mut spans) in by_member {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1 || w[0].2 == w[1].2,
                "member {m} trained by {} and {} at once",
                w[0].2,
                w[1].2
            );
        }
    }
    let mut s = store;
    s.delete().unwrap();
}

trait Placeholder {
    fn try_clone_placeholder(&mut self) -> Child;
}

impl Placeholder for Child {
    /// Moves the child out, leaving a finished dummy behind.
    fn try_clone_placeholder(&mut self) -> Child {
        let dummy = Command::new("true").spawn().unwrap();
        std::mem::replace(self, dummy)
    }
}

#[test]
fn asynchronous_workers_survive_kill_9() {
    killed_workers("asynchronous");
}

#[test]
fn synchronous_workers_survive_kill_9() {
    killed_workers("synchronous");
}

/// Another worker takes a member's lease while its segment trains (here by SQL, as a worker
/// would after the lease ran out while this one stalled): the heartbeat sees it and the
/// segment stops at once, instead of training on beside the new holder; once the lease is
/// free again the member is trained in full, each step recorded once.
#[test]
fn a_worker_whose_lease_is_taken_stops_training() {
    let url = url();
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("steal");
    let log = tmp.path().join("steps.log");
    let noop = root().join("examples/noop/noop.py");
    let file = tmp.path().join("exp.toml");
    std::fs::write(
        &file,
        format!(
            r#"
name = "{name}"
population = 1
directory = "shared"

[policy]
interval = 30

[space.lr]
type = "float"
low = 0.1
high = 10.0

[stop]
steps = 30

[trainable]
command = ["python3", "{noop}"]
env = {{ POPTUNE_NOOP_SLEEP = "0.2", POPTUNE_NOOP_LOG = "{log}" }}
"#,
            noop = noop.display(),
            log = log.display()
        ),
    )
    .unwrap();
    let stderr = std::fs::File::create(tmp.path().join("worker.stderr")).unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--store",
            &url,
            "--lease",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let t = Instant::now();
    while lines() < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no steps within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let taken = db
        .execute(
            "UPDATE poptune_members SET lease_owner = 'another-worker',
                lease_until = now() + interval '1 hour'
             WHERE experiment = $1 AND id = 0 AND lease_owner IS NOT NULL",
            &[&name],
        )
        .unwrap();
    assert_eq!(taken, 1, "the member was not leased while it trained");
    // The heartbeat (every 2/3 s) notices; then no further step may start.
    std::thread::sleep(Duration::from_millis(1500));
    let after = lines();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        lines(),
        after,
        "the worker kept training a member it no longer holds"
    );
    assert!(after < 30, "the segment ended before the lease was taken");
    assert!(run.try_wait().unwrap().is_none(), "the worker exited");
    // The other worker gives the lease back without recording anything.
    db.execute(
        "UPDATE poptune_members SET lease_owner = NULL, lease_until = NULL
         WHERE experiment = $1",
        &[&name],
    )
    .unwrap();
    wait_all(std::slice::from_mut(&mut run), Duration::from_secs(60));
    assert!(run.wait().unwrap().success());
    let text = std::fs::read_to_string(tmp.path().join("worker.stderr")).unwrap();
    assert!(
        text.contains("the lease could not be renewed"),
        "stderr: {text}"
    );
    let store = PostgresStore::open(&url, &name).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    let steps: Vec<u64> = store.steps().unwrap().iter().map(|s| s.step).collect();
    assert_eq!(steps, (1..=30).collect::<Vec<_>>());
    // Status, report and export read a distributed experiment from the database and the
    // shared directory.
    let read = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_poptune"))
            .args(args)
            .args(["--store", &url, "--experiment", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let status = read(&["status"]);
    assert!(status.contains("status: finished"), "{status}");
    let elapsed = store.status().unwrap().1;
    assert!(
        elapsed > 3.0,
        "running time {elapsed} s, though training alone took over 3 s"
    );
    let report = tmp.path().join("report");
    read(&["report", "--out", report.to_str().unwrap()]);
    let csv = std::fs::read_to_string(report.join("steps.csv")).unwrap();
    assert_eq!(csv.lines().count(), 31, "{csv}");
    assert!(report.join("report.html").is_file());
    let best = tmp.path().join("best");
    read(&["export", "--out", best.to_str().unwrap()]);
    let state = std::fs::read_to_string(best.join("state.txt")).unwrap();
    assert!(state.starts_with("30 "), "{state}");
    let mut s = store;
    s.delete().unwrap();
}

#[test]
fn a_stop_rule_ends_a_distributed_run_for_every_worker() {
    let url = url();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("budget");
    let log = dir.path().join("steps.log");
    let file = experiment(dir.path(), &name, &log, "asynchronous");
    // A time budget of 1 s; training every member to the end would take about 5 s.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("[stop]\n", "[stop]\nmax_seconds = 1.0\n");
    std::fs::write(&file, text).unwrap();
    let mut first = poptune()
        .args(["run", file.to_str().unwrap(), "--store", &url, "--quiet"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut workers = vec![worker(&url, &name)];
    workers.push(first);
    wait_all(&mut workers, Duration::from_secs(60));
    first = workers.pop().unwrap();
    assert!(first.wait().unwrap().success());
    let store = PostgresStore::open(&url, &name).unwrap();
    let (status, _) = store.status().unwrap();
    assert_eq!(
        status,
        RunStatus::Stopped("time budget of 1 s used".into()),
        "{status}"
    );
    let members = store.members().unwrap();
    assert!(
        members.iter().any(|m| !m.done),
        "the budget stopped the run before every member finished: {members:?}"
    );
}
