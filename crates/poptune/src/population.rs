//! The population as the policy core sees it: each member's hyperparameters, the step and
//! score of its latest checkpoint, its recent scores, and a ranking kept sorted so that rank
//! queries cost O(log N).

use std::cmp::Ordering;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::space::Hyperparams;
use crate::trail::Trail;

/// A member's index in the population (0-based).
pub type MemberId = usize;

/// Whether a higher or a lower score is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Higher scores are better (accuracy, reward).
    #[default]
    Max,
    /// Lower scores are better (loss, error).
    Min,
}

impl Mode {
    /// The score turned into a key where higher is better; NaN becomes the worst key.
    pub fn key(self, score: f64) -> f64 {
        let k = match self {
            Mode::Max => score,
            Mode::Min => -score,
        };
        if k.is_nan() {
            f64::NEG_INFINITY
        } else {
            k
        }
    }

    /// Whether score `a` is strictly better than score `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.key(a) > self.key(b)
    }
}

/// What the population knows of one member.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    /// Current hyperparameters.
    pub h: Hyperparams,
    /// Step of the member's latest checkpoint.
    pub step: u64,
    /// Score of the latest checkpoint, if it has reported one.
    pub score: Option<f64>,
    /// Most recent step scores as keys (higher is better), oldest first.
    recent: VecDeque<f64>,
    /// What the algorithm keeps of its past (empty for PBT).
    pub trail: Trail,
}

impl MemberView {
    /// The most recent step scores as keys (higher is better), oldest first.
    pub fn recent_keys(&self) -> &VecDeque<f64> {
        &self.recent
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    key: f64,
    id: MemberId,
}

/// Best first: higher key, then lower id. Keys are never NaN.
fn rank_order(a: &Entry, b: &Entry) -> Ordering {
    b.key.total_cmp(&a.key).then(a.id.cmp(&b.id))
}

/// What a donor hands to a member that exploits it.
#[derive(Clone, Debug, PartialEq)]
pub struct DonorInfo {
    /// The donor.
    pub id: MemberId,
    /// Step of the donor's checkpoint.
    pub step: u64,
    /// Score of the donor's checkpoint.
    pub score: Option<f64>,
    recent: VecDeque<f64>,
}

/// A snapshot of the population. Ties in score are broken by member id (lower ranks higher),
/// so every ranking is deterministic.
#[derive(Clone, Debug, PartialEq)]
pub struct Population {
    mode: Mode,
    window: usize,
    members: Vec<MemberView>,
    ranking: Vec<Entry>,
}

impl Population {
    /// A population whose members start with these hyperparameters and no score. `window`
    /// is how many recent step scores are kept per member (for the t-test strategy).
    pub fn new(mode: Mode, initial: Vec<Hyperparams>, window: usize) -> Self {
        let members = initial
            .into_iter()
            .map(|h| MemberView {
                h,
                step: 0,
                score: None,
                recent: VecDeque::with_capacity(window),
                trail: Trail::default(),
            })
            .collect();
        Population {
            mode,
            window,
            members,
            ranking: Vec::new(),
        }
    }

    /// The optimisation direction.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the population is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// One member's view.
    pub fn member(&self, id: MemberId) -> &MemberView {
        &self.members[id]
    }

    /// All members' views, by id.
    pub fn members(&self) -> &[MemberView] {
        &self.members
    }

    /// Number of members that have a score (the ones that take part in rankings).
    pub fn scored(&self) -> usize {
        self.ranking.len()
    }

    fn entry(&self, id: MemberId) -> Option<Entry> {
        self.members[id].score.map(|s| Entry {
            key: self.mode.key(s),
            id,
        })
    }

    /// Rank of a member among the scored ones (0 = best), `None` if it has no score.
    pub fn rank(&self, id: MemberId) -> Option<usize> {
        let e = self.entry(id)?;
        self.ranking.binary_search_by(|x| rank_order(x, &e)).ok()
    }

    /// The member at rank `r` (0 = best).
    pub fn at_rank(&self, r: usize) -> Option<MemberId> {
        self.ranking.get(r).map(|e| e.id)
    }

    /// The best scored member.
    pub fn best(&self) -> Option<MemberId> {
        self.at_rank(0)
    }

    fn rerank(&mut self, id: MemberId) {
        if let Some(e) = self.entry(id) {
            let i = self
                .ranking
                .binary_search_by(|x| rank_order(x, &e))
                .unwrap_or_else(|i| i);
            self.ranking.insert(i, e);
        }
    }

    /// Records a member's scores for the steps just trained (oldest first); the last one
    /// becomes the score of its checkpoint at `step`.
    pub fn record(&mut self, id: MemberId, step: u64, scores: &[f64]) {
        self.record_iter(id, step, scores.iter().copied());
    }

    /// [`Population::record`] from an iterator of scores, oldest first.
    pub fn record_iter<I: IntoIterator<Item = f64>>(&mut self, id: MemberId, step: u64, scores: I) {
        let before = self.entry(id);
        let mode = self.mode;
        let window = self.window;
        let m = &mut self.members[id];
        m.step = step;
        for s in scores {
            m.score = Some(s);
            if window > 0 {
                if m.recent.len() == window {
                    m.recent.pop_front();
                }
                m.recent.push_back(mode.key(s));
            }
        }
        self.moved(id, before);
    }

