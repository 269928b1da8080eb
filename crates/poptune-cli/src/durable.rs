//! The durable runner: trainables on `slots` workers (external processes or in-process code),
//! every result committed to the experiment's store, so that a run killed at any moment continues where it stopped.
//!
//! A segment's steps, its checkpoint, the member's new state and the ready decision are one
//! transaction. A member killed mid-segment has nothing recorded for that segment and trains it
//! again from its last checkpoint; nothing is lost and nothing is counted twice. In synchronous
//! mode the last member to reach a round's boundary commits the whole round's decisions with
//! its segment, so a resumed synchronous run makes exactly the decisions an uninterrupted one
//! makes.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use poptune::{Hyperparams, Population, SyncMode};
use poptune_store::{
    CheckpointRow, Checkpoints, Commit, FaultRow, MemberRow, SqliteStore, StepRow, Store,
};

use crate::config::ExperimentDef;
use crate::decisions::Book;
use crate::external::{Fault, Step};
use crate::worker::{Failure, SegmentRequest, Worker, Workers};
use crate::CliError;

/// The database file inside an experiment directory.
pub const DB_FILE: &str = "experiment.db";
/// The checkpoint folder inside an experiment directory.
pub const CKPT_DIR: &str = "checkpoints";
/// The per-slot stderr logs.
pub const LOG_DIR: &str = "logs";

/// Opens an existing experiment directory: its store and definition.
pub fn open_dir(dir: &Path) -> Result<(SqliteStore, ExperimentDef), CliError> {
    let db = dir.join(DB_FILE);
    if !db.is_file() {
        return Err(CliError::usage(anyhow!(
            "{} is not an experiment directory (no {DB_FILE}); give the directory `poptune run` created",
            dir.display()
        )));
    }
    let store = SqliteStore::open(&db)?;
    let (_, def) = store.definition()?.ok_or_else(|| {
        CliError::usage(anyhow!(
            "{} holds no experiment yet; start it with `poptune run EXPERIMENT.toml`",
            db.display()
        ))
    })?;
    let def: ExperimentDef = serde_json::from_str(&def)
        .with_context(|| format!("{}: the stored definition is unreadable", db.display()))?;
    Ok((store, def))
}

/// Creates the experiment (or opens it, if the directory already holds the same one).
pub fn create_or_open(def: &ExperimentDef) -> Result<(SqliteStore, bool), CliError> {
    std::fs::create_dir_all(&def.directory).with_context(|| {
        format!(
            "cannot create the experiment directory {}",
            def.directory.display()
        )
    })?;
    let mut store = SqliteStore::open(&def.directory.join(DB_FILE))?;
    let json = serde_json::to_string(def)?;
    match store.definition()? {
        Some((_, stored)) => {
            if stored != json {
                return Err(CliError::usage(anyhow!(
                    "{} already holds experiment `{}` with a different definition; to continue it \
                     unchanged run `poptune resume {}`, or give the new experiment another `name` \
                     or `directory`",
                    def.directory.display(),
                    def.name,
                    def.directory.display()
                )));
            }
            Ok((store, true))
        }
        None => {
            let members = initial_members(def)?;
            store.create(&def.name, &json, &members)?;
            Ok((store, false))
        }
    }
}

/// The members of a new experiment: their first hyperparameters, nothing trained yet.
pub fn initial_members(def: &ExperimentDef) -> Result<Vec<MemberRow>, CliError> {
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(CliError::usage)?;
    Ok(initial
        .into_iter()
        .enumerate()
        .map(|(id, h)| MemberRow::new(id, h))
        .collect())
}

/// How a run ended.
pub struct Summary {
    pub status: String,
    pub best: Option<(usize, f64)>,
    pub faults: usize,
}

struct Job {
    member: usize,
    h: Hyperparams,
    start: u64,
    stop: u64,
    restore: Option<(String, String)>,
}

struct State {
    store: SqliteStore,
    index: BTreeMap<String, CheckpointRow>,
    pop: Population,
    members: Vec<MemberRow>,
    queue: VecDeque<usize>,
    running: usize,
    round_stop: u64,
    seq: u64,
    stop: Option<String>,
    fatal: Option<String>,
    best: Option<(f64, u64)>,
    max_step: u64,
    elapsed_before: f64,
    started: Instant,
    last_commit: Instant,
    faults: usize,
    exploits: usize,
}

