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
    c.env("PYTHONPATH", root().join("python")); // examples/noop/noop.py imports poptune
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
    // What the killed workers left (checkpoints renamed into place but never recorded, and
    // temporary directories) is gone once the last worker has left a finished experiment.
    let indexed: BTreeSet<String> = index.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        dirs(ckpts.root()),
        indexed,
        "checkpoint directories that no index entry names are left"
    );
    assert_eq!(
        dirs(&ckpts.root().join(".tmp")),
        BTreeSet::new(),
        "temporary directories are left"
    );
    // Every exploit copied a state its donor had: one it trained and recorded itself, or one
    // it had copied by an earlier exploit (its step became that one's), which this loop
    // checks in its turn.
    let events = store.events().unwrap();
    for e in &events {
        if let Some(d) = e.donor {
            let inherited = events.iter().any(|earlier| {
                earlier.seq < e.seq
                    && earlier.recipient == d
                    && earlier.donor.is_some()
                    && earlier.donor_step == e.donor_step
            });
            assert!(seen[&d].contains(&e.donor_step) || inherited, "event {e:?}");
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
        .env("PYTHONPATH", root().join("python")) // examples/noop/noop.py imports poptune
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

#[test]
fn a_stopped_distributed_experiment_trains_on_when_only_its_stop_rules_change() {
    let url = url();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("longer");
    let log = dir.path().join("steps.log");
    let file = experiment(dir.path(), &name, &log, "asynchronous");
    let short = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&format!("steps = {STEPS}"), "steps = 10");
    std::fs::write(&file, &short).unwrap();
    let run = |file: &Path| {
        poptune()
            .args(["run", file.to_str().unwrap(), "--store", &url, "--quiet"])
            .status()
            .unwrap()
    };
    assert!(run(&file).success());
    let store = PostgresStore::open(&url, &name).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    assert!(store.members().unwrap().iter().all(|m| m.step == 10));
    // Raised steps: the same command trains every member on to them.
    std::fs::write(&file, short.replace("steps = 10", "steps = 20")).unwrap();
    assert!(run(&file).success());
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    let members = store.members().unwrap();
    assert!(
        members.iter().all(|m| m.step == 20 && m.done),
        "{members:?}"
    );
    let (_, stored) = store.definition().unwrap().unwrap();
    assert!(stored.contains("\"steps\":20"), "{stored}");
    // Any other change is refused (exit 2).
    std::fs::write(
        &file,
        short
            .replace("steps = 10", "steps = 20")
            .replace("seed = 11", "seed = 12"),
    )
    .unwrap();
    assert_eq!(run(&file).code(), Some(2));
    let mut s = store;
    s.delete().unwrap();
}

/// GET `path` from the server on 127.0.0.1:`port`: the body, if the answer is 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

#[test]
fn the_dashboard_shows_a_distributed_run_and_its_workers() {
    use std::io::BufRead;
    let url = url();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("dash");
    let log = dir.path().join("steps.log");
    let file = experiment(dir.path(), &name, &log, "asynchronous");
    let mut first = poptune()
        .args(["run", file.to_str().unwrap(), "--store", &url, "--quiet"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut workers = vec![worker(&url, &name), worker(&url, &name)];
    let mut dash = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .args([
            "dashboard",
            "--store",
            &url,
            "--experiment",
            &name,
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(dash.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    // While the run goes: the experiment is listed, and some update names workers holding
    // leases on members.
    let listed = http_get(port, "/api/experiments").unwrap_or_default();
    assert!(listed.contains(&name), "{listed}");
    let t = Instant::now();
    let mut seen_worker = false;
    let mut members = 0;
    while t.elapsed() < Duration::from_secs(30) && !seen_worker {
        if let Some(body) = http_get(port, &format!("/api/experiment/{name}/updates")) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            members = v["members"].as_array().map_or(0, |m| m.len());
            seen_worker = v["workers"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| !w["members"].as_array().unwrap().is_empty())
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    workers.push(first);
    wait_all(&mut workers, Duration::from_secs(120));
    first = workers.pop().unwrap();
    assert!(first.wait().unwrap().success());
    let _ = dash.kill();
    let _ = dash.wait();
    assert_eq!(members, POPULATION, "every member is shown");
    assert!(
        seen_worker,
        "no update named a worker and its leased members"
    );
    let mut s = PostgresStore::open(&url, &name).unwrap();
    s.delete().unwrap();
}

/// The directories in `dir`, but `.tmp`.
fn dirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".tmp")
        .collect()
}

/// A database of its own, for a test that cuts its connections: an administrator's
/// connection (to the test server's database), and the new database's name and URL (with a
/// password, which the test server does not check, so that its messages can be searched for
/// it).
fn own_database(url: &str, prefix: &str) -> (postgres::Client, String, String) {
    let admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let db = unique(prefix).replace('-', "_");
    let mut admin = admin;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let (cfg, location) = poptune_pg::config(url).unwrap();
    let (server, _) = location.split_once('/').unwrap();
    let user = cfg.get_user().unwrap();
    let db_url = format!("postgres://{user}:{PASSWORD}@{server}/{db}");
    (admin, db, db_url)
}

const PASSWORD: &str = "s3cret-outage-pw";

/// The database `db` goes away for its clients: its connections are cut and new ones refused.
fn cut(admin: &mut postgres::Client, db: &str) {
    admin
        .batch_execute(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false"))
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db],
        )
        .unwrap();
}

/// The database `db` is back.
fn restore(admin: &mut postgres::Client, db: &str) {
    admin
        .batch_execute(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"))
        .unwrap();
}

fn drop_database(admin: &mut postgres::Client, db: &str) {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The database goes away for a few seconds (longer than the lease) while two workers train:
/// both wait for it, reconnect, say so in one line, and finish the experiment, every step
/// recorded once in its epoch. No message shows the URL's password.
#[test]
fn workers_ride_out_a_database_outage() {
    let url = url();
    let (mut admin, db, db_url) = own_database(&url, "outage");
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("outage");
    let log = tmp.path().join("steps.log");
    let file = experiment(tmp.path(), &name, &log, "asynchronous");
    let err = |n: &str| std::fs::File::create(tmp.path().join(n)).unwrap();
    let spawn = |args: &[&str], stderr: &str| {
        Command::new(env!("CARGO_BIN_EXE_poptune"))
            .env("PYTHONPATH", root().join("python")) // examples/noop/noop.py imports poptune
            .args(args)
            .args(["--lease", "2", "--outage-limit", "60"])
            .stdout(err(&format!("{stderr}.out")))
            .stderr(err(stderr))
            .spawn()
            .unwrap()
    };
    let first = spawn(
        &["run", file.to_str().unwrap(), "--store", &db_url],
        "run.stderr",
    );
    let t = Instant::now();
    while count_lines(&log) < 5 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no steps within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = spawn(
        &["worker", "--store", &db_url, "--experiment", &name],
        "worker.stderr",
    );
    std::thread::sleep(Duration::from_millis(500));
    cut(&mut admin, &db);
    std::thread::sleep(Duration::from_secs(4));
    restore(&mut admin, &db);
    let mut all = vec![first, second];
    wait_all(&mut all, Duration::from_secs(120));
    for (c, n) in all.iter_mut().zip(["run.stderr", "worker.stderr"]) {
        let text = std::fs::read_to_string(tmp.path().join(n)).unwrap();
        assert!(c.wait().unwrap().success(), "{n}: {text}");
        let out = std::fs::read_to_string(tmp.path().join(format!("{n}.out"))).unwrap();
        assert!(
            !text.contains(PASSWORD) && !out.contains(PASSWORD),
            "{text}{out}"
        );
    }
    let text = std::fs::read_to_string(tmp.path().join("run.stderr")).unwrap();
    assert!(
        text.contains("was unreachable for") && text.contains("; reconnected"),
        "{text}"
    );
    let store = PostgresStore::open(&db_url, &name).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    let members = store.members().unwrap();
    common::check_histories(&store.steps().unwrap(), &store.events().unwrap(), &members);
    assert!(
        members.iter().all(|m| m.done && m.step == STEPS),
        "{members:?}"
    );
    drop(store);
    drop_database(&mut admin, &db);
}

/// A segment that finishes training while the database is away is recorded once it is back,
/// since its lease still holds: it is not trained again.
#[test]
fn a_segment_trained_during_an_outage_is_recorded_when_the_database_is_back() {
    let url = url();
    let (mut admin, db, db_url) = own_database(&url, "kept");
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("kept");
    let log = tmp.path().join("steps.log");
    let file = experiment(tmp.path(), &name, &log, "asynchronous");
    // One member, one segment of 10 steps of 0.3 s.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&format!("population = {POPULATION}"), "population = 1")
        .replace("interval = 5", "interval = 10")
        .replace(&format!("steps = {STEPS}"), "steps = 10")
        .replace(
            "POPTUNE_NOOP_SLEEP = \"0.04\"",
            "POPTUNE_NOOP_SLEEP = \"0.3\"",
        );
    std::fs::write(&file, text).unwrap();
    let stderr = std::fs::File::create(tmp.path().join("run.stderr")).unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .env("PYTHONPATH", root().join("python")) // examples/noop/noop.py imports poptune
        .args(["run", file.to_str().unwrap(), "--store", &db_url])
        .args(["--lease", "30", "--outage-limit", "60"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let t = Instant::now();
    while count_lines(&log) < 1 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no steps within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cut(&mut admin, &db);
    while count_lines(&log) < 10 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the segment stopped during the outage"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The ready transaction fails meanwhile; the worker waits.
    std::thread::sleep(Duration::from_millis(1500));
    restore(&mut admin, &db);
    wait_all(std::slice::from_mut(&mut run), Duration::from_secs(60));
    let text = std::fs::read_to_string(tmp.path().join("run.stderr")).unwrap();
    assert!(run.wait().unwrap().success(), "{text}");
    assert!(text.contains("; reconnected"), "{text}");
    assert_eq!(
        count_lines(&log),
        10,
        "the segment was trained again: {text}"
    );
    let store = PostgresStore::open(&db_url, &name).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished);
    let steps: Vec<u64> = store.steps().unwrap().iter().map(|s| s.step).collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
    drop(store);
    drop_database(&mut admin, &db);
}

/// FNV-1a, as workers end checkpoint names with it.
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}

fn plant(dir: &Path, hours_ago: u32) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("state.txt"), "1 0.5").unwrap();
    if hours_ago > 0 {
        let ok = Command::new("touch")
            .args(["-d", &format!("{hours_ago} hours ago")])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "touch failed");
    }
}

/// A worker removes, at its start and end, the checkpoint directories that no index entry
/// names and no live worker can still record (old ones whose worker holds no live lease), and
/// abandoned temporary directories; it keeps what a worker holding a live lease may still
/// record and what is too young to tell. Once the experiment has finished and no lease is
/// live, every unrecorded directory goes.
#[test]
fn abandoned_checkpoint_directories_are_removed() {
    let url = url();
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("tidy");
    let log = tmp.path().join("steps.log");
    let file = experiment(tmp.path(), &name, &log, "asynchronous");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&format!("population = {POPULATION}"), "population = 2")
        .replace(&format!("steps = {STEPS}"), "steps = 10")
        .replace(
            "POPTUNE_NOOP_SLEEP = \"0.04\"",
            "POPTUNE_NOOP_SLEEP = \"0\"",
        );
    std::fs::write(&file, text).unwrap();
    let ok = poptune()
        .args(["run", file.to_str().unwrap(), "--store", &url, "--quiet"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let root = tmp.path().join("shared/checkpoints");
    let store = PostgresStore::open(&url, &name).unwrap();
    let indexed: BTreeSet<String> = store
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    // A live lease (a worker still training, as far as the database knows).
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    db.execute(
        "UPDATE poptune_members SET lease_owner = 'live-owner-0',
            lease_until = now() + interval '1 hour'
         WHERE experiment = $1 AND id = 0",
        &[&name],
    )
    .unwrap();
    let old_dead = "m0000-e000099-s00000010-deadbeef";
    let young_dead = "m0000-e000098-s00000010-deadbeef";
    let old_live = format!("m0001-e000097-s00000010-{}", short_hash("live-owner-0"));
    plant(&root.join(old_dead), 2);
    plant(&root.join(young_dead), 0);
    plant(&root.join(&old_live), 2);
    plant(&root.join(".tmp/m0-dead-owner-1-7-0"), 2);
    plant(&root.join(".tmp/m0-live-owner-0-7-0"), 2);
    plant(&root.join(".tmp/m1-dead-owner-2-7-0"), 0);
    let tidy = || {
        let ok = poptune()
            .args([
                "worker",
                "--store",
                &url,
                "--experiment",
                &name,
                "--lease",
                "2",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    tidy();
    let mut expect = indexed.clone();
    expect.insert(young_dead.to_string());
    expect.insert(old_live.clone());
    assert_eq!(dirs(&root), expect);
    let tmps: BTreeSet<String> = ["m0-live-owner-0-7-0", "m1-dead-owner-2-7-0"]
        .map(String::from)
        .into();
    assert_eq!(dirs(&root.join(".tmp")), tmps);
    let ckpts = Checkpoints::open(&root).unwrap();
    for c in store.checkpoints().unwrap() {
        ckpts.verify(&c.name, &c.checksum).unwrap();
    }
    // The lease is gone: in a finished experiment nothing can be recorded any more.
    db.execute(
        "UPDATE poptune_members SET lease_owner = NULL, lease_until = NULL
         WHERE experiment = $1",
        &[&name],
    )
    .unwrap();
    tidy();
    assert_eq!(dirs(&root), indexed);
    assert_eq!(dirs(&root.join(".tmp")), BTreeSet::new());
    let mut s = store;
    s.delete().unwrap();
}

/// A TCP proxy to the test server that, once, lets a ready transaction's COMMIT through to the
/// server and then cuts the connection before the server's answer reaches the worker: the
/// commit lands, but the worker cannot know. Returns the proxy's port.
fn losing_proxy(server: &str) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = server.to_string();
    let fired = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut upstream) = TcpStream::connect(&server) else {
                continue;
            };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let mute = Arc::new(AtomicBool::new(false));
            let mute2 = mute.clone();
            // Server to client, unless muted.
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = u2.read(&mut buf) {
                    if n == 0 || mute2.load(Ordering::SeqCst) || c2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c2.shutdown(Shutdown::Both);
            });
            let fired = fired.clone();
            // Client to server, watching for a ready transaction's COMMIT.
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut seen_steps = false;
                let mut tail: Vec<u8> = Vec::new();
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&tail).into_owned();
                    seen_steps |= text.contains("INSERT INTO poptune_steps");
                    let commit = seen_steps && text.contains("COMMIT");
                    if commit && !fired.swap(true, Ordering::SeqCst) {
                        mute.store(true, Ordering::SeqCst);
                        let _ = upstream.write_all(&buf[..n]);
                        std::thread::sleep(Duration::from_millis(500));
                        break;
                    }
                    if commit {
                        seen_steps = false;
                    }
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let keep = tail.len().saturating_sub(64);
                    tail.drain(..keep);
                }
                let _ = upstream.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

/// A ready transaction lands but its answer is lost with the connection: the worker
/// reconnects, finds its lease released by that very commit, and learns from the index that
/// its segment was recorded; so it keeps the checkpoint (the member's next segment starts
/// from it) and records nothing twice.
#[test]
fn a_commit_whose_answer_was_lost_keeps_its_checkpoint() {
    let url = url();
    let (_, location) = poptune_pg::config(&url).unwrap();
    let (server, db) = location.split_once('/').unwrap();
    let port = losing_proxy(server);
    let user = poptune_pg::config(&url)
        .unwrap()
        .0
        .get_user()
        .unwrap()
        .to_string();
    let proxied = format!("postgres://{user}@127.0.0.1:{port}/{db}");
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("lostanswer");
    let log = tmp.path().join("steps.log");
    let file = experiment(tmp.path(), &name, &log, "asynchronous");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&format!("population = {POPULATION}"), "population = 1")
        .replace(&format!("steps = {STEPS}"), "steps = 10");
    std::fs::write(&file, text).unwrap();
    let stderr = std::fs::File::create(tmp.path().join("run.stderr")).unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .env("PYTHONPATH", root().join("python")) // examples/noop/noop.py imports poptune
        .args(["run", file.to_str().unwrap(), "--store", &proxied])
        .args(["--lease", "30", "--outage-limit", "60"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    wait_all(std::slice::from_mut(&mut run), Duration::from_secs(60));
    let text = std::fs::read_to_string(tmp.path().join("run.stderr")).unwrap();
    assert!(run.wait().unwrap().success(), "{text}");
    assert!(
        text.contains("recorded before the connection was lost"),
        "the answer was not lost: {text}"
    );
    let store = PostgresStore::open(&url, &name).unwrap();
    assert_eq!(store.status().unwrap().0, RunStatus::Finished, "{text}");
    assert!(store.faults().unwrap().is_empty(), "{:?}", store.faults());
    let steps: Vec<u64> = store.steps().unwrap().iter().map(|s| s.step).collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
    let ckpts = Checkpoints::open(&tmp.path().join("shared/checkpoints")).unwrap();
    for c in store.checkpoints().unwrap() {
        ckpts.verify(&c.name, &c.checksum).unwrap();
    }
    let mut s = store;
    s.delete().unwrap();
}
