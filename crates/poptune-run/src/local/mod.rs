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

mod commit;
mod dir;
mod slot;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use poptune::{ExperimentDef, SyncMode};
use poptune_store::{CheckpointRow, Checkpoints, Commit, RunStatus, SqliteStore, Store};

pub use dir::{
    check_not_running, create_or_open, initial_members, is_held, open_dir, slot_log, tidy, Opened,
    CKPT_DIR, DB_FILE, LOCK_FILE, LOG_DIR,
};

pub use crate::cancel::{Cancel, NoCancel};
use crate::events::{MemberState, MemberView, Observer, Progress, RunEvent};
use crate::pool::Workers;
use crate::settle::Books;
use crate::RunError;

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The status recorded.
    pub status: RunStatus,
    /// The best member and its score.
    pub best: Option<(usize, f64)>,
    /// Faults during this run.
    pub faults: u64,
    /// Member-steps trained in all, including those trained again.
    pub compute: u64,
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
    /// The population, the members' rows and the running totals: what the settle path works on.
    books: Books,
    queue: VecDeque<usize>,
    /// Which members a slot trains now.
    training: Vec<bool>,
    /// Each member's seconds per step in its last segment (0 until it has trained one in
    /// this run): which member a free slot takes among equals (`slot::take_next`).
    pace: Vec<f64>,
    running: usize,
    round_stop: u64,
    fatal: Option<String>,
    elapsed_before: f64,
    started: Instant,
    last_commit: Instant,
    last_progress: Option<Instant>,
    /// Faults during this run.
    faults: u64,
}

impl State {
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }
}

struct Shared<'a> {
    def: &'a ExperimentDef,
    ckpts: Checkpoints,
    logs: PathBuf,
    /// Written by the committer only, which also records the run's end and closes it.
    store: Mutex<Option<SqliteStore>>,
    state: Mutex<State>,
    cv: Condvar,
    observer: &'a dyn Observer,
    cancel: &'a dyn Cancel,
}