struct Shared<'a> {
    def: &'a ExperimentDef,
    ckpts: Checkpoints,
    logs: PathBuf,
    state: Mutex<State>,
    cv: Condvar,
    bar: ProgressBar,
    /// The live view's member lines (the best members first), empty when quiet.
    board: Vec<ProgressBar>,
}

/// How many members the live view lists.
const BOARD_LINES: usize = 8;

fn lock<'a>(m: &'a Mutex<State>) -> MutexGuard<'a, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs (or continues) an experiment until it finishes or a stopping rule fires.
pub fn run(
    def: &ExperimentDef,
    store: SqliteStore,
    workers: &dyn Workers,
    progress: bool,
) -> Result<Summary, CliError> {
    let dir = &def.directory;
    let ckpts = Checkpoints::open(&dir.join(CKPT_DIR))?;
    ckpts.clean_tmp()?;
    let logs = dir.join(LOG_DIR);
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let (status, elapsed_before) = store.status()?;
    let mut members = store.members()?;
    if members.len() != def.population {
        return Err(anyhow!(
            "{}: the store holds {} members but the definition says {}",
            dir.display(),
            members.len(),
            def.population
        )
        .into());
    }
    let index: BTreeMap<String, CheckpointRow> = store
        .checkpoints()?
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    // A member whose checkpoint is missing from the index would restore nothing: refuse.
    for m in &members {
        if let Some(c) = &m.checkpoint {
            if !index.contains_key(c) || !ckpts.path(c).is_dir() {
                return Err(anyhow!(
                    "member {}'s checkpoint {} is missing from {}; the experiment directory is damaged",
                    m.id,
                    c,
                    ckpts.root().display()
                )
                .into());
            }
        }
    }
    let pop = crate::decisions::population(def, &members);
    let events = store.events()?;
    let seq = events.len() as u64;
    let sync = def.policy.sync == SyncMode::Synchronous;
    let not_done: Vec<usize> = members.iter().filter(|m| !m.done).map(|m| m.id).collect();
    let min_step = not_done.iter().map(|&i| members[i].step).min().unwrap_or(0);
    let round_stop = def.policy.next_stop(min_step, def.stop.steps);
    let queue: VecDeque<usize> = if sync {
        not_done
            .iter()
            .copied()
            .filter(|&i| members[i].step < round_stop)
            .collect()
    } else {
        not_done.iter().copied().collect()
    };
    let total: u64 = members.iter().map(|m| m.step).sum();
    for m in &mut members {
        m.failures = m.failures.min(def.trainable.max_failures);
    }
    let best = pop
        .best()
        .and_then(|b| pop.member(b).score.map(|s| (def.mode.key(s), 0)));
    let (bar, board) = if progress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let b = multi.add(ProgressBar::new(def.population as u64 * def.stop.steps));
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} member-steps  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_position(total);
        let line_style = ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let board: Vec<ProgressBar> = (0..=BOARD_LINES.min(def.population))
            .map(|_| {
                let l = multi.add(ProgressBar::new_spinner());
                l.set_style(line_style.clone());
                l
            })
            .collect();
        (b, board)
    } else {
        (ProgressBar::hidden(), Vec::new())
    };
    if status != "running" && not_done.is_empty() {
        bar.finish_and_clear();
    }
    let shared = Shared {
        def,
        ckpts,
        logs,
        state: Mutex::new(State {
            store,
            index,
            pop,
            members,
            queue,
            running: 0,
            round_stop,
            seq,
            stop: None,
            fatal: None,
            best,
            max_step: min_step,
            elapsed_before,
            started: Instant::now(),
            last_commit: Instant::now(),
            faults: 0,
            exploits: events.iter().filter(|e| e.donor.is_some()).count(),
        }),
        cv: Condvar::new(),
        bar,
        board,
    };
    {
        let mut st = lock(&shared.state);
        if st.queue.is_empty() && !not_done.is_empty() && sync {
            // Every member is at the boundary: the round's decisions were committed with the
            // last segment, so the next round starts.
            refill_round(&shared, &mut st);
        }
        update_message(&shared, &st);
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<Handoff>();
        let (gc_tx, gc_rx) = std::sync::mpsc::channel::<Vec<String>>();
        let shared = &shared;
        s.spawn(move || committer(shared, rx, gc_tx));
        // Deleting superseded checkpoints is slow file-system work; done here it never holds
        // up the next group commit. (A deleted name never comes back: it is an older step of
        // its member, whose step count only grows.)
        s.spawn(move || {
            while let Ok(names) = gc_rx.recv() {
                for name in names {
                    let _ = shared.ckpts.recycle(&name);
                }
            }
        });
        for slot in 0..def.slots {
            let tx = tx.clone();
            s.spawn(move || slot_loop(shared, workers, slot, tx));
        }
    });
    let mut st = lock(&shared.state);
    shared.bar.finish_and_clear();
    for l in &shared.board {
        l.finish_and_clear();
    }
    if let Some(f) = st.fatal.clone() {
        return Err(anyhow!(f).into());
    }
    let all_done = st.members.iter().all(|m| m.done);
    let status = if all_done {
        "finished".to_string()
    } else {
        format!(
            "stopped: {}",
            st.stop.clone().unwrap_or_else(|| "interrupted".into())
        )
    };
    let c = Commit {
        status: Some(status.clone()),
        elapsed: st.last_commit.elapsed().as_secs_f64(),
        ..Commit::default()
    };
    st.store.commit(&c)?;
    let best = st
        .pop
        .best()
        .and_then(|b| st.pop.member(b).score.map(|s| (b, s)));
    Ok(Summary {
        status,
        best,
        faults: st.faults,
    })
}

