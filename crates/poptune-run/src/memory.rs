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
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use poptune::{
    Event, Experiment, ExperimentDef, MemberId, MemberOutcome, Outcome, StepRecord, SyncMode,
    Trainable,
};
use poptune_store::{CheckpointRow, Commit, FaultRow, MemberRow, RunStatus};

use crate::cancel::{Cancel, NoCancel};
use crate::events::{Observer, Quiet, RunEvent};
use crate::fault::{Failure, Fault, FaultKind};
use crate::inprocess::{panic_message, InProcess, Persist};
use crate::local::{self, Summary};
use crate::protocol::Step;
use crate::settle::{time_is_up, Books, Finished, Trained};
use crate::RunError;

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

/// A segment claimed by a worker.
struct Job<T: Trainable> {
    member: usize,
    trainable: Option<T>,
    restore: Option<Arc<T::State>>,
    h: Arc<poptune::Hyperparams>,
    /// The member's steps so far, extended by the worker outside the lock.
    history: Vec<StepRecord>,
    start: u64,
    stop: u64,
}

/// A segment trained (or failed), to settle.
struct Done<T: Trainable> {
    member: usize,
    stop: u64,
    trainable: Option<T>,
    history: Vec<StepRecord>,
    result: Result<(Vec<Step>, Arc<T::State>), Failure>,
}

struct Memory<'a, T: Trainable, F> {
    def: &'a ExperimentDef,
    factory: &'a F,
    observer: &'a dyn Observer,
    cancel: &'a dyn Cancel,
    state: Mutex<State<T>>,
    cv: Condvar,
}

