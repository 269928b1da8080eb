//! FIRE-PBT (Dalibard & Jaderberg, 2021, "Faster Improvement Rate Population Based
//! Training"): PBT whose greedy ranking is kept to one sub-population, while higher
//! sub-populations are ranked by how fast their weights improve once given greedy
//! hyperparameters. `docs/fire.md` explains it; this module is its decision.
//!
//! Members are numbered sub-population by sub-population: the first `sub_populations[0]` ids
//! are P1, the next P2, and so on; the last `evaluators` ids are the evaluators.
//!
//! Every decision is a function of the population snapshot (scores, hyperparameters and
//! [`Trail`](crate::trail::Trail)s), so that the members of a synchronous round, deciding on
//! the same snapshot, agree on which evaluations won and which ended.

use rand::Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, DiscreteCDF};

use crate::error::ConfigError;
use crate::exploit::Exploit;
use crate::policy::{Decision, Policy};
use crate::population::{MemberId, Population};
use crate::space::Space;
use crate::trail::Evaluation;

#[path = "fire_curves.rs"]
mod curves;

pub use curves::{best_score_diff, binomial_p, overlap, smooth};

fn default_p_value() -> f64 {
    0.01
}
fn default_smoothing() -> usize {
    5
}
fn default_max_eval_steps() -> u64 {
    50
}

/// FIRE-PBT's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fire {
    /// The sizes of the sub-populations P1, P2, …; P1 is ranked greedily by score.
    pub sub_populations: Vec<usize>,
    /// How many evaluators there are (the members after the sub-populations).
    pub evaluators: usize,
    /// The binomial test's level: an evaluator wins when its curve beats its child's at this
    /// level (0.01).
    #[serde(default = "default_p_value")]
    pub p_value: f64,
    /// Steps an evaluator is given before an evaluation that is not winning is stopped; until
    /// then the test's threshold for stopping is relaxed (50).
    #[serde(default = "default_max_eval_steps")]
    pub max_eval_steps: u64,
    /// Points of the moving average that smooths curves before they are aligned (5).
    #[serde(default = "default_smoothing")]
    pub smoothing: usize,
}

/// Where a member belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sub-population `k` (0 is P1, the greedy one).
    Sub(usize),
    /// An evaluator.
    Evaluator,
}

/// How an evaluation stands on a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still running.
    Running,
    /// Over: its parent or child took another state, or it lost, or it ran out of steps.
    Over,
    /// Its curve beat its child's: the child takes the evaluator's state.
    Won,
}

impl Fire {
    /// The settings with the paper's defaults for everything but the sizes.
    pub fn new(sub_populations: Vec<usize>, evaluators: usize) -> Self {
        Fire {
            sub_populations,
            evaluators,
            p_value: default_p_value(),
            max_eval_steps: default_max_eval_steps(),
            smoothing: default_smoothing(),
        }
    }

    /// The default split of `population`: a third evaluators (at least 1), the rest in two
    /// sub-populations (P1 the larger), so that every member of P2 can be evaluated at once
    /// (12 members: [4, 4] and 4 evaluators); `None` below 5 members.
    pub fn for_population(population: usize) -> Option<Fire> {
        let evaluators = (population / 3).max(1);
        let rest = population.checked_sub(evaluators)?;
        let p2 = rest / 2;
        let p1 = rest - p2;
        (p2 >= 2).then(|| Fire::new(vec![p1, p2], evaluators))
    }