fn update_message(shared: &Shared<'_>, st: &State) {
    let best = st
        .pop
        .best()
        .and_then(|b| st.pop.member(b).score.map(|s| (b, s)));
    let msg = match best {
        Some((b, s)) => format!(
            "best {} = {:.4} (member {b})  exploits {}  faults {}",
            shared.def.metric, s, st.exploits, st.faults
        ),
        None => format!("exploits {}  faults {}", st.exploits, st.faults),
    };
    shared.bar.set_message(msg);
    if shared.board.is_empty() {
        return;
    }
    let def = shared.def;
    shared.board[0].set_message(format!(
        "{:>6} {:>7} {:>12} {:>8}  hyperparameters",
        "member", "step", def.metric, "state"
    ));
    for (line, r) in shared.board[1..].iter().zip(0..) {
        let Some(m) = st.pop.at_rank(r) else {
            line.set_message(String::new());
            continue;
        };
        let row = &st.members[m];
        let state = if row.done {
            "done"
        } else if row.failures > 0 {
            "failing"
        } else if st.queue.contains(&m) {
            "queued"
        } else {
            "training"
        };
        line.set_message(format!(
            "{:>6} {:>7} {:>12.6} {:>8}  {}",
            m,
            row.step,
            row.score.unwrap_or(f64::NAN),
            state,
            row.h
        ));
    }
}

fn claim(shared: &Shared<'_>) -> Option<Job> {
    let mut st = lock(&shared.state);
    loop {
        if st.fatal.is_some() || st.stop.is_some() {
            shared.cv.notify_all();
            return None;
        }
        if let Some(limit) = shared.def.stop.max_seconds {
            if st.elapsed_before + st.started.elapsed().as_secs_f64() >= limit {
                st.stop = Some(format!("time budget of {limit} s used"));
                continue;
            }
        }
        if let Some(m) = st.queue.pop_front() {
            st.running += 1;
            let row = &st.members[m];
            let stop = if shared.def.policy.sync == SyncMode::Synchronous {
                st.round_stop
            } else {
                shared.def.policy.next_stop(row.step, shared.def.stop.steps)
            };
            let restore = row.checkpoint.as_ref().map(|c| {
                (
                    c.clone(),
                    st.index
                        .get(c)
                        .map(|r| r.checksum.clone())
                        .unwrap_or_default(),
                )
            });
            return Some(Job {
                member: m,
                h: row.h.clone(),
                start: row.step,
                stop,
                restore,
            });
        }
        if st.running == 0 {
            shared.cv.notify_all();
            return None;
        }
        st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
    }
}

