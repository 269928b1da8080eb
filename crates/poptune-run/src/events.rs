//! Run events: what execution tells the faces (a live view, log lines, a dashboard, a Python
//! callback). Execution never draws; it reports events to an [`Observer`].

use poptune::{Event, Hyperparams};
use poptune_store::{Commit, FaultKind, RunStatus, StepRow};

/// A member as the live view lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    /// The member.
    pub id: usize,
    /// Its step.
    pub step: u64,
    /// Its score.
    pub score: Option<f64>,
    /// What it is doing.
    pub state: MemberState,
    /// Its hyperparameters.
    pub h: Hyperparams,
}

/// What a member is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// A slot trains it now.
    Training,
    /// It waits for a slot.
    Queued,
    /// It waits for the others (the end of a synchronous round).
    Waiting,
    /// Its last segment failed; it is retried.
    Failing,
    /// It trained its steps.
    Done,
}

impl MemberState {
    /// The word the live view shows.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Training => "training",
            MemberState::Queued => "queued",
            MemberState::Waiting => "waiting",
            MemberState::Failing => "failing",
            MemberState::Done => "done",
        }
    }
}

/// The population at a moment, for a live view.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Member-steps recorded, out of `total`.
    pub done: u64,
    /// Member-steps the run trains in all (population × steps).
    pub total: u64,
    /// Member-steps trained, including those trained again.
    pub compute: u64,
    /// The best member and its score.
    pub best: Option<(usize, f64)>,
    /// Exploits so far.
    pub exploits: u64,
    /// Faults so far.
    pub faults: u64,
    /// The best members first, as many as the observer asked for.
    pub top: Vec<MemberView>,
    /// The population's size.
    pub population: usize,
    /// Seconds since the run started.
    pub elapsed: f64,
}

/// Something that happened in a run.
#[derive(Clone, Debug)]
pub enum RunEvent {
    /// The run starts (or continues: `resumed`).
    Started {
        /// The experiment.
        name: String,
        /// Member-steps already recorded, and in all.
        done: u64,
        /// In all.
        total: u64,
        /// Whether it continues an earlier run.
        resumed: bool,
    },
    /// A member trained one step (not yet recorded).
    Step {
        /// The member.
        member: usize,
        /// Its step.
        step: u64,
    },
    /// A member trained a segment of `steps` steps, up to `step` (the in-memory runner's
    /// steps are too quick to report one by one).
    Trained {
        /// The member.
        member: usize,
        /// Its step after the segment.
        step: u64,
        /// Steps in the segment.
        steps: u64,
    },
    /// A member's segment was settled: these steps are recorded (sent by the runners whose
    /// commits carry step rows, the local runner's; before the segment's lineage events).
    Recorded {
        /// The member.
        member: usize,
        /// The hyperparameters the steps were trained with.
        h: Hyperparams,
        /// The steps, in order, with their scores and metrics.
        steps: Vec<StepRow>,
    },
    /// The population after a segment was settled (at most about ten times a second).
    Progress(Progress),
    /// An exploit or explore.
    Lineage(Event),
    /// A segment failed.
    Fault {
        /// The member.
        member: usize,
        /// The step.
        step: u64,
        /// The kind of fault.
        kind: FaultKind,
        /// What happened.
        message: String,
    },
    /// A member that failed too often was replaced by an exploit of `donor`.
    Replaced {
        /// The member.
        member: usize,
        /// Its donor.
        donor: usize,
    },
    /// A stop rule fired: no new segment starts.
    Stopping {
        /// Why.
        reason: String,
    },
    /// The run ended.
    Ended {
        /// How.
        status: RunStatus,
    },
}

/// Receives a run's events, from the run's threads.
pub trait Observer: Sync {
    /// One event.
    fn event(&self, event: &RunEvent);

    /// How many members [`Progress::top`] should list (0: no progress events).
    fn top(&self) -> usize {
        0
    }
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &RunEvent) {}
}

/// Tells `observer` what a settled segment's commit holds: its recorded steps, its faults,
/// the replacement of a member that failed too often, and the lineage events.
pub(crate) fn tell_settled(observer: &dyn Observer, c: &Commit) {
    if let Some(first) = c.steps.first() {
        let m = first.member;
        // The member's first event of this commit (if any) holds the hyperparameters it
        // trained with as its old ones; otherwise its row still has them.
        let h = c
            .events
            .iter()
            .filter(|e| e.recipient == m)
            .min_by_key(|e| e.seq)
            .map(|e| &e.old_h)
            .or_else(|| c.members.iter().find(|r| r.id == m).map(|r| &r.h));
        if let Some(h) = h {
            observer.event(&RunEvent::Recorded {
                member: m,
                h: h.clone(),
                steps: c.steps.clone(),
            });
        }
    }
    for f in &c.faults {
        observer.event(&RunEvent::Fault {
            member: f.member,
            step: f.step,
            kind: f.kind,
            message: f.message.clone(),
        });
    }
    for e in &c.events {
        // An exploit settled with a fault is the replacement of the member that failed.
        if let (Some(donor), false) = (e.donor, c.faults.is_empty()) {
            observer.event(&RunEvent::Replaced {
                member: e.recipient,
                donor,
            });
        }
        observer.event(&RunEvent::Lineage(e.clone()));
    }
}