    /// The population these settings need.
    pub fn members(&self) -> usize {
        self.sub_populations.iter().sum::<usize>() + self.evaluators
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, value: String, why: &str| {
            Err(ConfigError::invalid(key, value, why))
        };
        if self.sub_populations.len() < 2 || self.sub_populations.iter().any(|&n| n < 2) {
            return bad(
                "fire.sub_populations",
                format!("{:?}", self.sub_populations),
                "FIRE-PBT needs at least two sub-populations of at least 2 members each, e.g. sub_populations = [4, 4]",
            );
        }
        if self.evaluators == 0 {
            return bad(
                "fire.evaluators",
                "0".into(),
                "FIRE-PBT needs at least one evaluator, e.g. evaluators = 2",
            );
        }
        if !(self.p_value > 0.0 && self.p_value < 1.0) {
            return bad(
                "fire.p_value",
                self.p_value.to_string(),
                "a test's level is between 0 and 1, e.g. p_value = 0.01",
            );
        }
        if self.max_eval_steps == 0 {
            return bad(
                "fire.max_eval_steps",
                "0".into(),
                "an evaluator needs at least 1 step, e.g. max_eval_steps = 50",
            );
        }
        if self.smoothing == 0 {
            return bad(
                "fire.smoothing",
                "0".into(),
                "a moving average has at least 1 point, e.g. smoothing = 5",
            );
        }
        Ok(())
    }

    /// Where member `m` belongs.
    pub fn role(&self, m: MemberId) -> Role {
        let mut start = 0;
        for (k, &n) in self.sub_populations.iter().enumerate() {
            if m < start + n {
                return Role::Sub(k);
            }
            start += n;
        }
        Role::Evaluator
    }

    /// The ids of sub-population `k`.
    pub fn sub(&self, k: usize) -> std::ops::Range<MemberId> {
        let start: usize = self.sub_populations[..k].iter().sum();
        start..start + self.sub_populations[k]
    }

    /// The evaluators' ids.
    pub fn evaluator_ids(&self) -> std::ops::Range<MemberId> {
        let start: usize = self.sub_populations.iter().sum();
        start..start + self.evaluators
    }

    /// The decision for `ready` (see the module's documentation).
    pub fn decide<R: Rng>(
        &self,
        policy: &Policy,
        space: &Space,
        pop: &Population,
        ready: MemberId,
        rng: &mut R,
    ) -> Decision {
        if ready >= pop.len() {
            return Decision::Continue;
        }
        match self.role(ready) {
            Role::Evaluator => self.evaluator_decides(policy, pop, ready),
            Role::Sub(k) => {
                if let Some(e) = self.winner_for(pop, ready) {
                    // An evaluator beat this member: it takes the evaluator's state, which
                    // trained with this member's hyperparameters.
                    if pop.member(e).step >= pop.member(ready).step {
                        return Decision::Exploit {
                            donor: e,
                            h: pop.member(e).h.clone(),
                        };
                    }
                }
                let donor = if k == 0 {
                    self.greedy_donor(policy, pop, ready, rng)
                } else {
                    self.rate_donor(policy, pop, k, ready, rng)
                };
                match donor {
                    Some(d) => policy.exploit_or_explore(space, pop, ready, d, None, &[], rng),
                    None => Decision::Continue,
                }
            }
        }
    }

    /// The fraction of a sub-population that is replaced (the truncation's, else a quarter).
    fn fraction(policy: &Policy) -> f64 {
        match policy.exploit {
            Exploit::Truncation { fraction } => fraction,
            _ => 0.25,
        }
    }

    /// P1: truncation by score within P1.
    fn greedy_donor<R: Rng>(
        &self,
        policy: &Policy,
        pop: &Population,
        ready: MemberId,
        rng: &mut R,
    ) -> Option<MemberId> {
        let mode = pop.mode();
        let mut ranked: Vec<(f64, MemberId)> = self
            .sub(0)
            .filter_map(|m| pop.member(m).score.map(|s| (mode.key(s), m)))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        truncate(&ranked, ready, Self::fraction(policy), rng)
    }