/// What a slot hands to the committer.
type Handoff = (Job, Result<Raw, Failure>);

/// A slot: one worker (a trainable process, or an in-process trainable). It hands each trained segment to the committer and goes on
/// with the next member while the checkpoint is made durable and recorded.
fn slot_loop(
    shared: &Shared<'_>,
    workers: &dyn Workers,
    slot: usize,
    tx: std::sync::mpsc::Sender<Handoff>,
) {
    let log = shared.logs.join(format!("slot-{slot}.stderr.log"));
    let mut worker = workers.worker(slot, &log);
    while let Some(job) = claim(shared) {
        let raw = train(shared, worker.as_mut(), &job);
        if tx.send((job, raw)).is_err() {
            break;
        }
    }
    worker.finish();
}

/// The committer: takes every segment waiting (group commit), makes their checkpoints durable
/// with one flush of the file system, then records each in its own transaction, in order.
fn committer(
    shared: &Shared<'_>,
    rx: std::sync::mpsc::Receiver<Handoff>,
    gc: std::sync::mpsc::Sender<Vec<String>>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let items: Vec<(PathBuf, String)> = batch
            .iter()
            .filter_map(|(_, r)| {
                r.as_ref()
                    .ok()
                    .map(|(_, tmp, name)| (tmp.clone(), name.clone()))
            })
            .collect();
        let mut sums = shared.ckpts.commit_batch(&items).into_iter();
        let mut results = Vec::with_capacity(batch.len());
        for (job, raw) in batch {
            let result = match raw {
                Ok((steps, tmp, name)) => match sums.next() {
                    Some(Ok(sum)) => Ok((steps, name, sum)),
                    Some(Err(e)) => {
                        let _ = std::fs::remove_dir_all(&tmp);
                        Err((
                            Fault {
                                kind: "checkpoint",
                                message: e.to_string(),
                            },
                            String::new(),
                        ))
                    }
                    None => Err((
                        Fault {
                            kind: "checkpoint",
                            message: "the checkpoint was not committed".into(),
                        },
                        String::new(),
                    )),
                },
                Err(f) => Err(f),
            };
            results.push((job, result));
        }
        let garbage = finish(shared, results);
        if !garbage.is_empty() {
            let _ = gc.send(garbage);
        }
    }
}

/// A segment trained: its steps, the temporary checkpoint directory and the checkpoint's name.
type Raw = (Vec<Step>, PathBuf, String);
type Trained = (Vec<Step>, String, String);
/// A segment's end: trained and checkpointed, or a fault with the process's stderr.
type Outcome = Result<Trained, Failure>;

fn train(shared: &Shared<'_>, worker: &mut dyn Worker, job: &Job) -> Result<Raw, Failure> {
    let no_stderr = |f: Fault| (f, String::new());
    if let Some((name, sum)) = &job.restore {
        shared.ckpts.verify(name, sum).map_err(|e| {
            no_stderr(Fault {
                kind: "checkpoint",
                message: e.to_string(),
            })
        })?;
    }
    let tmp = shared
        .ckpts
        .tmp_dir(&format!("m{}", job.member))
        .map_err(|e| {
            no_stderr(Fault {
                kind: "checkpoint",
                message: e.to_string(),
            })
        })?;
    let restore = job
        .restore
        .as_ref()
        .map(|(n, _)| (shared.ckpts.path(n), n.as_str()));
    let name = format!("m{:04}-s{:08}", job.member, job.stop);
    let req = SegmentRequest {
        member: job.member,
        start: job.start,
        steps: job.stop - job.start,
        h: &job.h,
        restore: restore.as_ref().map(|(p, n)| (p.as_path(), *n)),
        checkpoint: (&tmp, &name),
        timeout: Duration::from_secs_f64(shared.def.trainable.step_timeout),
        cancel: None,
    };
    let steps = match worker.train(&req, &mut |_| shared.bar.inc(1)) {
        Ok(s) => s,
        Err(f) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(f);
        }
    };
    let empty = std::fs::read_dir(&tmp)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if empty {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(no_stderr(Fault {
            kind: "protocol",
            message: format!(
                "said \"saved\" but wrote no files into the checkpoint directory {}",
                tmp.display()
            ),
        }));
    }
    Ok((steps, tmp, name))
}