/// Deletes the superseded checkpoints whose names arrive on `rx`. Each leaves the checkpoint
/// folder as soon as its name arrives (one rename into `.tmp/`), so the folder holds what the
/// index names; its files are deleted while no new name waits. When the run ends (`rx`
/// closes), deletes go on for at most [`END_DELETES`]; what is not emptied by then stays in
/// `.tmp/` for the next run to clear: a finished run does not linger over slow deletes.
fn collect_garbage(ckpts: &Checkpoints, rx: std::sync::mpsc::Receiver<Vec<String>>) {
    use std::sync::mpsc::TryRecvError;
    let mut retired: std::collections::VecDeque<std::path::PathBuf> = Default::default();
    loop {
        // Behind: delete before taking more names (the committer waits meanwhile).
        while retired.len() >= MAX_RETIRED {
            if let Some(dir) = retired.pop_front() {
                let _ = ckpts.empty_retired(&dir);
            }
        }
        let names = if retired.is_empty() {
            match rx.recv() {
                Ok(names) => names,
                Err(_) => break,
            }
        } else {
            match rx.try_recv() {
                Ok(names) => names,
                Err(TryRecvError::Empty) => {
                    if let Some(dir) = retired.pop_front() {
                        let _ = ckpts.empty_retired(&dir);
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        };
        for name in names {
            if let Ok(Some(dir)) = ckpts.retire(&name) {
                retired.push_back(dir);
            }
        }
    }
    // The run has ended: what little is left goes now, a long backlog stays for the next run.
    let deadline = std::time::Instant::now() + END_DELETES;
    while std::time::Instant::now() < deadline {
        let Some(dir) = retired.pop_front() else {
            break;
        };
        let _ = ckpts.empty_retired(&dir);
    }
    ckpts.drop_spares();
}

/// Batches of superseded checkpoints that may wait for the deleter.
const GC_BATCHES: usize = 4;

/// Superseded checkpoints taken out of the folder whose files may wait to be deleted.
const MAX_RETIRED: usize = 16;

/// How long a run that has ended goes on deleting superseded checkpoints.
const END_DELETES: std::time::Duration = std::time::Duration::from_millis(500);

fn lock<'a>(m: &'a Mutex<State>) -> MutexGuard<'a, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a slot hands to the committer: what to record of one segment (its steps, the
/// checkpoint it placed, the member's new row and its decision), already applied to the state
/// in memory.
type Handoff = Commit;

/// How many segments may wait to be recorded before the slots wait for the disk.
const MAX_UNRECORDED: usize = 1024;

/// Runs (or continues) an experiment until it finishes, a stopping rule fires or `cancel`
/// says to stop; events go to `observer`.
pub fn run(
    def: &ExperimentDef,
    mut store: SqliteStore,
    workers: &dyn Workers,
    observer: &dyn Observer,
    cancel: &dyn Cancel,
) -> Result<Summary, RunError> {
    let dir = &def.directory;
    // Enough GPUs for the slots that can train at once, before anything is recorded.
    crate::devices::plan(&def.trainable, def.slots.min(def.population))?;
    let _lock = dir::lock_dir(dir)?;
    let (status, elapsed_before) = store.status()?;
    if status != RunStatus::Running {
        // Held by this process from now on (`status` tells a killed run by the free lock).
        store.commit(&Commit {
            status: Some(RunStatus::Running),
            ..Commit::default()
        })?;
    }
    let ckpts = Checkpoints::open(&dir.join(CKPT_DIR))?;
    ckpts.clean_tmp()?;
    let logs = dir.join(LOG_DIR);
    std::fs::create_dir_all(&logs)
        .map_err(|e| RunError::io(format!("cannot create {}", logs.display()), e))?;
    let state = load(def, &store, &ckpts, elapsed_before)?;
    let resumed = state.books.tally.compute > 0;
    observer.event(&RunEvent::Started {
        name: def.name.clone(),
        done: state.books.members.iter().map(|m| m.step).sum(),
        total: def.population as u64 * def.stop.steps,
        resumed,
    });
    let shared = Shared {
        def,
        ckpts,
        logs,
        store: Mutex::new(Some(store)),
        state: Mutex::new(state),
        cv: Condvar::new(),
        observer,
        cancel,
    };
    {
        let mut st = lock(&shared.state);
        let open = st.books.members.iter().any(|m| !m.done);
        if st.queue.is_empty() && open && def.policy.sync == SyncMode::Synchronous {
            // Every member is at the boundary: the round's decisions were committed with the
            // last segment, so the next round starts.
            refill_round(&shared, &mut st);
        }
        progress(&shared, &mut st, true);
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<Handoff>();
        // Bounded: when deletes fall behind (large checkpoints on a slow disk), the committer
        // waits for them, and so the slots, rather than superseded checkpoints piling up.
        let (gc_tx, gc_rx) = std::sync::mpsc::sync_channel::<Vec<String>>(GC_BATCHES);
        let shared = &shared;
        s.spawn(move || commit::committer(shared, rx, gc_tx));
        // Deleting superseded checkpoints is slow file-system work; done here it never holds
        // up the next group commit. (A deleted name never comes back: it is an older step of
        // its member, whose step count only grows.)
        s.spawn(move || collect_garbage(&shared.ckpts, gc_rx));
        for slot in 0..def.slots {
            let tx = tx.clone();
            s.spawn(move || slot::slot_loop(shared, workers, slot, tx));
        }
    });
    let mut st = lock(&shared.state);
    progress(&shared, &mut st, true);
    // The committer recorded it (or failed, which is fatal); the state has not changed since.
    let status = commit::end_status(&st);
    observer.event(&RunEvent::Ended {
        status: status.clone(),
    });
    if let Some(f) = st.fatal.clone() {
        return Err(RunError::Fatal(f));
    }
    let pop = &st.books.pop;
    let best = pop.best().and_then(|b| pop.member(b).score.map(|s| (b, s)));
    Ok(Summary {
        status,
        best,
        faults: st.faults,
        compute: st.books.tally.compute,
    })
}

/// The run's state from the store (`elapsed_before`: its running time so far): the members, the checkpoint index (every checkpoint a
/// member refers to must be in it and on disk), the queue.
fn load(
    def: &ExperimentDef,
    store: &SqliteStore,
    ckpts: &Checkpoints,
    elapsed_before: f64,
) -> Result<State, RunError> {
    let dir = &def.directory;
    let mut members = store.members()?;
    if members.len() != def.population {
        return Err(RunError::Fatal(format!(
            "{}: the store holds {} members but the definition says {}",
            dir.display(),
            members.len(),
            def.population
        )));
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
                return Err(RunError::Fatal(format!(
                    "member {}'s checkpoint {} is missing from {}; the experiment directory is damaged",
                    m.id,
                    c,
                    ckpts.root().display()
                )));
            }
        }
    }
    // Checkpoints placed by a run that stopped before recording them.
    ckpts.sweep(|name| index.contains_key(name))?;
    let events = store.events()?;
    let exploits = events.iter().filter(|e| e.donor.is_some()).count() as u64;
    let faults = store.faults()?.len() as u64;
    for m in &mut members {
        m.failures = m.failures.min(def.trainable.max_failures);
        // The stop rules may have changed since (to train for longer).
        m.done = m.step >= def.stop.steps;
    }
    let books = Books::new(
        def,
        members,
        store.tally()?,
        events.len() as u64,
        exploits,
        faults,
    )
    // PB2's decisions are made without the state's lock (see `slot::decide_unlocked`).
    .deferring();
    let not_done: Vec<usize> = books
        .members
        .iter()
        .filter(|m| !m.done)
        .map(|m| m.id)
        .collect();
    let round = books.next_round(def);
    let queue: VecDeque<usize> = if def.policy.sync == SyncMode::Synchronous {
        round
            .as_ref()
            .map(|(_, ids)| ids.clone())
            .unwrap_or_default()
            .into()
    } else {
        not_done.into()
    };
    Ok(State {
        recorded_index: index.clone(),
        recorded_refs: books.members.iter().map(|m| m.checkpoint.clone()).collect(),
        unrecorded: 0,
        index,
        training: vec![false; books.members.len()],
        pace: vec![0.0; books.members.len()],
        books,
        queue,
        running: 0,
        round_stop: round.map_or(def.stop.steps, |(stop, _)| stop),
        fatal: None,
        elapsed_before,
        started: Instant::now(),
        last_commit: Instant::now(),
        last_progress: None,
        faults: 0,
    })
}

