//! What a member's past keeps for the algorithms that learn from it: PB2's intervals (time,
//! reward and hyperparameters of each interval trained) and FIRE-PBT's curve since the last
//! exploit and its evaluator's state. PBT keeps none of it: a trail stays empty unless the
//! policy's [`Algorithm`](crate::policy::Algorithm) asks for it.
//!
//! A trail is part of a member's stored row, so a resumed run, a distributed worker and a local
//! run all decide from the same past.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::population::MemberId;
use crate::space::Hyperparams;

/// One interval a member trained: from step `t0` with reward `r0` to step `t` with reward `r`,
/// with hyperparameters `h`. Rewards are ranking keys (higher is better).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The step the interval started from (after an exploit: the donor's).
    pub t0: u64,
    /// The reward there.
    pub r0: f64,
    /// The step it ended at.
    pub t: u64,
    /// The reward there.
    pub r: f64,
    /// The hyperparameters it trained with.
    pub h: Hyperparams,
}

/// A FIRE-PBT evaluator's current evaluation: it trains a copy of `parent` (a member of a
/// higher sub-population) with the hyperparameters of `child` (the best of the sub-population
/// below, when it started).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The member whose weights are evaluated.
    pub parent: MemberId,
    /// The parent's epoch when the evaluation started: if it exploits, the evaluation ends.
    pub parent_epoch: u64,
    /// The member whose hyperparameters the copy trains with, and which it replaces when it
    /// wins.
    pub child: MemberId,
    /// The child's epoch when the evaluation started.
    pub child_epoch: u64,
    /// The step the evaluation started at.
    pub start: u64,
}

/// What one member keeps of its past (see the module's documentation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trail {
    /// PB2: the intervals trained, oldest first (at most [`Trail::MAX_INTERVALS`]).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub intervals: VecDeque<Interval>,
    /// FIRE-PBT: (step, reward) of every step since the member last took another's state,
    /// oldest first (at most [`Trail::MAX_CURVE`]).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub curve: VecDeque<(u64, f64)>,
    /// FIRE-PBT: how many times the member took another member's state.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// FIRE-PBT: the evaluation this evaluator runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// FIRE-PBT: the evaluations this evaluator started, (parent, step), newest last (at most
    /// [`Trail::MAX_STARTS`]).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub starts: VecDeque<(MemberId, u64)>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Trail {
    /// The most intervals one member keeps (PB2 uses the newest 1,000 of the population's).
    pub const MAX_INTERVALS: usize = 1000;
    /// The longest curve kept.
    pub const MAX_CURVE: usize = 2048;
    /// The most evaluation starts an evaluator remembers.
    pub const MAX_STARTS: usize = 64;

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self == &Trail::default()
    }

    /// Adds an interval, keeping at most `cap` (and [`Trail::MAX_INTERVALS`]).
    pub fn push_interval(&mut self, i: Interval, cap: usize) {
        let cap = cap.clamp(1, Self::MAX_INTERVALS);
        while self.intervals.len() >= cap {
            self.intervals.pop_front();
        }
        self.intervals.push_back(i);
    }

    /// Adds a point to the curve.
    pub fn push_point(&mut self, step: u64, reward: f64) {
        if self.curve.len() == Self::MAX_CURVE {
            self.curve.pop_front();
        }
        self.curve.push_back((step, reward));
    }

    /// The member took another's state: its curve starts again and its epoch moves on.
    pub fn took_state(&mut self) {
        self.curve.clear();
        self.epoch += 1;
    }

    /// Remembers that an evaluation of `parent` started at `step`.
    pub fn started(&mut self, parent: MemberId, step: u64) {
        if self.starts.len() == Self::MAX_STARTS {
            self.starts.pop_front();
        }
        self.starts.push_back((parent, step));
    }
}

/// The newest `max` intervals of every member, oldest first, ordered by (end step, member) so
/// that the order depends on nothing but the trails.
pub fn newest_intervals<'a>(
    trails: impl Iterator<Item = (MemberId, &'a Trail)>,
    max: usize,
) -> Vec<(MemberId, &'a Interval)> {
    let mut all: Vec<(MemberId, &Interval)> = trails
        .flat_map(|(m, t)| t.intervals.iter().map(move |i| (m, i)))
        .collect();
    all.sort_by_key(|a| (a.1.t, a.1.t0, a.0));
    let skip = all.len().saturating_sub(max);
    all.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(t: u64) -> Interval {
        Interval {
            t0: t - 1,
            r0: 0.0,
            t,
            r: 1.0,
            h: Hyperparams::new(),
        }
    }

    #[test]
    fn intervals_are_capped_and_merged_in_step_order() {
        let mut a = Trail::default();
        let mut b = Trail::default();
        for t in 1..=5 {
            a.push_interval(iv(t), 3);
            b.push_interval(iv(t), 3);
        }
        assert_eq!(a.intervals.len(), 3);
        assert_eq!(a.intervals[0].t, 3);
        let all = newest_intervals([(0, &a), (1, &b)].into_iter(), 4);
        let got: Vec<(usize, u64)> = all.iter().map(|(m, i)| (*m, i.t)).collect();
        assert_eq!(got, vec![(0, 4), (1, 4), (0, 5), (1, 5)]);
    }

    #[test]
    fn an_empty_trail_is_stored_as_an_empty_object() {
        let t = Trail::default();
        assert!(t.is_empty());
        assert_eq!(serde_json::to_string(&t).unwrap(), "{}");
        let back: Trail = serde_json::from_str("{}").unwrap();
        assert_eq!(back, t);
        let mut u = Trail::default();
        u.push_point(3, 0.5);
        u.took_state();
        u.push_point(4, 0.7);
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<Trail>(&json).unwrap(), u);
        assert_eq!(u.epoch, 1);
        assert_eq!(u.curve.len(), 1);
    }
}
