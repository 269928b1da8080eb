//! The durable runner: trainables on `slots` workers (external processes or in-process code),
//! every result committed to the experiment's store, so that a run killed at any moment
//! continues where it stopped.
//!
//! A segment's steps, its checkpoint, the member's new state and the ready decision are
//! recorded together. A member killed mid-segment has nothing recorded for that segment and
//! trains it again from its last checkpoint; nothing is lost and nothing is counted twice. In
//! synchronous mode the last member to reach a round's boundary records the whole round's
//! decisions with its segment, so a resumed synchronous run makes exactly the decisions an
//! uninterrupted one makes.
//!
//! Training never waits for the disk. A slot places a segment's checkpoint (renamed into the
//! checkpoint folder, not yet flushed), applies the result and the ready decision to the state
//! in memory, and the member can train again at once. The committer records the segments in
//! the order they were applied, in groups: one flush of the file system for the group's
//! checkpoints, then one transaction. So the store always holds a prefix of what happened in
//! memory, every checkpoint it names is durable, and a decision is never recorded without the
//! results it saw. A checkpoint superseded before its group is flushed is deleted without ever
//! being written to disk.

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

/// Slot `slot`'s trainable stderr log in the log folder `logs`.
pub fn slot_log(logs: &Path, slot: usize) -> PathBuf {
    logs.join(format!("slot-{slot}.stderr.log"))
}

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
    /// Every checkpoint placed and not yet deleted, recorded or not.
    index: BTreeMap<String, CheckpointRow>,
    /// The checkpoints the store's index holds.
    recorded_index: BTreeMap<String, CheckpointRow>,
    /// Each member's checkpoint as the store records it (the members' rows in memory run
    /// ahead of the store by the segments still waiting to be recorded).
    recorded_refs: Vec<Option<String>>,
    /// Segments handed to the committer and not yet recorded.
    unrecorded: usize,
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
    /// Written by the committer only, which also records the run's end and closes it.
    store: Mutex<Option<SqliteStore>>,
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
    let _lock = lock_dir(dir)?;
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
    // Checkpoints placed by a run that stopped before recording them.
    ckpts.sweep(|name| index.contains_key(name))?;
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
        store: Mutex::new(Some(store)),
        state: Mutex::new(State {
            recorded_index: index.clone(),
            recorded_refs: members.iter().map(|m| m.checkpoint.clone()).collect(),
            unrecorded: 0,
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
    let st = lock(&shared.state);
    shared.bar.finish_and_clear();
    for l in &shared.board {
        l.finish_and_clear();
    }
    if let Some(f) = st.fatal.clone() {
        return Err(anyhow!(f).into());
    }
    // The committer recorded it (or failed, which is fatal); the state has not changed since.
    let status = end_status(&st);
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
        if st.unrecorded >= MAX_UNRECORDED {
            // The disk is far behind: wait for it rather than risk more work on a crash.
            st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
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

/// What a slot hands to the committer: what to record of one segment (its steps, the
/// checkpoint it placed, the member's new row and its decision), already applied to the state
/// in memory.
type Handoff = Commit;

/// How many segments may wait to be recorded before the slots wait for the disk.
const MAX_UNRECORDED: usize = 1024;

/// Fails with the same message as [`run`] when another process is running the experiment in
/// `dir`, so a command can say so before it announces anything. (The lock is released again:
/// `run` takes it for good.)
pub fn check_not_running(dir: &Path) -> Result<(), CliError> {
    lock_dir(dir).map(drop)
}

/// Holds the experiment directory for this process: a second `poptune run` or `resume` of the
/// same experiment would train the same members and delete each other's checkpoints.
fn lock_dir(dir: &Path) -> Result<std::fs::File, CliError> {
    let path = dir.join("poptune.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(CliError::usage(anyhow!(
            "another poptune process is running the experiment in {}; wait for it to end or \
             stop it (Ctrl-C) before running it again, and watch it with `poptune status {}`",
            dir.display(),
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            // Some network file systems have no locks: run, as without one, and say so.
            eprintln!(
                "warning: cannot lock {} ({e}); make sure no other poptune process runs this \
                 experiment at the same time",
                path.display()
            );
            Ok(file)
        }
    }
}

/// A slot: one worker (a trainable process, or an in-process trainable). After each segment
/// it places the checkpoint, records the result and the ready decision in memory and hands
/// them to the committer; the member can train again at once, while its checkpoint is made
/// durable and recorded.
fn slot_loop(
    shared: &Shared<'_>,
    workers: &dyn Workers,
    slot: usize,
    tx: std::sync::mpsc::Sender<Handoff>,
) {
    let log = slot_log(&shared.logs, slot);
    let mut worker = workers.worker(slot, &log);
    while let Some(job) = claim(shared) {
        let outcome = train(shared, worker.as_mut(), &job);
        let mut guard = lock(&shared.state);
        let st = &mut *guard;
        let mut commit = Commit::default();
        let (again, round_done) = record(shared, st, &job, outcome, &mut commit);
        if again {
            st.queue.push_back(job.member);
        }
        if round_done {
            refill_round(shared, st);
        }
        update_message(shared, st);
        // Handed over under the lock, so the committer records segments in the order their
        // decisions saw them: a decision is never recorded before a result it depended on.
        st.unrecorded += 1;
        let sent = tx.send(commit).is_ok();
        shared.cv.notify_all();
        if !sent {
            break;
        }
    }
    // The committer can record this slot's last segments while the trainable shuts down.
    drop(tx);
    worker.finish();
}

/// The committer: takes the segments waiting (group commit, at most one flush every
/// [`FLUSH_EVERY`]), deletes the checkpoints among them that are already superseded (they are
/// never written to disk), makes the others durable with one flush of the file system, then
/// records the batch in one transaction, in order, together with the older checkpoints that
/// nothing needs any more. A checkpoint is recorded only once it is durable, so after a crash
/// the store names only whole checkpoints.
fn committer(
    shared: &Shared<'_>,
    rx: std::sync::mpsc::Receiver<Handoff>,
    gc: std::sync::mpsc::Sender<Vec<String>>,
) {
    // No flush yet: the first group then collects for a whole period from its first
    // segment (the trainables' start-up is over by then), rather than being one segment.
    let mut last_flush: Option<Instant> = None;
    let mut end_recorded = false;
    let mut slots_done = false;
    while !slots_done {
        let Ok(first) = rx.recv() else { break };
        // Collect segments until the flush is due. Each arrival is taken into the batch at
        // once, and the batch's checkpoints that newer ones have superseded are deleted
        // while waiting (they are never written to disk), so that the flush can start as
        // soon as it is due, and the last one as soon as the slots stop.
        let mut c = Commit::default();
        let mut forget = std::collections::BTreeSet::new();
        let mut arrived = vec![first];
        let mut n = 0;
        let deadline = last_flush.unwrap_or_else(Instant::now) + FLUSH_EVERY;
        loop {
            while let Ok(more) = rx.try_recv() {
                arrived.push(more);
            }
            n += arrived.len();
            let superseded = absorb(shared, &mut c, &mut forget, std::mem::take(&mut arrived));
            for name in &superseded {
                let _ = shared.ckpts.recycle(name);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(more) => arrived.push(more),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    slots_done = true;
                    break;
                }
            }
        }
        last_flush = Some(Instant::now());
        c.forget = forget.into_iter().collect();
        if slots_done {
            // Every slot has stopped and this batch holds their last segments: the run's
            // end is recorded with it, in the same transaction.
            c.status = Some(end_status(&lock(&shared.state)));
        }
        let placed: Vec<String> = c.checkpoints.iter().map(|r| r.name.clone()).collect();
        if let Err(e) = shared.ckpts.flush(&placed) {
            fail(shared, format!("cannot flush the checkpoints to disk: {e}"));
            return;
        }
        {
            // The running time up to this commit.
            let mut st = lock(&shared.state);
            let now = Instant::now();
            c.elapsed = (now - st.last_commit).as_secs_f64();
            st.last_commit = now;
        }
        let committed = match shared
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(store) => store.commit(&c),
            None => return,
        };
        if let Err(e) = committed {
            fail(shared, format!("cannot record the results: {e}"));
            return;
        }
        end_recorded = c.status.is_some();
        {
            let mut st = lock(&shared.state);
            for name in &c.forget {
                st.recorded_index.remove(name);
                st.index.remove(name);
            }
            st.unrecorded -= n;
            shared.cv.notify_all();
        }
        if !c.forget.is_empty() {
            let _ = gc.send(c.forget);
        }
    }
    // Every slot has stopped: nothing more will be recorded.
    drop(gc);
    record_end(shared, end_recorded);
}