/// Tells the observer how the population stands, at most about ten times a second unless
/// `now`.
fn progress(shared: &Shared<'_>, st: &mut State, now: bool) {
    let due = st
        .last_progress
        .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(100));
    if !(now || due) {
        return;
    }
    st.last_progress = Some(Instant::now());
    let def = shared.def;
    let pop = &st.books.pop;
    let best = pop.best().and_then(|b| pop.member(b).score.map(|s| (b, s)));
    let top = (0..shared.observer.top().min(def.population))
        .filter_map(|r| pop.at_rank(r))
        .map(|m| {
            let row = &st.books.members[m];
            let state = if row.done {
                MemberState::Done
            } else if row.failures > 0 {
                MemberState::Failing
            } else if st.training[m] {
                MemberState::Training
            } else if st.queue.contains(&m) {
                MemberState::Queued
            } else {
                MemberState::Waiting
            };
            MemberView {
                id: m,
                step: row.step,
                score: row.score,
                state,
                h: row.h.clone(),
            }
        })
        .collect();
    let p = Progress {
        done: st.books.members.iter().map(|m| m.step).sum(),
        total: def.population as u64 * def.stop.steps,
        compute: st.books.tally.compute,
        best,
        exploits: st.books.tally.exploits,
        faults: st.books.tally.faults,
        top,
        population: def.population,
        elapsed: st.elapsed(),
    };
    shared.observer.event(&RunEvent::Progress(p));
}

/// Starts the next synchronous round: every unfinished member trains to the next boundary.
fn refill_round(shared: &Shared<'_>, st: &mut State) {
    if let Some((stop, ids)) = st.books.next_round(shared.def) {
        st.round_stop = stop;
        st.queue.extend(ids);
    }
}