    /// A higher sub-population: truncation by the improvement-rate fitness, among the members
    /// an evaluator is evaluating now (the others have no fitness and neither give nor take).
    fn rate_donor<R: Rng>(
        &self,
        policy: &Policy,
        pop: &Population,
        k: usize,
        ready: MemberId,
        rng: &mut R,
    ) -> Option<MemberId> {
        let curves: Vec<(MemberId, Vec<f64>)> = self
            .evaluator_ids()
            .filter_map(|e| {
                let ev = self.running(pop, e)?;
                (self.role(ev.parent) == Role::Sub(k)).then(|| (ev.parent, rewards(pop, e)))
            })
            .filter(|(_, c)| c.len() >= 2)
            .collect();
        let smoothed: Vec<Vec<f64>> = curves
            .iter()
            .map(|(_, c)| smooth(c, self.smoothing))
            .collect();
        let mut ranked: Vec<(f64, MemberId)> = curves
            .iter()
            .zip(&smoothed)
            .map(|((p, c), s)| {
                let fit: f64 = curves
                    .iter()
                    .zip(&smoothed)
                    .filter(|((q, _), _)| q != p)
                    .map(|((_, d), ds)| best_score_diff(c, s, d, ds))
                    .sum();
                (fit, *p)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        truncate(&ranked, ready, Self::fraction(policy), rng)
    }

    /// Evaluator `e`'s evaluation, if it still stands (neither its parent nor its child took
    /// another state since it started).
    pub fn running<'a>(&self, pop: &'a Population, e: MemberId) -> Option<&'a Evaluation> {
        let ev = pop.member(e).trail.evaluation.as_ref()?;
        let valid = ev.parent < pop.len()
            && ev.child < pop.len()
            && pop.member(ev.parent).trail.epoch == ev.parent_epoch
            && pop.member(ev.child).trail.epoch == ev.child_epoch;
        valid.then_some(ev)
    }

    /// How evaluator `e`'s evaluation stands on this snapshot.
    pub fn verdict(&self, pop: &Population, e: MemberId) -> Verdict {
        let Some(ev) = self.running(pop, e) else {
            return Verdict::Over;
        };
        let mine = rewards(pop, e);
        let child = rewards(pop, ev.child);
        let ran = pop.member(e).step.saturating_sub(ev.start);
        if mine.len() < 2 || child.len() < 2 {
            return if ran >= self.max_eval_steps.saturating_mul(2) {
                Verdict::Over
            } else {
                Verdict::Running
            };
        }
        let (ms, cs) = (
            smooth(&mine, self.smoothing),
            smooth(&child, self.smoothing),
        );
        let p = binomial_p(&mine, &ms, &child, &cs);
        if best_score_diff(&mine, &ms, &child, &cs) > 0.0 && p < self.p_value {
            return Verdict::Won;
        }
        let patience = (1.0 - ran as f64 / self.max_eval_steps as f64).max(0.0);
        let aligned = overlap(&ms, &cs).is_some();
        if (!aligned && ran >= self.max_eval_steps) || (aligned && p > self.p_value + patience) {
            return Verdict::Over;
        }
        Verdict::Running
    }

