//! The settle path: what happens to a finished segment, written once for every runner.
//!
//! [`Books::settle`] takes one segment's outcome (its steps and checkpoint, or a fault) and
//! records it into a [`Commit`]: the steps and the checkpoint, the member's new row, the stop
//! rules, the fault and a replacement after too many, the ready decision (asynchronous) or a
//! synchronous round's decisions, and the lineage events. The local runner calls it under its
//! state's lock and hands the commit to its committer; a distributed worker calls it inside
//! its ready transaction, on the state that transaction read. So both decide the same way from
//! the same state.

use poptune::trail::Interval;
use poptune::{ExperimentDef, Population, SyncMode, Trail};
use poptune_store::{CheckpointRow, Commit, FaultRow, MemberRow, Tally};

use crate::book::{population, Book};
use crate::fault::{Failure, Fault};
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
#[derive(Debug, Clone)]
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
    /// The member is ready and its decision is guided (PB2): the caller takes a
    /// [`Pending`] decision from [`Books::pending`], decides it without the lock, and settles
    /// it with [`Books::resolve`] (only with [`Books::deferring`]).
    pub deferred: Option<usize>,
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
    /// Faults settled by these books (this run) while no member had trained a segment.
    untrained_faults: u64,
    /// Members done.
    done: usize,
    /// The synchronous round under way: its stop, and how many unfinished members are still
    /// below it (counted once per round, not at every segment).
    round: Option<(u64, usize)>,
    /// Whether commits carry the members' rows and step rows (a store needs them; the
    /// in-memory runner, which keeps the rows here and the steps itself, does not).
    rows: bool,
    /// Whether asynchronous guided decisions are handed back ([`Settled::deferred`]).
    defer: bool,
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
            untrained_faults: 0,
            done: 0,
            round: None,
            rows: true,
            defer: false,
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
                out.fatal = self.never_trains(def, &fault, &stderr);
                c.faults.push(FaultRow {
                    member: m,
                    step,
                    kind: fault.kind,
                    message: fault.message,
                    stderr,
                });
                self.members[m].failures += 1;
                let mut arrived = false;
                if out.fatal.is_none() && self.members[m].failures > def.trainable.max_failures {
                    let seq = if sync(def) { seg.stop } else { self.seq };
                    out.fatal = self.replace(def, m, seq, c).err();
                    // The donor's state may already be at the round's boundary.
                    arrived = sync(def) && self.members[m].step >= seg.stop;
                }
                if arrived {
                    self.arrive(def, m, seg.stop, c, &mut out);
                } else {
                    self.record_row(m, c);
                }
                out.requeue = out.fatal.is_none() && !arrived && !self.members[m].done;
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

    /// A fault before any member has trained a segment: once this run had one more than a
    /// member may have in a row (and at least two), the trainable is taken to fail at every start (a
    /// missing module, a wrong path) and the run stops, with the end of its stderr.
    fn never_trains(&mut self, def: &ExperimentDef, fault: &Fault, stderr: &str) -> Option<String> {
        if self.members.iter().any(|r| r.checkpoint.is_some()) {
            return None;
        }
        self.untrained_faults += 1;
        let limit = u64::from(def.trainable.max_failures).max(1) + 1;
        if self.untrained_faults < limit {
            return None;
        }
        let mut why = format!(
            "the trainable failed {} times and no member has trained a segment yet: it fails \
             whatever it trains; the last fault ({}): {}",
            self.untrained_faults, fault.kind, fault.message
        );
        let tail = last_lines(stderr, STDERR_LINES);
        if !tail.is_empty() {
            why.push_str("\nthe end of its stderr:\n");
            why.push_str(tail);
        }
        Some(why)
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
        self.extend_trail(def, m, stop, &trained.steps);
        self.pop
            .record_iter(m, stop, trained.steps.iter().map(|s| s.score));
        if self.rows {
            let epoch = self.members[m].decisions;
            c.steps
                .extend(trained.steps.into_iter().map(|s| poptune_store::StepRow {
                    member: m,
                    epoch,
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
            let ready = !self.members[m].done && def.policy.is_ready(stop);
            if ready && self.defer && def.policy.algorithm.keeps_intervals() {
                // Decided without the lock, then settled by `resolve`.
                out.deferred = Some(m);
            } else {
                if ready {
                    let seq = self.seq;
                    if let Some(e) = self.book(def).decide(m, seq) {
                        self.note_event(&e);
                        c.events.push(e);
                    }
                }
                out.requeue = !self.members[m].done;
            }
            self.record_row(m, c);
        } else {
            self.arrive(def, m, stop, c, out);
        }
        if self.stop.is_none() {
            self.stop = self.plateau(def);
        }
    }

    /// What PB2 and FIRE-PBT keep of the segment member `m` trained to `stop`: the interval
    /// (from the member's state before it: its step and score, a donor's after an exploit),
    /// and every step's reward.
    fn extend_trail(&mut self, def: &ExperimentDef, m: usize, stop: u64, steps: &[Step]) {
        let algorithm = &def.policy.algorithm;
        if !(algorithm.keeps_intervals() || algorithm.keeps_curves()) {
            return;
        }
        let mode = def.mode;
        let row = &self.members[m];
        let start = row.score.map(|s| (row.step, mode.key(s)));
        let last = steps.last().map(|s| mode.key(s.score));
        let h = row.h.clone();
        let cap = (Trail::MAX_INTERVALS.div_ceil(self.members.len().max(1)) * 2).max(8);
        let trail = self.pop.trail_mut(m);
        if algorithm.keeps_intervals() {
            if let (Some((t0, r0)), Some(r)) = (start, last) {
                if stop > t0 && r0.is_finite() && r.is_finite() {
                    trail.push_interval(
                        Interval {
                            t0,
                            r0,
                            t: stop,
                            r,
                            h,
                        },
                        cap,
                    );
                }
            }
        }
        if algorithm.keeps_curves() {
            for s in steps {
                trail.push_point(s.step, mode.key(s.score));
            }
        }
        self.members[m].trail.clone_from(&self.pop.member(m).trail);
    }

    /// Member `m` reached the boundary `stop` of a synchronous round: the last one to arrive
    /// ends the round, whose members then all decide from the same snapshot.
    fn arrive(
        &mut self,
        def: &ExperimentDef,
        m: usize,
        stop: u64,
        c: &mut Commit,
        out: &mut Settled,
    ) {
        if !self.round_over(stop) {
            self.record_row(m, c);
            return;
        }
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
                    def.metric,
                    poptune::format::score(s.score),
                    s.step
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
        if e.donor.is_some() {
            self.tally.exploits += 1;
            // An exploit of a donor that trained every step makes its recipient done (only
            // unfinished members decide or are replaced).
            if self.members[e.recipient].done {
                self.done += 1;
            }
        }
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

/// Lines of a trainable's stderr that an error quotes.
const STDERR_LINES: usize = 20;

/// The last `n` lines of `text`, without its trailing newline.
pub fn last_lines(text: &str, n: usize) -> &str {
    let text = text.trim_end();
    let start = text
        .char_indices()
        .rev()
        .filter(|&(_, c)| c == '\n')
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    &text[start..]
}

pub(crate) fn sync(def: &ExperimentDef) -> bool {
    def.policy.sync == SyncMode::Synchronous
}

/// The time budget's reason to stop, once `elapsed` seconds of running time have used it.
pub fn time_is_up(def: &ExperimentDef, elapsed: f64) -> Option<String> {
    let limit = def.stop.max_seconds?;
    (elapsed >= limit).then(|| format!("time budget of {limit} s used"))
}

mod defer;

pub use defer::{decide_ahead, Pending};

#[cfg(test)]
mod tests;