/// Records segments' results (or faults) and makes their ready decisions, all in one commit;
/// returns the checkpoints that are no longer needed, for the caller to delete outside the
/// lock.
fn finish(shared: &Shared<'_>, results: Vec<(Job, Outcome)>) -> Vec<String> {
    let mut guard = lock(&shared.state);
    let st = &mut *guard;
    let mut c = Commit {
        elapsed: st.last_commit.elapsed().as_secs_f64(),
        ..Commit::default()
    };
    let mut requeue = Vec::new();
    let mut round_done = false;
    for (job, result) in results {
        let (again, done) = record(shared, st, &job, result, &mut c);
        if again {
            requeue.push(job.member);
        }
        round_done |= done;
    }
    c.forget = garbage(shared, st);
    if let Err(e) = st.store.commit(&c) {
        st.fatal = Some(format!("cannot record the results: {e}"));
        shared.cv.notify_all();
        return Vec::new();
    }
    for name in &c.forget {
        st.index.remove(name);
    }
    st.last_commit = Instant::now();
    st.queue.extend(requeue);
    if round_done {
        refill_round(shared, st);
    }
    update_message(shared, st);
    shared.cv.notify_all();
    std::mem::take(&mut c.forget)
}

/// Records one segment's result (or fault) into `c` and the in-memory state, with its ready
/// decision; returns whether the member trains again and whether a synchronous round ended.
fn record(
    shared: &Shared<'_>,
    st: &mut State,
    job: &Job,
    result: Outcome,
    c: &mut Commit,
) -> (bool, bool) {
    let def = shared.def;
    st.running -= 1;
    let m = job.member;
    let mut requeue = false;
    let mut round_done = false;
    match result {
        Ok((steps, name, checksum)) => {
            let last = steps.last().map_or(f64::NAN, |s| s.score);
            for s in &steps {
                let key = def.mode.key(s.score);
                let improved = st.best.is_none_or(|(b, _)| key > b + plateau_delta(def));
                if improved {
                    st.best = Some((key, s.step));
                }
                st.max_step = st.max_step.max(s.step);
                if let Some(t) = def.stop.target {
                    if key >= def.mode.key(t) && st.stop.is_none() {
                        st.stop = Some(format!(
                            "member {m} reached the target {} = {} at step {}",
                            def.metric, s.score, s.step
                        ));
                    }
                }
            }
            c.steps.extend(steps.iter().map(|s| StepRow {
                member: m,
                step: s.step,
                score: s.score,
                metrics: s.metrics.clone(),
            }));
            let row = CheckpointRow {
                name: name.clone(),
                member: m,
                step: job.stop,
                checksum,
                score: last,
            };
            st.index.insert(name.clone(), row.clone());
            c.checkpoints.push(row);
            st.pop
                .record_iter(m, job.stop, steps.iter().map(|s| s.score));
            {
                let mr = &mut st.members[m];
                mr.step = job.stop;
                mr.score = Some(last);
                mr.recent = st.pop.member(m).recent_keys().iter().copied().collect();
                mr.checkpoint = Some(name);
                mr.failures = 0;
                mr.done = job.stop >= def.stop.steps;
            }
            let sync = def.policy.sync == SyncMode::Synchronous;
            if !sync {
                if !st.members[m].done && def.policy.is_ready(job.stop) {
                    decide(shared, st, m, c, st.seq);
                }
                c.members.push(st.members[m].clone());
                requeue = !st.members[m].done;
            } else {
                c.members.push(st.members[m].clone());
                let pending = st.members.iter().any(|r| !r.done && r.step < st.round_stop);
                if !pending && st.running == 0 && st.queue.is_empty() {
                    round_done = true;
                    let stop = st.round_stop;
                    if stop < def.stop.steps && def.policy.is_ready(stop) {
                        sync_round(shared, st, stop, c);
                    }
                }
            }
            if let Some((patience, _)) = def.stop.plateau {
                if let Some((_, at)) = st.best {
                    if st.max_step >= at + patience && st.stop.is_none() {
                        st.stop = Some(format!(
                            "plateau: the best {} has not improved for {patience} steps",
                            def.metric
                        ));
                    }
                }
            }
        }
        Err((fault, stderr)) => {
            st.faults += 1;
            let step = st.members[m].step;
            shared.bar.println(format!(
                "member {m}: {} fault at step {step}: {}",
                fault.kind, fault.message
            ));
            c.faults.push(FaultRow {
                member: m,
                step,
                kind: fault.kind.to_string(),
                message: fault.message.clone(),
                stderr,
            });
            st.members[m].failures += 1;
            if st.members[m].failures > def.trainable.max_failures {
                replace(shared, st, m, c);
            }
            c.members.push(st.members[m].clone());
            requeue = st.fatal.is_none();
        }
    }
    (requeue, round_done)
}