    /// The evaluator whose evaluation has beaten `child`, if any: the one with the best latest
    /// reward, then the lowest id.
    pub fn winner_for(&self, pop: &Population, child: MemberId) -> Option<MemberId> {
        self.evaluator_ids()
            .filter(|&e| e < pop.len())
            .filter(|&e| self.running(pop, e).is_some_and(|ev| ev.child == child))
            .filter(|&e| self.verdict(pop, e) == Verdict::Won)
            .map(|e| (rewards(pop, e).last().copied().unwrap_or(f64::MIN), e))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, e)| e)
    }

    /// An evaluator at a ready point: it goes on while its evaluation runs (or has won and
    /// waits for its child to take its state), and otherwise starts the next one.
    fn evaluator_decides(&self, policy: &Policy, pop: &Population, e: MemberId) -> Decision {
        match self.verdict(pop, e) {
            Verdict::Running | Verdict::Won => Decision::Continue,
            Verdict::Over => match self.next_evaluation(policy, pop, e) {
                Some(ev) => Decision::Exploit {
                    donor: ev.parent,
                    h: pop.member(ev.child).h.clone(),
                },
                None => Decision::Continue,
            },
        }
    }

    /// The evaluation idle evaluator `e` starts: the member of P2… that has waited longest
    /// since it was last evaluated or took another state (never evaluated first), not being
    /// evaluated now, with the best-scoring member of the sub-population below as the child.
    /// Evaluators idle on the same snapshot of a synchronous round take successive members,
    /// in id order. Only a member trained at least as far as the evaluator is taken.
    pub fn next_evaluation(
        &self,
        policy: &Policy,
        pop: &Population,
        e: MemberId,
    ) -> Option<Evaluation> {
        let busy: Vec<MemberId> = self
            .evaluator_ids()
            .filter(|&x| x < pop.len())
            .filter_map(|x| {
                (self.verdict(pop, x) != Verdict::Over)
                    .then(|| self.running(pop, x).map(|ev| ev.parent))
                    .flatten()
            })
            .collect();
        let idle_before = if policy.sync == crate::policy::SyncMode::Synchronous {
            self.evaluator_ids()
                .filter(|&x| x < e && self.verdict(pop, x) == Verdict::Over)
                .count()
        } else {
            0
        };
        let last_seen = |p: MemberId| -> (u64, MemberId) {
            let started = self
                .evaluator_ids()
                .filter(|&x| x < pop.len())
                .flat_map(|x| pop.member(x).trail.starts.iter())
                .filter(|(q, _)| *q == p)
                .map(|(_, s)| *s)
                .max();
            // A member that has just taken another state waits its turn again.
            let mark = match (started, pop.member(p).trail.epoch > 0) {
                (Some(s), _) => s,
                (None, true) => pop.member(p).step,
                (None, false) => 0,
            };
            (mark, p)
        };
        let mut queue: Vec<(u64, MemberId)> = (1..self.sub_populations.len())
            .flat_map(|k| self.sub(k))
            .filter(|p| *p < pop.len() && !busy.contains(p) && pop.member(*p).score.is_some())
            .filter(|p| pop.member(*p).step >= pop.member(e).step)
            .map(last_seen)
            .collect();
        queue.sort();
        let (_, parent) = *queue.get(idle_before)?;
        let Role::Sub(k) = self.role(parent) else {
            return None;
        };
        let mode = pop.mode();
        let child = self
            .sub(k - 1)
            .filter_map(|m| pop.member(m).score.map(|s| (mode.key(s), m)))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map_or(self.sub(k - 1).start, |(_, m)| m);
        Some(Evaluation {
            parent,
            parent_epoch: pop.member(parent).trail.epoch,
            child,
            child_epoch: pop.member(child).trail.epoch,
            start: pop.member(parent).step,
        })
    }
}

/// The rewards of member `m`'s curve, oldest first.
fn rewards(pop: &Population, m: MemberId) -> Vec<f64> {
    pop.member(m).trail.curve.iter().map(|&(_, r)| r).collect()
}

/// Truncation over `ranked` (best first): a member in the bottom `fraction` draws a donor
/// from the top.
fn truncate<R: Rng>(
    ranked: &[(f64, MemberId)],
    ready: MemberId,
    fraction: f64,
    rng: &mut R,
) -> Option<MemberId> {
    let n = ranked.len();
    let r = ranked.iter().position(|&(_, m)| m == ready)?;
    let k = Exploit::truncation_count(fraction, n);
    if k == 0 || r < n - k {
        return None;
    }
    Some(ranked[rng.random_range(0..k)].1)
}

/// Whether a binomial count of `successes` in `n` fair trials is this high by chance: the
/// one-sided p-value P(X ≥ successes).
pub(crate) fn binomial_tail(successes: u64, n: u64) -> f64 {
    if successes == 0 || n == 0 {
        return 1.0;
    }
    match Binomial::new(0.5, n) {
        Ok(b) => b.sf(successes - 1),
        Err(_) => 1.0,
    }
}

#[cfg(test)]
#[path = "fire_tests.rs"]
mod tests;