    /// Puts member `id` where its current score ranks it, given where it was (`before`); only
    /// the entries between the old and the new place move.
    fn moved(&mut self, id: MemberId, before: Option<Entry>) {
        let Some(after) = self.entry(id) else {
            if let Some(b) = before {
                if let Ok(i) = self.ranking.binary_search_by(|x| rank_order(x, &b)) {
                    self.ranking.remove(i);
                }
            }
            return;
        };
        let old = before.and_then(|b| self.ranking.binary_search_by(|x| rank_order(x, &b)).ok());
        match old {
            None => self.rerank(id),
            Some(i) => {
                if rank_order(&after, &self.ranking[i]).is_lt() {
                    // Moves up: insertion point among the entries before it.
                    let p = self.ranking[..i].partition_point(|x| rank_order(x, &after).is_lt());
                    self.ranking[p..=i].rotate_right(1);
                    self.ranking[p] = after;
                } else {
                    let q = i
                        + 1
                        + self.ranking[i + 1..].partition_point(|x| rank_order(x, &after).is_lt());
                    self.ranking[i..q].rotate_left(1);
                    self.ranking[q - 1] = after;
                }
            }
        }
    }

    /// What member `id` would hand to a member that exploits it.
    pub fn donor_info(&self, id: MemberId) -> DonorInfo {
        let m = &self.members[id];
        DonorInfo {
            id,
            step: m.step,
            score: m.score,
            recent: m.recent.clone(),
        }
    }

    /// Member `id` takes the donor's checkpoint (its step, score and recent scores) and the
    /// hyperparameters `h`: its step count becomes the donor checkpoint's, the number of
    /// training steps behind the state it now holds.
    pub fn apply_exploit(&mut self, id: MemberId, donor: &DonorInfo, h: Hyperparams) {
        let before = self.entry(id);
        let m = &mut self.members[id];
        m.step = donor.step;
        m.score = donor.score;
        m.recent.clone_from(&donor.recent);
        m.h = h;
        self.moved(id, before);
    }

    /// Sets a member's whole state, as a store recorded it: step, score and recent keys
    /// (oldest first; at most the window is kept).
    pub fn set_state(&mut self, id: MemberId, step: u64, score: Option<f64>, recent_keys: &[f64]) {
        let before = self.entry(id);
        let window = self.window;
        let m = &mut self.members[id];
        m.step = step;
        m.score = score;
        m.recent = recent_keys
            .iter()
            .skip(recent_keys.len().saturating_sub(window))
            .copied()
            .collect();
        self.moved(id, before);
    }

    /// Member `id`'s trail, to change.
    pub fn trail_mut(&mut self, id: MemberId) -> &mut Trail {
        &mut self.members[id].trail
    }

    /// Member `id` changes hyperparameters in place.
    pub fn set_h(&mut self, id: MemberId, h: Hyperparams) {
        self.members[id].h = h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(mode: Mode, scores: &[f64]) -> Population {
        let mut p = Population::new(mode, vec![Hyperparams::new(); scores.len()], 3);
        for (i, &s) in scores.iter().enumerate() {
            p.record(i, 5, &[s]);
        }
        p
    }

    #[test]
    fn ranks_follow_mode_and_ties_break_by_id() {
        let p = pop(Mode::Max, &[0.5, 0.9, 0.5, 0.1]);
        assert_eq!(p.rank(1), Some(0));
        assert_eq!(p.rank(0), Some(1));
        assert_eq!(p.rank(2), Some(2));
        assert_eq!(p.rank(3), Some(3));
        let p = pop(Mode::Min, &[0.5, 0.9, 0.5, 0.1]);
        assert_eq!(p.best(), Some(3));
        assert_eq!(p.at_rank(3), Some(1));
    }

    #[test]
    fn nan_ranks_last_and_rerecording_moves_members() {
        let mut p = pop(Mode::Max, &[f64::NAN, 1.0, 2.0]);
        assert_eq!(p.rank(0), Some(2));
        p.record(0, 10, &[0.0, 3.0]);
        assert_eq!(p.best(), Some(0));
        assert_eq!(p.scored(), 3);
        assert_eq!(p.member(0).recent_keys().len(), 3);
        let d = p.donor_info(2);
        p.apply_exploit(0, &d, Hyperparams::new().with("x", 1.0));
        assert_eq!(p.member(0).score, Some(2.0));
        assert_eq!(
            p.member(0).step,
            d.step,
            "it holds the donor's state, of the donor's step"
        );
        assert_eq!(p.scored(), 3);
        // Ties (0 and 2 now both 2.0) break by id.
        assert_eq!(p.best(), Some(0));
        assert_eq!(p.rank(2), Some(1));
    }

    #[test]
    fn ranking_stays_sorted_under_updates() {
        let n = 50;
        let mut p = Population::new(Mode::Max, vec![Hyperparams::new(); n], 0);
        let mut x: u64 = 12345;
        for round in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = (x >> 33) as usize % n;
            let score = ((x >> 20) % 40) as f64;
            if round % 7 == 0 {
                let d = p.donor_info((id + 1) % n);
                p.apply_exploit(id, &d, Hyperparams::new());
            } else {
                p.record(id, round, &[score]);
            }
            let mut expected: Vec<Entry> = (0..n).filter_map(|i| p.entry(i)).collect();
            expected.sort_by(rank_order);
            assert_eq!(p.ranking, expected, "after round {round}");
        }
    }

    #[test]
    fn window_keeps_latest_scores() {
        let mut p = Population::new(Mode::Min, vec![Hyperparams::new()], 2);
        p.record(0, 3, &[3.0, 2.0, 1.0]);
        let keys: Vec<f64> = p.member(0).recent_keys().iter().copied().collect();
        assert_eq!(keys, vec![-2.0, -1.0]);
    }
}
