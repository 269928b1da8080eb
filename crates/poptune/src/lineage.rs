//! Lineage and schedules: who copied whom, when, with which hyperparameters; and the
//! piecewise-constant hyperparameter schedule that produced a member's final state, followed
//! back through its donors, which replays exactly.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ReplayError;
use crate::population::MemberId;
use crate::space::Hyperparams;
use crate::trainable::{Metrics, Trainable};

/// One exploit or explore event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Order of the event. A member's state at an event is the result of the events with a
    /// smaller `seq`; in a synchronous run all events of one ready round share the same `seq`
    /// (they were decided from the same snapshot).
    pub seq: u64,
    /// The recipient's step when it was ready.
    pub step: u64,
    /// The member that changed.
    pub recipient: MemberId,
    /// The member copied, if the event copied weights (`None` for explore-only).
    pub donor: Option<MemberId>,
    /// The donor's own step count at the checkpoint copied; equals `step` when nothing was
    /// copied. The recipient's step count becomes this: it counts on from the donor's.
    pub donor_step: u64,
    /// The recipient's hyperparameters before.
    pub old_h: Hyperparams,
    /// The recipient's hyperparameters after.
    pub new_h: Hyperparams,
    /// The recipient's score when it was ready (NaN if it had none, e.g. a member replaced
    /// after repeated faults before its first score; stored as `null`).
    #[serde(deserialize_with = "nan_if_null")]
    pub recipient_score: f64,
    /// The score of the donor's checkpoint.
    pub donor_score: Option<f64>,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What one step of a member reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The member's step count after this step (1 for the first step).
    pub step: u64,
    /// The score after this step.
    pub score: f64,
    /// Other metrics, as the trainable reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, f64)>,
}

impl StepRecord {
    pub(crate) fn new(step: u64, m: Metrics) -> Self {
        StepRecord {
            step,
            score: m.score,
            values: m.values,
        }
    }

    /// The metric called `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

/// Steps `start+1 ..= end` trained with `h`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Step count before the segment.
    pub start: u64,
    /// Step count after the segment.
    pub end: u64,
    /// The hyperparameters.
    pub h: Hyperparams,
}

/// The hyperparameter schedule that produced a member's state, from a fresh trainable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The member the state descends from at step 0 (whose initial trainable to start from).
    pub origin: MemberId,
    /// The member whose state the schedule produces.
    pub member: MemberId,
    /// Contiguous segments from step 0; adjacent segments always differ in `h`.
    pub segments: Vec<Segment>,
}

impl Schedule {
    /// Total steps the final state was trained: the member's step count.
    pub fn steps(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.end)
    }

    /// The hyperparameters used for step `step` (1-based), if the schedule covers it.
    pub fn h_at(&self, step: u64) -> Option<&Hyperparams> {
        self.segments
            .iter()
            .find(|s| s.start < step && step <= s.end)
            .map(|s| &s.h)
    }

    /// Trains `trainable` (fresh, in the origin's initial state) along the schedule and
    /// returns every step's record.
    pub fn replay<T: Trainable>(&self, trainable: &mut T) -> Result<Vec<StepRecord>, ReplayError> {
        if self.segments.is_empty() {
            return Err(ReplayError::Empty);
        }
        let mut out = Vec::with_capacity(self.steps() as usize);
        for seg in &self.segments {
            for step in seg.start + 1..=seg.end {
                let m = trainable
                    .step(&seg.h)
                    .map_err(|source| ReplayError::Trainable { step, source })?;
                out.push(StepRecord::new(step, m));
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "schedule of member {} (from member {}'s initial state):",
            self.member, self.origin
        )?;
        for s in &self.segments {
            writeln!(f, "  steps {:>6} ..{:>6}  {}", s.start + 1, s.end, s.h)?;
        }
        Ok(())
    }
}