/// The longest a worker trains claimed members before it reports back, when segments are
/// fast: short enough that the others see fresh scores, long enough that the shared lock is
/// not the bottleneck for trainables that do almost nothing.
const BATCH_TARGET: Duration = Duration::from_micros(200);
const MAX_BATCH: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T, F> Memory<'_, T, F>
where
    T: Trainable,
    F: Fn(MemberId) -> T + Sync,
{
    /// A worker thread: settles what it trained, claims more, trains it, until the run ends.
    fn worker(&self, workers: usize) {
        let mut done: Vec<Done<T>> = Vec::new();
        let mut claimed: Vec<Job<T>> = Vec::new();
        // States replaced while settling, freed after the lock is released.
        let mut trash: Vec<Arc<T::State>> = Vec::new();
        // How many members to claim at once: grows while segments are fast, 1 for slow ones.
        let mut batch = 1usize;
        loop {
            {
                let mut st = lock(&self.state);
                let finished = done.len();
                for d in done.drain(..) {
                    self.settle(&mut st, d, &mut trash);
                }
                st.running -= finished;
                if finished > 0 && st.waiting > 0 {
                    self.cv.notify_all();
                }
                let (st, more) = self.claim(st, workers, batch, &mut claimed);
                drop(st);
                trash.clear();
                if !more {
                    self.cv.notify_all();
                    return;
                }
            }
            let started = Instant::now();
            let n = claimed.len();
            done.extend(claimed.drain(..).map(|job| self.train(job)));
            let per_member = started.elapsed() / n.max(1) as u32;
            batch = if per_member.is_zero() {
                MAX_BATCH
            } else {
                (BATCH_TARGET.as_nanos() / per_member.as_nanos()).clamp(1, MAX_BATCH as u128)
                    as usize
            };
        }
    }

    /// Claims up to `batch` members into `claimed`, waiting while others train; `false` once
    /// the run is over.
    fn claim<'g>(
        &'g self,
        mut st: MutexGuard<'g, State<T>>,
        workers: usize,
        batch: usize,
        claimed: &mut Vec<Job<T>>,
    ) -> (MutexGuard<'g, State<T>>, bool) {
        loop {
            if st.fatal.is_some() || st.books.stop.is_some() || self.cancel.cancelled() {
                return (st, false);
            }
            if let Some(why) = self.elapsed(&st).and_then(|t| time_is_up(self.def, t)) {
                self.observer.event(&RunEvent::Stopping {
                    reason: why.clone(),
                });
                st.books.stop = Some(why);
                return (st, false);
            }
            if !st.queue.is_empty() {
                // Leave a share of the queue to the other workers.
                let k = batch.min((st.queue.len() / workers).max(1));
                for _ in 0..k {
                    let Some(m) = st.queue.pop_front() else { break };
                    let row = &st.books.members[m];
                    let stop = if self.def.policy.sync == SyncMode::Synchronous {
                        st.round_stop
                    } else {
                        self.def.policy.next_stop(row.step, self.def.stop.steps)
                    };
                    let (h, start) = (Arc::clone(&st.hs[m]), row.step);
                    claimed.push(Job {
                        member: m,
                        trainable: st.idle[m].take(),
                        restore: st.restore[m].take(),
                        h,
                        history: std::mem::take(&mut st.history[m]),
                        start,
                        stop,
                    });
                }
                st.running += claimed.len();
                return (st, true);
            }
            if st.running == 0 {
                return (st, false);
            }
            st.waiting += 1;
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            st.waiting -= 1;
        }
    }

    /// Trains one segment outside the lock; a panic, an error or a non-finite score is a fault.
    fn train(&self, job: Job<T>) -> Done<T> {
        let m = job.member;
        let mut trainable = job.trainable;
        let mut history = job.history;
        let before = history.len();
        let mut at = job.start;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let t = trainable.get_or_insert_with(|| (self.factory)(m));
            if let Some(state) = &job.restore {
                t.restore(state);
            }
            let mut steps = Vec::with_capacity((job.stop - job.start) as usize);
            while at < job.stop {
                let step = at + 1;
                let metrics = t.step(&job.h).map_err(|e| {
                    Fault::new(FaultKind::Error, format!("step {step}: {e}")).at(step)
                })?;
                if !metrics.score.is_finite() {
                    return Err(Fault::new(
                        FaultKind::NonFinite,
                        format!(
                            "step {step}: score is {} — the score must be a finite number",
                            metrics.score
                        ),
                    )
                    .at(step));
                }
                // The metrics go to the history here, outside the lock; the settle path needs
                // the scores only.
                steps.push(Step {
                    step,
                    score: metrics.score,
                    metrics: Vec::new(),
                });
                history.push(StepRecord {
                    step,
                    score: metrics.score,
                    values: metrics.values,
                });
                at = step;
            }
            self.observer.event(&RunEvent::Trained {
                member: m,
                step: at,
                steps: steps.len() as u64,
            });
            Ok((steps, Arc::new(t.save())))
        }));
        let result = match result {
            Ok(Ok(trained)) => Ok(trained),
            Ok(Err(fault)) => Err((fault, String::new())),
            Err(p) => {
                // Its state is unknown after a panic: it is made anew.
                trainable = None;
                let step = at + 1;
                Err((
                    Fault::new(
                        FaultKind::Crash,
                        format!("step {step} panicked: {}", panic_message(&*p)),
                    )
                    .at(step),
                    String::new(),
                ))
            }
        };
        if result.is_err() {
            // A failed segment records nothing.
            history.truncate(before);
        }
        Done {
            member: m,
            stop: job.stop,
            trainable,
            history,
            result,
        }
    }

    /// Settles one segment: the shared settle path, then the states in memory.
    fn settle(&self, st: &mut State<T>, d: Done<T>, trash: &mut Vec<Arc<T::State>>) {
        let m = d.member;
        let (outcome, trained) = match d.result {
            Ok((steps, state)) => (
                Ok(Trained {
                    steps,
                    checkpoint: CheckpointRow {
                        name: String::new(),
                        member: m,
                        step: d.stop,
                        checksum: String::new(),
                        score: f64::NAN,
                    },
                }),
                Some(state),
            ),
            Err(f) => (Err(f), None),
        };
        let failed = trained.is_none();
        st.idle[m] = d.trainable;
        st.history[m] = d.history;
        if let Some(state) = trained {
            trash.extend(st.ckpts[m].replace(state));
        }
        let elapsed = self.elapsed(st).unwrap_or(0.0);
        let mut c = std::mem::take(&mut st.buf);
        let out = st.books.settle(
            self.def,
            Finished {
                member: m,
                stop: d.stop,
                outcome,
            },
            elapsed,
            &mut c,
        );
        if failed {
            // Trained again from its last state (or from scratch, without one).
            st.restore[m] = st.ckpts[m].clone();
            if st.ckpts[m].is_none() {
                st.idle[m] = None;
            }
        }
        self.note(&c);
        // An exploit's recipient restores its donor's state as it was before this settle's
        // decisions (a synchronous round decides from one snapshot).
        let copies: Vec<(usize, Option<Arc<T::State>>)> = c
            .events
            .iter()
            .filter_map(|e| e.donor.map(|d| (e.recipient, st.ckpts[d].clone())))
            .collect();
        for (r, state) in copies {
            trash.extend(std::mem::replace(&mut st.ckpts[r], state.clone()));
            trash.extend(std::mem::replace(&mut st.restore[r], state));
        }
        for e in &c.events {
            st.hs[e.recipient] = Arc::new(st.books.members[e.recipient].h.clone());
        }
        st.events.append(&mut c.events);
        st.faults.append(&mut c.faults);
        c.checkpoints.clear();
        c.tally = None;
        st.buf = c;
        if let Some(why) = out.fatal {
            st.fatal = Some(why);
        }
        if out.requeue && st.fatal.is_none() {
            st.queue.push_back(m);
        }
        if out.round_done {
            if let Some((stop, ids)) = st.books.next_round(self.def) {
                st.round_stop = stop;
                st.queue.extend(ids);
            }
        }
        if let Some(why) = out.stopped {
            self.observer.event(&RunEvent::Stopping { reason: why });
        }
    }

    /// Seconds since the run started, when a time budget needs them.
    fn elapsed(&self, st: &State<T>) -> Option<f64> {
        self.def
            .stop
            .max_seconds
            .map(|_| st.started.elapsed().as_secs_f64())
    }

    /// Tells the observer about a settle's faults and lineage events.
    fn note(&self, c: &Commit) {
        for f in &c.faults {
            self.observer.event(&RunEvent::Fault {
                member: f.member,
                step: f.step,
                kind: f.kind,
                message: f.message.clone(),
            });
        }
        for e in &c.events {
            if !c.faults.is_empty() {
                if let Some(donor) = e.donor {
                    self.observer.event(&RunEvent::Replaced {
                        member: e.recipient,
                        donor,
                    });
                }
            }
            self.observer.event(&RunEvent::Lineage(e.clone()));
        }
    }
}
