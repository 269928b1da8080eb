//! The settle path: what happens to a finished segment, written once for every runner.
//!
//! [`Books::settle`] takes one segment's outcome (its steps and checkpoint, or a fault) and
//! records it into a [`Commit`]: the steps and the checkpoint, the member's new row, the stop
//! rules, the fault and a replacement after too many, the ready decision (asynchronous) or a
//! synchronous round's decisions, and the lineage events. The local runner calls it under its
//! state's lock and hands the commit to its committer; a distributed worker calls it inside
//! its ready transaction, on the state that transaction read. So both decide the same way from
//! the same state.

use poptune::{ExperimentDef, Population, SyncMode};
use poptune_store::{CheckpointRow, Commit, FaultRow, MemberRow, Tally};

use crate::book::{population, Book};
use crate::fault::Failure;
use crate::protocol::Step;

/// A segment trained and checkpointed: its steps, and the checkpoint's index entry.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The new checkpoint (its name and checksum; its step and score are set by the settle
    /// path).
    pub checkpoint: CheckpointRow,
}

/// One segment's end, to settle.
#[derive(Debug)]
pub struct Finished {
    /// The member.
    pub member: usize,
    /// The step the segment trained to.
    pub stop: u64,
    /// Trained, or the fault and the stderr of the segment.
    pub outcome: Result<Trained, Failure>,
}

/// What settling a segment means for the runner.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Settled {
    /// The member trains again (it is not done, or it failed and is retried).
    pub requeue: bool,
    /// The segment ended a synchronous round: the next round may start.
    pub round_done: bool,
    /// Every member has trained its steps.
    pub finished: bool,
    /// A stop rule fired with this segment: why.
    pub stopped: Option<String>,
    /// The run cannot go on: why (no member to replace a failing one with).
    pub fatal: Option<String>,
}

/// An experiment's state as the settle path works on it: the population, the members' rows,
/// the running totals, the number of lineage events so far, and whether a stop rule fired.
#[derive(Debug, Clone)]
pub struct Books {
    /// The population (scores and rankings).
    pub pop: Population,
    /// Every member's row.
    pub members: Vec<MemberRow>,
    /// Running totals.
    pub tally: Tally,
    /// Lineage events recorded so far.
    pub seq: u64,
    /// A stop rule's reason, once one fired.
    pub stop: Option<String>,
    /// How often each member was replaced since its last trained segment.
    replaced: Vec<u32>,
    /// Members done.
    done: usize,
    /// The synchronous round under way: its stop, and how many unfinished members are still
    /// below it (counted once per round, not at every segment).
    round: Option<(u64, usize)>,
    /// Whether commits carry the members' rows and step rows (a store needs them; the
    /// in-memory runner, which keeps the rows here and the steps itself, does not).
    rows: bool,
}

/// Replacements of one member in a row (with no segment trained in between) after which its
/// trainable is taken to fail whatever it starts from: the run stops instead of looping.
pub const MAX_REPLACEMENTS: u32 = 2;

impl Books {
    /// The books of an experiment whose members' rows are `members`, with `seq` events so far.
    /// `tally` is the stored one; a store written before tallies existed gets one derived
    /// from the rows (`exploits` and `faults` are the counts found in the store).
    pub fn new(
        def: &ExperimentDef,
        members: Vec<MemberRow>,
        tally: Option<Tally>,
        seq: u64,
        exploits: u64,
        faults: u64,
    ) -> Self {
        let pop = population(def, &members);
        let tally = tally.unwrap_or_else(|| Tally {
            best: pop
                .best()
                .and_then(|b| pop.member(b).score.map(|s| (def.mode.key(s), 0))),
            max_step: members.iter().map(|m| m.step).min().unwrap_or(0),
            compute: members.iter().map(|m| m.step).sum(),
            exploits,
            faults,
        });
        Books {
            pop,
            members,
            tally,
            seq,
            stop: None,
            replaced: Vec::new(),
            done: 0,
            round: None,
            rows: true,
        }
        .counted()
    }

    fn counted(mut self) -> Self {
        self.done = self.members.iter().filter(|r| r.done).count();
        self
    }

    /// Whether member rows at `stop` end the synchronous round (called once the segment's
    /// member has reached `stop`).
    fn round_over(&mut self, stop: u64) -> bool {
        let below = match self.round {
            Some((s, below)) if s == stop => below.saturating_sub(1),
            _ => self
                .members
                .iter()
                .filter(|r| !r.done && r.step < stop)
                .count(),
        };
        self.round = Some((stop, below));
        below == 0
    }

