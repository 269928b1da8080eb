//! The in-memory runner: a [`poptune::Experiment`] of Rust [`Trainable`]s trained on worker
//! threads, every segment settled by the same path as a `poptune run` ([`Books::settle`]).
//!
//! Members time-share the workers when there are more members than workers. Exploits clone
//! the donor's saved state in memory. A trainable's error, non-finite score or panic is a
//! fault: the member trains again from its last state, and after `max_failures` faults in a
//! row it is replaced by an exploit of the best member; the others' results are never lost.
//! A synchronous run is reproducible bit for bit for a given seed whatever the number of
//! workers; an asynchronous run is when it has one worker.
//!
//! With [`Run::run_in`] the same experiment is kept in an experiment directory instead (the
//! local runner with in-process workers), so that it can be resumed, inspected, reported and
//! exported like a `poptune run`.

use std::collections::VecDeque;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use poptune::{
    Event, Experiment, ExperimentDef, MemberId, MemberOutcome, Outcome, StepRecord, SyncMode,
    Trainable,
};
use poptune_store::{Commit, FaultRow, MemberRow, RunStatus};

use crate::cancel::{Cancel, NoCancel};
use crate::events::{Observer, Quiet, RunEvent};
use crate::inprocess::{panic_message, InProcess, Persist};
use crate::local::{self, Summary};
use crate::settle::Books;
use crate::RunError;

mod worker;

use worker::Memory;

/// What an in-memory run produced: the [`Outcome`] (members, final states, lineage), and the
/// faults and how the run ended. Dereferences to the outcome. A run that could not go on (a
/// member that fails whatever state it starts from) still returns every result trained so
/// far, with the status `Failed` saying why.
#[derive(Clone, Debug)]
pub struct RunOutcome<S> {
    /// The members, their final states and the lineage.
    pub outcome: Outcome<S>,
    /// Every fault, in order.
    pub faults: Vec<FaultRow>,
    /// How the run ended: finished, stopped by a rule, interrupted (cancelled), or failed.
    pub status: RunStatus,
    /// Member-steps trained, including those trained again after a fault.
    pub compute: u64,
}

impl<S> Deref for RunOutcome<S> {
    type Target = Outcome<S>;

    fn deref(&self) -> &Outcome<S> {
        &self.outcome
    }
}

/// Runs an [`Experiment`]. In scope with `use poptune_run::Run`.
///
/// ```
/// use poptune::{Experiment, Hyperparams, Metrics, Param, Space, Trainable, TrainableError};
/// use poptune_run::Run;
///
/// struct Quadratic { x: f64 }
/// impl Trainable for Quadratic {
///     type State = f64;
///     fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
///         let lr = h.f64("lr").unwrap_or(0.0);
///         self.x -= lr * 2.0 * (self.x - 3.0);
///         Ok(Metrics::new(-(self.x - 3.0).powi(2)))
///     }
///     fn save(&self) -> f64 { self.x }
///     fn restore(&mut self, s: &f64) { self.x = *s }
/// }
///
/// let space = Space::new().with("lr", Param::log_float(1e-4, 0.4));
/// let outcome = Experiment::new(space)
///     .population(8)
///     .steps(50)
///     .seed(7)
///     .workers(1) // one worker: an asynchronous run is then reproducible
///     .run(|_member| Quadratic { x: 0.0 })
///     .unwrap();
/// let best = outcome.best();
/// assert!(outcome.members[best].score.unwrap() > -1e-3);
/// // The schedule that produced the best member replays to the same score.
/// let sched = outcome.schedule(best);
/// let replayed = sched.replay(&mut Quadratic { x: 0.0 }).unwrap();
/// assert_eq!(replayed.last().unwrap().score, outcome.members[best].score.unwrap());
/// ```
pub trait Run {
    /// Trains the experiment in memory; `factory(i)` makes member `i`'s trainable in its
    /// initial state.
    fn run<T, F>(&self, factory: F) -> Result<RunOutcome<T::State>, RunError>
    where
        T: Trainable,
        F: Fn(MemberId) -> T + Sync,
    {
        self.run_with(factory, &Quiet, &NoCancel)
    }

    /// [`run`](Self::run), telling `observer` what happens and stopping when `cancel` says
    /// so (the run then ends as interrupted, with every segment trained so far).
    fn run_with<T, F>(
        &self,
        factory: F,
        observer: &dyn Observer,
        cancel: &dyn Cancel,
    ) -> Result<RunOutcome<T::State>, RunError>
    where
        T: Trainable,
        F: Fn(MemberId) -> T + Sync;

    /// Trains the experiment kept in the experiment directory `dir` as `name`: created if
    /// new, continued if it holds the same experiment (a killed or cancelled run resumes where
    /// it stopped). The directory then reads like a `poptune run`'s: `poptune status`,
    /// `report` and `export` work on it.
    fn run_in<T, F>(
        &self,
        name: &str,
        dir: &Path,
        factory: F,
        observer: &dyn Observer,
        cancel: &dyn Cancel,
    ) -> Result<Summary, RunError>
    where
        T: Persist,
        F: Fn(MemberId) -> T + Sync;
}