/// The longest a segment waits to be recorded (unless the disk is slower). Waiting lets one
/// flush cover many segments, and a member's checkpoint that a newer one supersedes in the
/// meantime is deleted before it is ever written to disk.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How the run ended, once no slot trains any more.
fn end_status(st: &State) -> String {
    if st.members.iter().all(|m| m.done) {
        "finished".to_string()
    } else {
        format!(
            "stopped: {}",
            st.stop.clone().unwrap_or_else(|| "interrupted".into())
        )
    }
}

/// Records how the run ended, unless the last batch did, and closes the store (its last
/// flush to the database file happens here, while the trainables shut down).
fn record_end(shared: &Shared<'_>, recorded: bool) {
    let mut st = lock(&shared.state);
    let Some(mut store) = shared
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return;
    };
    if !recorded {
        let c = Commit {
            status: Some(end_status(&st)),
            elapsed: st.last_commit.elapsed().as_secs_f64(),
            ..Commit::default()
        };
        if let Err(e) = store.commit(&c) {
            st.fatal = Some(format!("cannot record the end of the run: {e}"));
        }
    }
    // Closing the database (its last write) need not hold up the slots' state.
    drop(st);
    drop(store);
}

/// Stops the run with a fatal error.
fn fail(shared: &Shared<'_>, why: String) {
    let mut st = lock(&shared.state);
    if st.fatal.is_none() {
        st.fatal = Some(why);
    }
    shared.cv.notify_all();
}

