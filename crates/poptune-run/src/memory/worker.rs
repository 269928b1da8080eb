//! The in-memory runner's worker threads: claim members, train them outside the lock, settle
//! them under it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poptune::{ExperimentDef, MemberId, StepRecord, SyncMode, Trainable};
use poptune_store::CheckpointRow;

use super::State;
use crate::cancel::Cancel;
use crate::events::{tell_settled, Observer, RunEvent};
use crate::fault::{Failure, Fault, FaultKind};
use crate::inprocess::panic_message;
use crate::protocol::Step;
use crate::settle::{time_is_up, Finished, Trained};

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

/// One in-memory run: what every worker thread shares.
pub(super) struct Memory<'a, T: Trainable, F> {
    pub(super) def: &'a ExperimentDef,
    pub(super) factory: &'a F,
    pub(super) observer: &'a dyn Observer,
    pub(super) cancel: &'a dyn Cancel,
    pub(super) state: Mutex<State<T>>,
    pub(super) cv: Condvar,
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
    pub(super) fn worker(&self, workers: usize) {
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
            let mut steps = Vec::with_capacity(job.stop.saturating_sub(job.start) as usize);
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
        tell_settled(self.observer, &c);
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
}