impl Run for Experiment {
    fn run_with<T, F>(
        &self,
        factory: F,
        observer: &dyn Observer,
        cancel: &dyn Cancel,
    ) -> Result<RunOutcome<T::State>, RunError>
    where
        T: Trainable,
        F: Fn(MemberId) -> T + Sync,
    {
        let initial = self
            .initial_hyperparams()
            .map_err(|e| RunError::usage(format!("invalid experiment: {e}")))?;
        let def = self.definition("memory", Path::new(""));
        let rows: Vec<MemberRow> = initial
            .iter()
            .enumerate()
            .map(|(id, h)| MemberRow::new(id, h.clone()))
            .collect();
        let books = Books::new(&def, rows, None, 0, 0, 0).without_rows();
        let run = Memory {
            def: &def,
            factory: &factory,
            observer,
            cancel,
            state: Mutex::new(State::new(books, &def, self.steps)),
            cv: Condvar::new(),
        };
        let workers = self.workers.min(self.population).max(1);
        thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| run.worker(workers));
            }
        });
        let st = run.state.into_inner().unwrap_or_else(|e| e.into_inner());
        st.finish(self, initial, &factory, cancel, observer)
    }

    fn run_in<T, F>(
        &self,
        name: &str,
        dir: &Path,
        factory: F,
        observer: &dyn Observer,
        cancel: &dyn Cancel,
    ) -> Result<Summary, RunError>
    where
        T: Persist,
        F: Fn(MemberId) -> T + Sync,
    {
        self.validate()
            .map_err(|e| RunError::usage(format!("invalid experiment: {e}")))?;
        let dir = std::path::absolute(dir)
            .map_err(|e| RunError::io(format!("cannot resolve {}", dir.display()), e))?;
        let def = self.definition(name, &dir);
        let (store, _) = local::create_or_open(&def)?;
        local::run(&def, store, &InProcess::new(factory), observer, cancel)
    }
}

/// The run's state, under one lock.
struct State<T: Trainable> {
    books: Books,
    /// Each member's state as its row's checkpoint names it (after an exploit: the donor's).
    ckpts: Vec<Option<Arc<T::State>>>,
    /// The state a member restores before its next segment.
    restore: Vec<Option<Arc<T::State>>>,
    /// Each member's hyperparameters as its row has them, shared with the worker that trains
    /// it (a row changes only at a lineage event).
    hs: Vec<Arc<poptune::Hyperparams>>,
    /// Each member's trainable while no worker trains it (`None`: to be made anew).
    idle: Vec<Option<T>>,
    queue: VecDeque<usize>,
    history: Vec<Vec<StepRecord>>,
    events: Vec<Event>,
    faults: Vec<FaultRow>,
    running: usize,
    waiting: usize,
    round_stop: u64,
    fatal: Option<String>,
    /// Reused for every settle, so that its buffers are allocated once.
    buf: Commit,
    started: Instant,
}

impl<T: Trainable> State<T> {
    fn new(books: Books, def: &ExperimentDef, steps: u64) -> Self {
        let n = books.members.len();
        let (round_stop, queue) = if def.policy.sync == SyncMode::Synchronous {
            books
                .next_round(def)
                .map_or((steps, VecDeque::new()), |(stop, ids)| (stop, ids.into()))
        } else {
            (steps, (0..n).collect())
        };
        State {
            hs: books
                .members
                .iter()
                .map(|r| Arc::new(r.h.clone()))
                .collect(),
            books,
            ckpts: vec![None; n],
            restore: vec![None; n],
            idle: (0..n).map(|_| None).collect(),
            queue,
            history: (0..n)
                .map(|_| Vec::with_capacity(steps.min(1 << 20) as usize))
                .collect(),
            events: Vec::new(),
            faults: Vec::new(),
            running: 0,
            waiting: 0,
            round_stop,
            fatal: None,
            buf: Commit::default(),
            started: Instant::now(),
        }
    }

    /// The outcome, once every worker has stopped.
    fn finish<F>(
        mut self,
        e: &Experiment,
        initial: Vec<poptune::Hyperparams>,
        factory: &F,
        cancel: &dyn Cancel,
        observer: &dyn Observer,
    ) -> Result<RunOutcome<T::State>, RunError>
    where
        F: Fn(MemberId) -> T,
    {
        // A run that cannot go on still returns what it trained (the status says why).
        let status = if let Some(why) = self.fatal.take() {
            RunStatus::Failed(why)
        } else if self.books.members.iter().all(|m| m.done) {
            RunStatus::Finished
        } else if let Some(why) = &self.books.stop {
            RunStatus::Stopped(why.clone())
        } else if cancel.cancelled() {
            RunStatus::Interrupted
        } else {
            RunStatus::Stopped("no member could train further".into())
        };
        observer.event(&RunEvent::Ended {
            status: status.clone(),
        });
        let mut members = Vec::with_capacity(self.books.members.len());
        for (id, row) in self.books.members.iter().enumerate() {
            let state = match (&self.ckpts[id], self.idle[id].take()) {
                (Some(s), _) => (**s).clone(),
                (None, Some(t)) => t.save(),
                (None, None) => {
                    catch_unwind(AssertUnwindSafe(|| factory(id).save())).map_err(|p| {
                        RunError::Fatal(format!(
                            "member {id}'s trainable panicked when made: {}",
                            panic_message(&*p)
                        ))
                    })?
                }
            };
            members.push(MemberOutcome {
                id,
                h: row.h.clone(),
                step: row.step,
                score: self.books.pop.member(id).score,
                history: std::mem::take(&mut self.history[id]),
                state,
            });
        }
        Ok(RunOutcome {
            outcome: Outcome {
                mode: e.mode,
                initial,
                members,
                events: self.events,
            },
            faults: self.faults,
            status,
            compute: self.books.tally.compute,
        })
    }
}
