//! The process pool: what trains a segment for a runner, a slot's worker. External processes
//! ([`ProcessWorkers`]) and in-process Rust trainables ([`crate::inprocess::InProcess`]) are
//! two implementations of the same pair of traits, so both write the same experiment
//! directory and share the runner's store, checkpoints, faults and live view.

use std::path::{Path, PathBuf};
use std::time::Duration;

use poptune::Hyperparams;

use poptune::TrainableDef;

pub use crate::fault::Failure;
use crate::fault::FaultKind;
use crate::protocol::{Process, Step};

/// One segment for a worker to train.
pub struct SegmentRequest<'a> {
    /// The member being trained.
    pub member: usize,
    /// Its step count before the segment.
    pub start: u64,
    /// Steps to train.
    pub steps: u64,
    /// The hyperparameters to train with.
    pub h: &'a Hyperparams,
    /// The checkpoint to restore (its directory and name), or `None`: start the member fresh.
    pub restore: Option<(&'a Path, &'a str)>,
    /// The empty directory to write the new checkpoint into, and the name it will have.
    pub checkpoint: (&'a Path, &'a str),
    /// How long to wait for each step before the segment counts as hung.
    pub timeout: Duration,
    /// Asked while the segment trains; once it says `true` the segment stops with a
    /// [`FaultKind::Cancelled`] fault (a distributed worker that can no longer be sure of its
    /// lease, a run that is stopping).
    pub cancel: Option<&'a Cancel<'a>>,
}

/// See [`SegmentRequest::cancel`].
pub type Cancel<'a> = dyn Fn() -> bool + Sync + 'a;

/// One slot's trainer.
pub trait Worker: Send {
    /// Trains one segment and writes its checkpoint; `on_step` sees each step as it arrives.
    fn train(
        &mut self,
        req: &SegmentRequest<'_>,
        on_step: &mut dyn FnMut(&Step),
    ) -> Result<Vec<Step>, Failure>;

    /// The run is over: release the slot (ask a process to exit).
    fn finish(self: Box<Self>) {}
}

/// Makes the workers of a run's slots.
pub trait Workers: Sync {
    /// The worker for `slot`; `log` is the slot's stderr log file.
    fn worker(&self, slot: usize, log: &Path) -> Box<dyn Worker + '_>;
}

/// External trainables: one long-lived process per slot, speaking `docs/protocol.md`.
pub struct ProcessWorkers<'a> {
    def: &'a TrainableDef,
    /// Processes started ahead of their slots' first segments, with their logs.
    early: std::sync::Mutex<Vec<Option<(PathBuf, Process)>>>,
}

impl<'a> ProcessWorkers<'a> {
    /// Workers that start `def`'s command.
    pub fn new(def: &'a TrainableDef) -> Self {
        ProcessWorkers {
            def,
            early: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Starts the processes of slots `0..slots` now, so that their start-up (an interpreter's
    /// imports) overlaps what poptune does before the first segment. `log(slot)` is the
    /// slot's stderr log. A process that cannot start is left to the slot, which records
    /// the fault; one that no slot takes is killed when the workers are dropped.
    pub fn start_early(&self, slots: usize, log: impl Fn(usize) -> PathBuf) {
        let started = (0..slots)
            .map(|slot| {
                let path = log(slot);
                Process::spawn(self.def, slot, &path)
                    .ok()
                    .map(|p| (path, p))
            })
            .collect();
        *self.early.lock().unwrap_or_else(|e| e.into_inner()) = started;
    }
}

impl Workers for ProcessWorkers<'_> {
    fn worker(&self, slot: usize, log: &Path) -> Box<dyn Worker + '_> {
        let early = self
            .early
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(slot)
            .and_then(Option::take)
            .and_then(|(path, p)| (path == log).then_some(p));
        Box::new(ProcessWorker {
            def: self.def,
            slot,
            log: log.to_path_buf(),
            proc: early,
        })
    }
}

struct ProcessWorker<'a> {
    def: &'a TrainableDef,
    slot: usize,
    log: PathBuf,
    proc: Option<Process>,
}

impl Worker for ProcessWorker<'_> {
    fn train(
        &mut self,
        req: &SegmentRequest<'_>,
        on_step: &mut dyn FnMut(&Step),
    ) -> Result<Vec<Step>, Failure> {
        if self.proc.as_mut().is_some_and(|p| !p.is_alive()) {
            // It exited after its last segment: allowed, a new one takes over.
            self.proc = None;
        }
        let mut retried = false;
        loop {
            let p = match &mut self.proc {
                Some(p) => p,
                None => self.proc.insert(
                    Process::spawn(self.def, self.slot, &self.log)
                        .map_err(|f| (f, String::new()))?,
                ),
            };
            let r = p.train(
                req.member,
                req.start,
                req.steps,
                req.h,
                req.restore,
                req.checkpoint,
                req.timeout,
                req.cancel,
                &mut *on_step,
            );
            match r {
                Ok(steps) => return Ok(steps),
                Err(f) if f.kind == FaultKind::Exited && !retried => {
                    // The process exited between segments, as a one-segment process does:
                    // start another and send it the same segment.
                    self.proc = None;
                    retried = true;
                }
                Err(f) => {
                    let stderr = p.stderr_tail();
                    if let Some(p) = self.proc.take() {
                        p.kill();
                    }
                    return Err((f, stderr));
                }
            }
        }
    }

    fn finish(self: Box<Self>) {
        if let Some(p) = self.proc {
            p.shutdown();
        }
    }
}