/// Takes segments that arrived into the batch `c`, which becomes one commit. `forget` gathers
/// the recorded checkpoints that no member needs any more, neither in memory nor in the store
/// once the commit lands; the batch's own checkpoints that are unneeded already are taken out
/// of it and returned, to be deleted before the flush.
fn absorb(
    shared: &Shared<'_>,
    c: &mut Commit,
    forget: &mut std::collections::BTreeSet<String>,
    arrived: Vec<Handoff>,
) -> Vec<String> {
    let mut guard = lock(&shared.state);
    let st = &mut *guard;
    let mut placed = Vec::new();
    for part in arrived {
        c.steps.extend(part.steps);
        placed.extend(part.checkpoints);
        for m in &part.members {
            st.recorded_refs[m.id] = m.checkpoint.clone();
        }
        c.members.extend(part.members);
        c.events.extend(part.events);
        c.faults.extend(part.faults);
    }
    // The store's view once this commit lands. A checkpoint that neither it nor the members
    // in memory (which run ahead of it) refer to is never needed again: a member only ever
    // comes to refer to a checkpoint that another member refers to at that moment.
    for row in &placed {
        st.recorded_index.insert(row.name.clone(), row.clone());
    }
    c.checkpoints.extend(placed);
    let referenced = st
        .recorded_refs
        .iter()
        .flatten()
        .chain(st.members.iter().filter_map(|m| m.checkpoint.as_ref()))
        .map(String::as_str);
    let unneeded: std::collections::BTreeSet<String> =
        crate::decisions::garbage(shared.def.mode, referenced, st.recorded_index.values())
            .into_iter()
            .collect();
    let (superseded, kept): (Vec<CheckpointRow>, Vec<CheckpointRow>) = c
        .checkpoints
        .drain(..)
        .partition(|r| unneeded.contains(&r.name));
    c.checkpoints = kept;
    for r in &superseded {
        st.recorded_index.remove(&r.name);
        st.index.remove(&r.name);
    }
    let mine: std::collections::BTreeSet<&str> =
        superseded.iter().map(|r| r.name.as_str()).collect();
    forget.extend(unneeded.into_iter().filter(|n| !mine.contains(n.as_str())));
    superseded.into_iter().map(|r| r.name).collect()
}

/// A segment trained: its steps, the name of the checkpoint it placed and its checksum.
type Trained = (Vec<Step>, String, String);
/// A segment's end: trained and checkpointed, or a fault with the process's stderr.
type Outcome = Result<Trained, Failure>;

fn train(shared: &Shared<'_>, worker: &mut dyn Worker, job: &Job) -> Outcome {
    let no_stderr = |f: Fault| (f, String::new());
    let ckpt_fault = |e: poptune_store::StoreError| {
        no_stderr(Fault {
            kind: "checkpoint",
            message: e.to_string(),
        })
    };
    if let Some((name, sum)) = &job.restore {
        shared.ckpts.verify(name, sum).map_err(ckpt_fault)?;
    }
    let tmp = shared
        .ckpts
        .tmp_dir(&format!("m{}", job.member))
        .map_err(ckpt_fault)?;
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
    let placed = worker
        .train(&req, &mut |_| shared.bar.inc(1))
        .and_then(|steps| match shared.ckpts.place(&tmp, &name) {
            Ok(Some(sum)) => Ok((steps, name, sum)),
            Ok(None) => Err(no_stderr(Fault {
                kind: "protocol",
                message: format!(
                    "said \"saved\" but wrote no files into the checkpoint directory {}",
                    tmp.display()
                ),
            })),
            Err(e) => Err(ckpt_fault(e)),
        });
    if placed.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    placed
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