/// Extracts the schedule of `member`, whose final checkpoint is at `final_step`, from the
/// initial hyperparameters of every member and the events of the run.
pub fn schedule(
    initial: &[Hyperparams],
    events: &[Event],
    member: MemberId,
    final_step: u64,
) -> Schedule {
    // Walk back from the member's end, collecting (steps, h) pieces in reverse order. A
    // member's step count is the number of training steps behind its state: after an exploit
    // it counts on from the donor checkpoint's step (`donor_step`, which is the member's own
    // step for an explore alone).
    let mut pieces: Vec<(u64, &Hyperparams)> = Vec::new();
    let mut current = member;
    let mut limit = u64::MAX;
    let mut end = final_step;
    loop {
        let last = events
            .iter()
            .filter(|e| e.recipient == current && e.seq < limit)
            .max_by_key(|e| e.seq);
        match last {
            None => {
                pieces.push((end, &initial[current]));
                break;
            }
            Some(e) => {
                pieces.push((end.saturating_sub(e.donor_step), &e.new_h));
                limit = e.seq;
                match e.donor {
                    Some(d) => {
                        current = d;
                        end = e.donor_step;
                    }
                    None => end = e.step,
                }
            }
        }
    }
    let mut segments: Vec<Segment> = Vec::new();
    let mut at = 0;
    for (len, h) in pieces.into_iter().rev() {
        if len == 0 {
            continue;
        }
        match segments.last_mut() {
            Some(prev) if prev.h == *h => prev.end += len,
            _ => segments.push(Segment {
                start: at,
                end: at + len,
                h: h.clone(),
            }),
        }
        at += len;
    }
    Schedule {
        origin: current,
        member,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f64) -> Hyperparams {
        Hyperparams::new().with("x", x)
    }

    fn ev(seq: u64, step: u64, recipient: usize, donor: Option<usize>, new: f64) -> Event {
        Event {
            seq,
            step,
            recipient,
            donor,
            donor_step: step,
            old_h: h(-1.0),
            new_h: h(new),
            recipient_score: 0.0,
            donor_score: None,
        }
    }

    #[test]
    fn follows_donors_back() {
        let initial = vec![h(0.0), h(1.0)];
        // Round at step 5: 1 copies 0 and takes 1.5. Round at step 10: 0 copies 1 and
        // takes 2.0.
        let events = vec![ev(0, 5, 1, Some(0), 1.5), ev(1, 10, 0, Some(1), 2.0)];
        let s = schedule(&initial, &events, 0, 15);
        assert_eq!(s.origin, 0);
        let segs: Vec<(u64, u64, f64)> = s
            .segments
            .iter()
            .map(|x| (x.start, x.end, x.h.f64("x").unwrap()))
            .collect();
        assert_eq!(segs, vec![(0, 5, 0.0), (5, 10, 1.5), (10, 15, 2.0)]);
        let s1 = schedule(&initial, &events, 1, 15);
        let segs: Vec<(u64, u64, f64)> = s1
            .segments
            .iter()
            .map(|x| (x.start, x.end, x.h.f64("x").unwrap()))
            .collect();
        assert_eq!(segs, vec![(0, 5, 0.0), (5, 15, 1.5)]);
        assert_eq!(s1.h_at(6).and_then(|h| h.f64("x")), Some(1.5));
    }

    #[test]
    fn same_round_events_see_the_snapshot() {
        // Synchronous round 0 at step 5: 0 copies 1 while 1 copies 2. Member 0's state is
        // member 1's pre-round state, not member 2's.
        let initial = vec![h(0.0), h(1.0), h(2.0)];
        let events = vec![ev(0, 5, 0, Some(1), 7.0), ev(0, 5, 1, Some(2), 8.0)];
        let s = schedule(&initial, &events, 0, 10);
        assert_eq!(s.origin, 1);
        assert_eq!(s.segments[0].h, h(1.0));
        assert_eq!(s.segments[1].h, h(7.0));
    }
}
