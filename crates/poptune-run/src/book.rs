//! Ready decisions on the stored population: what the settle path does when a member is ready (asynchronous), when a synchronous round ends, and when a
//! member that keeps failing is replaced. Pure: rows and the population in, events out.

use std::collections::BTreeSet;

use poptune::fire::Role;
use poptune::policy::{rng_for, Stream};
use poptune::population::DonorInfo;
use poptune::trail::Evaluation;
use poptune::{Algorithm, Decision, Event, Mode, Population};

use crate::guide::Pb2Guide;
use poptune_store::{CheckpointRow, MemberRow};

use poptune::ExperimentDef;

/// The population and the members' rows of one experiment, to decide on.
pub struct Book<'a> {
    /// The experiment.
    pub def: &'a ExperimentDef,
    /// Its population.
    pub pop: &'a mut Population,
    /// Its members' rows.
    pub members: &'a mut [MemberRow],
}

/// The population that `members` describe.
pub fn population(def: &ExperimentDef, members: &[MemberRow]) -> Population {
    let mut pop = Population::new(
        def.mode,
        members.iter().map(|m| m.h.clone()).collect(),
        def.policy.exploit.window(),
    );
    for m in members {
        pop.set_state(m.id, m.step, m.score, &m.recent);
        pop.trail_mut(m.id).clone_from(&m.trail);
    }
    pop
}