    /// Commits no longer carry the members' rows (which stay in [`Books::members`]) nor the
    /// step rows (the caller keeps the steps it trained).
    pub fn without_rows(mut self) -> Self {
        self.rows = false;
        self
    }

    fn record_row(&self, m: usize, c: &mut Commit) {
        if self.rows {
            c.members.push(self.members[m].clone());
        }
    }

    /// Settles one segment into `c` (see the module's documentation). `elapsed` is the run's
    /// running time, for the time budget.
    pub fn settle(
        &mut self,
        def: &ExperimentDef,
        seg: Finished,
        elapsed: f64,
        c: &mut Commit,
    ) -> Settled {
        let mut out = Settled::default();
        let had_stop = self.stop.is_some();
        let m = seg.member;
        match seg.outcome {
            Ok(trained) => self.settle_trained(def, m, seg.stop, trained, c, &mut out),
            Err((fault, stderr)) => {
                self.tally.faults += 1;
                // The steps trained before the fault (and the one that failed) were compute.
                self.tally.compute += fault
                    .step
                    .map_or(0, |s| s.saturating_sub(self.members[m].step));
                let step = fault.step.unwrap_or(self.members[m].step);
                c.faults.push(FaultRow {
                    member: m,
                    step,
                    kind: fault.kind,
                    message: fault.message,
                    stderr,
                });
                self.members[m].failures += 1;
                if self.members[m].failures > def.trainable.max_failures {
                    let seq = if sync(def) { seg.stop } else { self.seq };
                    out.fatal = self.replace(def, m, seq, c).err();
                }
                self.record_row(m, c);
                out.requeue = out.fatal.is_none();
            }
        }
        if self.stop.is_none() {
            self.stop = time_is_up(def, elapsed);
        }
        if !had_stop {
            out.stopped = self.stop.clone();
        }
        out.finished = self.done == self.members.len();
        c.tally = Some(self.tally.clone());
        out
    }

    fn settle_trained(
        &mut self,
        def: &ExperimentDef,
        m: usize,
        stop: u64,
        trained: Trained,
        c: &mut Commit,
        out: &mut Settled,
    ) {
        // (A stop rule that fires here is reported by `settle`.)
        let last = trained.steps.last().map_or(f64::NAN, |s| s.score);
        if let Some(r) = self.replaced.get_mut(m) {
            *r = 0;
        }
        self.tally.compute += trained.steps.len() as u64;
        for s in &trained.steps {
            self.account(def, m, s);
        }
        self.pop
            .record_iter(m, stop, trained.steps.iter().map(|s| s.score));
        if self.rows {
            c.steps
                .extend(trained.steps.into_iter().map(|s| poptune_store::StepRow {
                    member: m,
                    step: s.step,
                    score: s.score,
                    metrics: s.metrics,
                }));
        }
        let name = trained.checkpoint.name.clone();
        if self.rows {
            c.checkpoints.push(CheckpointRow {
                member: m,
                step: stop,
                score: last,
                ..trained.checkpoint
            });
        }
        {
            let row = &mut self.members[m];
            row.step = stop;
            row.score = Some(last);
            row.recent.clear();
            row.recent
                .extend(self.pop.member(m).recent_keys().iter().copied());
            row.checkpoint = Some(name);
            row.failures = 0;
            if !row.done && stop >= def.stop.steps {
                row.done = true;
                self.done += 1;
            }
        }
        if !sync(def) {
            if !self.members[m].done && def.policy.is_ready(stop) {
                let seq = self.seq;
                if let Some(e) = self.book(def).decide(m, seq) {
                    self.note_event(&e);
                    c.events.push(e);
                }
            }
            out.requeue = !self.members[m].done;
            self.record_row(m, c);
        } else if self.round_over(stop) {
            out.round_done = true;
            if stop < def.stop.steps && def.policy.is_ready(stop) {
                // Every unfinished member (this one too) changed with the round.
                let events = self.book(def).sync_round(stop);
                for e in &events {
                    self.note_event(e);
                }
                c.events.extend(events);
                if self.rows {
                    c.members
                        .extend(self.members.iter().filter(|r| !r.done).cloned());
                }
            } else {
                self.record_row(m, c);
            }
        } else {
            self.record_row(m, c);
        }
        if self.stop.is_none() {
            self.stop = self.plateau(def);
        }
    }