fn plateau_delta(def: &ExperimentDef) -> f64 {
    def.stop.plateau.map_or(0.0, |(_, d)| d)
}

/// Starts the next synchronous round: every unfinished member trains to the next boundary.
fn refill_round(shared: &Shared<'_>, st: &mut State) {
    let def = shared.def;
    let min_step = st.members.iter().filter(|r| !r.done).map(|r| r.step).min();
    if let Some(min_step) = min_step {
        st.round_stop = def.policy.next_stop(min_step, def.stop.steps);
        let ids: Vec<usize> = st
            .members
            .iter()
            .filter(|r| !r.done && r.step < st.round_stop)
            .map(|r| r.id)
            .collect();
        st.queue.extend(ids);
    }
}

/// Makes member `m`'s ready decision against the current population.
fn decide(shared: &Shared<'_>, st: &mut State, m: usize, c: &mut Commit, seq: u64) {
    let mut book = Book {
        def: shared.def,
        pop: &mut st.pop,
        members: &mut st.members,
    };
    if let Some(e) = book.decide(m, seq) {
        st.seq += 1;
        st.exploits += usize::from(e.donor.is_some());
        c.events.push(e);
    }
}

/// A synchronous round: every member decides from the same snapshot, then all apply.
fn sync_round(shared: &Shared<'_>, st: &mut State, stop: u64, c: &mut Commit) {
    let mut book = Book {
        def: shared.def,
        pop: &mut st.pop,
        members: &mut st.members,
    };
    let events = book.sync_round(stop);
    st.exploits += events.iter().filter(|e| e.donor.is_some()).count();
    c.events.extend(events);
    for m in st.members.iter().filter(|r| !r.done) {
        if let Some(pos) = c.members.iter().position(|r| r.id == m.id) {
            c.members[pos] = m.clone();
        } else {
            c.members.push(m.clone());
        }
    }
}

/// A member that failed too often is replaced by an exploit of the best member.
fn replace(shared: &Shared<'_>, st: &mut State, m: usize, c: &mut Commit) {
    let seq = if shared.def.policy.sync == SyncMode::Synchronous {
        st.round_stop
    } else {
        st.seq
    };
    let mut book = Book {
        def: shared.def,
        pop: &mut st.pop,
        members: &mut st.members,
    };
    match book.replace(m, seq) {
        Ok(e) => {
            shared.bar.println(format!(
                "member {m}: replaced by an exploit of member {} after repeated faults",
                e.donor.unwrap_or(m)
            ));
            st.seq += 1;
            st.exploits += 1;
            c.events.push(e);
        }
        Err(why) => {
            st.fatal = Some(format!(
                "{why}; see the faults with `poptune status {}` and the logs in {}",
                shared.def.directory.display(),
                shared.logs.display()
            ))
        }
    }
}

fn garbage(shared: &Shared<'_>, st: &State) -> Vec<String> {
    crate::decisions::garbage(shared.def.mode, &st.members, st.index.values())
}