impl Book<'_> {
    /// Member `m`'s ready decision against the current population; the event (numbered
    /// `seq`) if it changes anything.
    pub fn decide(&mut self, m: usize, seq: u64) -> Option<Event> {
        let def = self.def;
        let row = &mut self.members[m];
        row.decisions += 1;
        let mut rng = rng_for(def.seed, Stream::Decision, m, row.step, row.decisions);
        let decision =
            def.policy
                .decide_guided(&def.space, self.pop, m, Some(&Pb2Guide), &[], &mut rng);
        let evaluation = self.evaluation_for(m, &decision);
        let e = self.apply(m, decision, seq, None);
        self.start_evaluation(m, evaluation);
        e
    }

    /// Applies a decision made elsewhere (a deferred guided one) to member `m`, against the
    /// donors' states now; the event, numbered `seq`, if it changes anything.
    pub fn apply_decision(&mut self, m: usize, decision: Decision, seq: u64) -> Option<Event> {
        self.apply(m, decision, seq, None)
    }

    /// A FIRE-PBT evaluator that exploits starts an evaluation: which, from the snapshot it
    /// decided on.
    fn evaluation_for(&self, m: usize, d: &Decision) -> Option<Evaluation> {
        let Algorithm::Fire(fire) = &self.def.policy.algorithm else {
            return None;
        };
        match (fire.role(m), d) {
            (Role::Evaluator, Decision::Exploit { .. }) => {
                fire.next_evaluation(&self.def.policy, self.pop, m)
            }
            _ => None,
        }
    }

    fn start_evaluation(&mut self, m: usize, ev: Option<Evaluation>) {
        if let Some(ev) = ev {
            let trail = self.pop.trail_mut(m);
            trail.started(ev.parent, ev.start);
            trail.evaluation = Some(ev);
            self.members[m].trail.clone_from(&self.pop.member(m).trail);
        }
    }

    /// Applies `decision` to member `m`. Donors are taken as they are now, or, with `before`,
    /// as they were when the decision was made (a synchronous round, whose members all
    /// decided on the same state): the donor's state and its checkpoint then.
    fn apply(
        &mut self,
        m: usize,
        decision: Decision,
        seq: u64,
        before: Option<(DonorInfo, Option<String>)>,
    ) -> Option<Event> {
        let score = self.pop.member(m).score.unwrap_or(f64::NAN);
        let step = self.members[m].step;
        match decision {
            Decision::Continue => None,
            Decision::Exploit { donor, h } => {
                let (info, donor_ckpt) = before.unwrap_or_else(|| {
                    (
                        self.pop.donor_info(donor),
                        self.members[donor].checkpoint.clone(),
                    )
                });
                let e = Event {
                    seq,
                    step,
                    recipient: m,
                    donor: Some(donor),
                    donor_step: info.step,
                    old_h: self.members[m].h.clone(),
                    new_h: h.clone(),
                    recipient_score: score,
                    donor_score: info.score,
                };
                self.pop.apply_exploit(m, &info, h.clone());
                if self.def.policy.algorithm.keeps_curves() {
                    let trail = self.pop.trail_mut(m);
                    trail.took_state();
                    trail.evaluation = None;
                }
                let row = &mut self.members[m];
                row.trail.clone_from(&self.pop.member(m).trail);
                row.h = h;
                row.checkpoint = donor_ckpt;
                row.score = info.score;
                // The member now holds the donor's state: its step is the donor checkpoint's,
                // and a state trained all the steps is done.
                row.step = info.step;
                row.done = info.step >= self.def.stop.steps;
                row.recent.clear();
                row.recent
                    .extend(self.pop.member(m).recent_keys().iter().copied());
                Some(e)
            }
            Decision::Explore { h } => {
                let e = Event {
                    seq,
                    step,
                    recipient: m,
                    donor: None,
                    donor_step: step,
                    old_h: self.members[m].h.clone(),
                    new_h: h.clone(),
                    recipient_score: score,
                    donor_score: None,
                };
                self.pop.set_h(m, h.clone());
                self.members[m].h = h;
                Some(e)
            }
        }
    }

    /// The end of a synchronous round at `stop` (every unfinished member is at `stop`): each
    /// decides from the same snapshot, then all apply. Events are numbered `stop`.
    pub fn sync_round(&mut self, stop: u64) -> Vec<Event> {
        let def = self.def;
        let ids: Vec<usize> = self
            .members
            .iter()
            .filter(|r| !r.done)
            .map(|r| r.id)
            .collect();
        // Hyperparameters given out earlier in the round (PB2 keeps a batch diverse).
        let mut chosen: Vec<poptune::Hyperparams> = Vec::new();
        let mut decisions: Vec<(usize, Decision, Option<Evaluation>)> = Vec::new();
        for &m in &ids {
            let row = &mut self.members[m];
            row.decisions += 1;
            let mut rng = rng_for(def.seed, Stream::Decision, m, row.step, row.decisions);
            let d = def.policy.decide_guided(
                &def.space,
                self.pop,
                m,
                Some(&Pb2Guide),
                &chosen,
                &mut rng,
            );
            if let Decision::Exploit { h, .. } | Decision::Explore { h } = &d {
                chosen.push(h.clone());
            }
            let ev = self.evaluation_for(m, &d);
            decisions.push((m, d, ev));
        }
        // Donors' state as it was before the round, taken before anyone changes.
        let before: Vec<Option<(DonorInfo, Option<String>)>> = decisions
            .iter()
            .map(|(_, d, _)| match d {
                Decision::Exploit { donor, .. } => Some((
                    self.pop.donor_info(*donor),
                    self.members[*donor].checkpoint.clone(),
                )),
                _ => None,
            })
            .collect();
        let mut events = Vec::new();
        for ((m, d, ev), before) in decisions.into_iter().zip(before) {
            events.extend(self.apply(m, d, stop, before));
            self.start_evaluation(m, ev);
        }
        events
    }

    /// Replaces member `m` (which failed too often) by an exploit of the best member with a
    /// checkpoint; the event, numbered `seq`, or why no member can serve.
    pub fn replace(&mut self, m: usize, seq: u64) -> Result<Event, String> {
        let def = self.def;
        let donor = (0..self.pop.scored())
            .filter_map(|r| self.pop.at_rank(r))
            .find(|&d| d != m && self.members[d].checkpoint.is_some());
        let Some(donor) = donor else {
            return Err(format!(
                "member {m} failed {} times in a row and no other member has a checkpoint to replace it with",
                self.members[m].failures
            ));
        };
        self.members[m].decisions += 1;
        let row = &self.members[m];
        let mut rng = rng_for(def.seed, Stream::Decision, m, row.step, row.decisions);
        let base = match def.policy.inherit {
            poptune::Inherit::WeightsAndHyperparameters => self.pop.member(donor).h.clone(),
            poptune::Inherit::WeightsOnly => self.members[m].h.clone(),
        };
        let h = def.policy.explore.apply(&def.space, &base, &mut rng);
        let e = self.apply(m, Decision::Exploit { donor, h }, seq, None);
        self.members[m].failures = 0;
        e.ok_or_else(|| "internal: an exploit made no event".to_string())
    }
}

/// Checkpoints nothing refers to any more: all but those in `referenced` (every member's
/// current checkpoint) and the best one ever written. They leave the index in the same commit
/// that makes them unneeded, and their files are deleted after it: a checkpoint on disk that
/// the index lost is harmless, an index entry without its files is not.
pub fn garbage<'a>(
    mode: Mode,
    referenced: impl Iterator<Item = &'a str>,
    index: impl Iterator<Item = &'a CheckpointRow> + Clone,
) -> Vec<String> {
    let mut keep: BTreeSet<&str> = referenced.collect();
    if let Some(best) = index
        .clone()
        .max_by(|a, b| mode.key(a.score).total_cmp(&mode.key(b.score)))
    {
        keep.insert(best.name.as_str());
    }
    index
        .filter(|k| !keep.contains(k.name.as_str()))
        .map(|k| k.name.clone())
        .collect()
}