    /// One step's score against the target and the plateau's best.
    fn account(&mut self, def: &ExperimentDef, m: usize, s: &Step) {
        let key = def.mode.key(s.score);
        let improved = self
            .tally
            .best
            .is_none_or(|(b, _)| key > b + def.stop.min_delta());
        if improved {
            self.tally.best = Some((key, s.step));
        }
        self.tally.max_step = self.tally.max_step.max(s.step);
        if let Some(t) = def.stop.target {
            if key >= def.mode.key(t) && self.stop.is_none() {
                self.stop = Some(format!(
                    "member {m} reached the target {} = {} at step {}",
                    def.metric, s.score, s.step
                ));
            }
        }
    }

    fn plateau(&self, def: &ExperimentDef) -> Option<String> {
        let (patience, _) = def.stop.plateau?;
        let (_, at) = self.tally.best?;
        (self.tally.max_step >= at + patience).then(|| {
            format!(
                "plateau: the best {} has not improved for {patience} steps",
                def.metric
            )
        })
    }

    fn note_event(&mut self, e: &poptune::Event) {
        self.seq += 1;
        self.tally.exploits += u64::from(e.donor.is_some());
    }

    fn book<'a>(&'a mut self, def: &'a ExperimentDef) -> Book<'a> {
        Book {
            def,
            pop: &mut self.pop,
            members: &mut self.members,
        }
    }

    /// A member that failed too often is replaced by an exploit of the best member.
    fn replace(
        &mut self,
        def: &ExperimentDef,
        m: usize,
        seq: u64,
        c: &mut Commit,
    ) -> Result<(), String> {
        if self.replaced.len() <= m {
            self.replaced.resize(self.members.len(), 0);
        }
        self.replaced[m] += 1;
        if self.replaced[m] > MAX_REPLACEMENTS {
            return Err(format!(
                "member {m} kept failing even with the states of the best members ({} \
                 replacements in a row, each after {} faults); the trainable fails whatever \
                 state it starts from",
                MAX_REPLACEMENTS,
                def.trainable.max_failures + 1
            ));
        }
        let e = self.book(def).replace(m, seq)?;
        self.note_event(&e);
        c.events.push(e);
        Ok(())
    }

    /// A synchronous run's next round: the step every unfinished member trains to, and the
    /// members below it.
    pub fn next_round(&self, def: &ExperimentDef) -> Option<(u64, Vec<usize>)> {
        let min_step = self
            .members
            .iter()
            .filter(|r| !r.done)
            .map(|r| r.step)
            .min()?;
        let stop = def.policy.next_stop(min_step, def.stop.steps);
        let ids = self
            .members
            .iter()
            .filter(|r| !r.done && r.step < stop)
            .map(|r| r.id)
            .collect();
        Some((stop, ids))
    }
}

fn sync(def: &ExperimentDef) -> bool {
    def.policy.sync == SyncMode::Synchronous
}

/// The time budget's reason to stop, once `elapsed` seconds of running time have used it.
pub fn time_is_up(def: &ExperimentDef, elapsed: f64) -> Option<String> {
    let limit = def.stop.max_seconds?;
    (elapsed >= limit).then(|| format!("time budget of {limit} s used"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use poptune::{ExperimentDef, Mode, Param, Policy, Space, StopRules, SyncMode, TrainableDef};
    use poptune_store::{MemoryStore, RunStatus, Store};

    use super::*;
    use crate::fault::{Fault, FaultKind};
    use crate::local::initial_members;

    fn def(population: usize, sync: SyncMode, stop: StopRules) -> ExperimentDef {
        ExperimentDef {
            name: "t".into(),
            metric: "score".into(),
            mode: Mode::Max,
            population,
            seed: 3,
            slots: 2,
            initial: Default::default(),
            directory: PathBuf::from("/nonexistent"),
            policy: Policy {
                interval: 5,
                sync,
                ..Policy::default()
            },
            space: Space::new().with("lr", Param::log_float(0.01, 1.0)),
            stop,
            trainable: TrainableDef {
                max_failures: 1,
                ..TrainableDef::default()
            },
        }
    }

    /// A memory store holding a new experiment, and its books.
    fn start(def: &ExperimentDef) -> (MemoryStore, Books) {
        let mut store = MemoryStore::new();
        let members = initial_members(def).unwrap();
        store.create(&def.name, &def.to_json(), &members).unwrap();
        let books = Books::new(def, store.members().unwrap(), None, 0, 0, 0);
        (store, books)
    }

    /// A segment of member `m` from its step to `stop`, every step scoring `score`.
    fn trained(books: &Books, m: usize, stop: u64, score: f64) -> Finished {
        let start = books.members[m].step;
        Finished {
            member: m,
            stop,
            outcome: Ok(Trained {
                steps: (start + 1..=stop)
                    .map(|step| Step {
                        step,
                        score,
                        metrics: vec![],
                    })
                    .collect(),
                checkpoint: CheckpointRow {
                    name: format!("m{m}-s{stop}"),
                    member: m,
                    step: stop,
                    checksum: "sum".into(),
                    score: f64::NAN,
                },
            }),
        }
    }

    fn settle(
        def: &ExperimentDef,
        store: &mut MemoryStore,
        books: &mut Books,
        seg: Finished,
    ) -> Settled {
        let mut c = Commit::default();
        let out = books.settle(def, seg, 0.0, &mut c);
        store.commit(&c).unwrap();
        out
    }

    #[test]
    fn a_segment_records_its_steps_checkpoint_member_and_tally() {
        let def = def(2, SyncMode::Asynchronous, StopRules::steps(10));
        let (mut store, mut books) = start(&def);
        let seg = trained(&books, 0, 5, 0.5);
        let out = settle(&def, &mut store, &mut books, seg);
        assert!(out.requeue && !out.finished && out.stopped.is_none());
        let steps = store.steps().unwrap();
        assert_eq!(
            steps.iter().map(|s| s.step).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let ck = store.checkpoints().unwrap();
        assert_eq!((ck[0].step, ck[0].score), (5, 0.5));
        let row = &store.members().unwrap()[0];
        assert_eq!(
            (row.step, row.score, row.checkpoint.as_deref()),
            (5, Some(0.5), Some("m0-s5"))
        );
        let t = store.tally().unwrap().unwrap();
        assert_eq!((t.compute, t.max_step, t.best), (5, 5, Some((0.5, 1))));
    }

    #[test]
    fn a_weak_member_exploits_the_strong_one_and_the_event_is_recorded() {
        let def = def(2, SyncMode::Asynchronous, StopRules::steps(20));
        let (mut store, mut books) = start(&def);
        let strong = trained(&books, 0, 5, 0.9);
        settle(&def, &mut store, &mut books, strong);
        let weak = trained(&books, 1, 5, 0.1);
        settle(&def, &mut store, &mut books, weak);
        let events = store.events().unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].recipient, events[0].donor), (1, Some(0)));
        let m1 = &store.members().unwrap()[1];
        assert_eq!(
            m1.checkpoint.as_deref(),
            Some("m0-s5"),
            "the donor's checkpoint"
        );
        assert_eq!(store.tally().unwrap().unwrap().exploits, 1);
        assert_eq!(books.seq, 1);
    }

    #[test]
    fn the_target_stops_the_run() {
        let stop = StopRules {
            target: Some(0.8),
            ..StopRules::steps(20)
        };
        let def = def(2, SyncMode::Asynchronous, stop);
        let (mut store, mut books) = start(&def);
        let low = trained(&books, 0, 5, 0.5);
        assert_eq!(settle(&def, &mut store, &mut books, low).stopped, None);
        let high = trained(&books, 1, 5, 0.85);
        let out = settle(&def, &mut store, &mut books, high);
        let why = out.stopped.expect("the target fired");
        assert!(why.contains("member 1 reached the target"), "{why}");
        assert_eq!(books.stop.as_deref(), Some(why.as_str()));
    }

    #[test]
    fn the_plateau_stops_the_run_and_a_resume_sees_the_same_tally() {
        let stop = StopRules {
            plateau: Some((10, 0.0)),
            ..StopRules::steps(100)
        };
        let def = def(1, SyncMode::Asynchronous, stop);
        let (mut store, mut books) = start(&def);
        let mut stopped = None;
        let mut stop_at = 0;
        while stopped.is_none() {
            stop_at += 5;
            let seg = trained(&books, 0, stop_at, 0.5);
            stopped = settle(&def, &mut store, &mut books, seg).stopped;
            assert!(stop_at <= 15, "no plateau after {stop_at} steps");
        }
        // The best (0.5) came at step 1: 10 steps later, at the segment ending at 15.
        assert_eq!(stop_at, 15);
        let again = Books::new(
            &def,
            store.members().unwrap(),
            store.tally().unwrap(),
            0,
            0,
            0,
        );
        assert_eq!(again.tally, books.tally);
    }

    #[test]
    fn the_time_budget_stops_the_run() {
        let stop = StopRules {
            max_seconds: Some(2.0),
            ..StopRules::steps(100)
        };
        let def = def(2, SyncMode::Asynchronous, stop);
        let (_, mut books) = start(&def);
        let mut c = Commit::default();
        let seg = trained(&books, 0, 5, 0.5);
        assert_eq!(books.settle(&def, seg, 1.0, &mut c).stopped, None);
        let seg = trained(&books, 1, 5, 0.5);
        let out = books.settle(&def, seg, 2.5, &mut c);
        assert_eq!(out.stopped.as_deref(), Some("time budget of 2 s used"));
    }

    #[test]
    fn faults_are_recorded_retried_then_replaced_by_an_exploit() {
        let def = def(2, SyncMode::Asynchronous, StopRules::steps(20));
        let (mut store, mut books) = start(&def);
        let seg = trained(&books, 0, 5, 0.9);
        settle(&def, &mut store, &mut books, seg);
        let fault = || Finished {
            member: 1,
            stop: 5,
            outcome: Err((
                Fault::new(FaultKind::Crash, "died").at(3),
                "Traceback".into(),
            )),
        };
        let first = settle(&def, &mut store, &mut books, fault());
        assert!(first.requeue && first.fatal.is_none());
        assert_eq!(store.members().unwrap()[1].failures, 1);
        // max_failures = 1: the second fault in a row replaces it by the best member.
        let second = settle(&def, &mut store, &mut books, fault());
        assert!(second.requeue && second.fatal.is_none());
        let faults = store.faults().unwrap();
        assert_eq!(faults.len(), 2);
        assert_eq!((faults[0].step, faults[0].kind), (3, FaultKind::Crash));
        assert_eq!(faults[0].stderr, "Traceback");
        let m1 = &store.members().unwrap()[1];
        assert_eq!((m1.failures, m1.checkpoint.as_deref()), (0, Some("m0-s5")));
        let events = store.events().unwrap();
        assert_eq!(events.last().map(|e| e.donor), Some(Some(0)));
        assert_eq!(store.tally().unwrap().unwrap().faults, 2);
    }

    #[test]
    fn a_fault_with_no_member_to_replace_it_is_fatal() {
        let def = def(2, SyncMode::Asynchronous, StopRules::steps(20));
        let (mut store, mut books) = start(&def);
        let fault = || Finished {
            member: 0,
            stop: 5,
            outcome: Err((
                Fault::new(FaultKind::Spawn, "no such program"),
                String::new(),
            )),
        };
        settle(&def, &mut store, &mut books, fault());
        let out = settle(&def, &mut store, &mut books, fault());
        assert!(out.fatal.is_some() && !out.requeue, "{out:?}");
    }

    #[test]
    fn a_synchronous_round_decides_once_everyone_is_at_the_boundary() {
        let def = def(4, SyncMode::Synchronous, StopRules::steps(10));
        let (mut store, mut books) = start(&def);
        for m in 0..3 {
            let seg = trained(&books, m, 5, m as f64);
            let out = settle(&def, &mut store, &mut books, seg);
            assert!(!out.round_done, "member {m} is not the last");
            assert!(store.events().unwrap().is_empty());
        }
        let seg = trained(&books, 3, 5, 3.0);
        let out = settle(&def, &mut store, &mut books, seg);
        assert!(out.round_done);
        let events = store.events().unwrap();
        assert!(events.iter().any(|e| e.donor.is_some()), "{events:?}");
        assert!(
            events.iter().all(|e| e.seq == 5),
            "numbered by the round's step"
        );
        // Every member's row as the round left it is recorded.
        let stored = store.members().unwrap();
        assert_eq!(stored, books.members);
        let (stop, ids) = books.next_round(&def).unwrap();
        assert_eq!((stop, ids.len()), (10, 4));
        for m in 0..4 {
            let seg = trained(&books, m, 10, 1.0);
            settle(&def, &mut store, &mut books, seg);
        }
        assert!(books.members.iter().all(|r| r.done));
        assert_eq!(
            store.status().unwrap().0,
            RunStatus::Running,
            "the runner records the end"
        );
    }
}
