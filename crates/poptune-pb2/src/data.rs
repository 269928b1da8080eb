//! The data PB2 learns from: one row per finished interval of a member.

use std::collections::{BTreeMap, VecDeque};

use poptune::Hyperparams;

use crate::Pb2Error;

/// How many rows [`Pb2Data::new`] keeps.
pub const DEFAULT_CAPACITY: usize = 1000;

/// One interval of one member: it started at time `t` with reward `r_start`, trained with
/// `h`, and improved its reward at the rate `y` (reward per unit of time).
///
/// Rewards are "higher is better": for a score that is minimised, pass its negation.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The member.
    pub member: usize,
    /// The time (step) at the interval's start.
    pub t: f64,
    /// The reward at the interval's start.
    pub r_start: f64,
    /// The hyperparameters the interval trained with.
    pub h: Hyperparams,
    /// The rate of improvement over the interval: Δr / Δt.
    pub y: f64,
}

/// The last rows (at most a capacity, 1,000 by default), oldest first, and where each member
/// stands now.
#[derive(Clone, Debug)]
pub struct Pb2Data {
    rows: VecDeque<Row>,
    capacity: usize,
    last: BTreeMap<usize, (f64, f64)>,
}

impl Default for Pb2Data {
    fn default() -> Self {
        Self::new()
    }
}

impl Pb2Data {
    /// Empty, keeping the last 1,000 rows.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// Empty, keeping the last `capacity` rows (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Pb2Data {
            rows: VecDeque::new(),
            capacity: capacity.max(1),
            last: BTreeMap::new(),
        }
    }

    /// Adds a row, dropping the oldest beyond the capacity. A row with a time, start reward
    /// or rate that is not a finite number is refused.
    pub fn push(&mut self, row: Row) -> Result<(), Pb2Error> {
        if !(row.t.is_finite() && row.r_start.is_finite() && row.y.is_finite()) {
            return Err(Pb2Error::NonFinite {
                member: row.member,
                t: row.t,
            });
        }
        if self.rows.len() == self.capacity {
            self.rows.pop_front();
        }
        self.rows.push_back(row);
        Ok(())
    }

    /// Records a ready point: `member` reached reward `r` at time `t` after training with `h`
    /// since its last recorded point. Adds the interval's row when there is a previous point
    /// with an earlier time (returns whether it did), and makes `(t, r)` the start of the
    /// member's next interval.
    ///
    /// A time or reward that is not finite is refused, and the member's start point is
    /// forgotten, so that no row spans it.
    pub fn observe(
        &mut self,
        member: usize,
        t: f64,
        r: f64,
        h: &Hyperparams,
    ) -> Result<bool, Pb2Error> {
        if !(t.is_finite() && r.is_finite()) {
            self.last.remove(&member);
            return Err(Pb2Error::NonFinite { member, t });
        }
        let added = match self.last.get(&member) {
            Some(&(t0, r0)) if t > t0 => {
                let row = Row {
                    member,
                    t: t0,
                    r_start: r0,
                    h: h.clone(),
                    y: (r - r0) / (t - t0),
                };
                self.push(row).is_ok()
            }
            _ => false,
        };
        self.last.insert(member, (t, r));
        Ok(added)
    }

    /// After an exploit: `member` continues from the donor's state, at time `t` with reward
    /// `r`, so its next interval starts there.
    pub fn restart(&mut self, member: usize, t: f64, r: f64) -> Result<(), Pb2Error> {
        if !(t.is_finite() && r.is_finite()) {
            self.last.remove(&member);
            return Err(Pb2Error::NonFinite { member, t });
        }
        self.last.insert(member, (t, r));
        Ok(())
    }

    /// The rows, oldest first.
    pub fn rows(&self) -> impl DoubleEndedIterator<Item = &Row> + ExactSizeIterator {
        self.rows.iter()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_records_rates_and_keeps_the_last_rows() {
        let h = Hyperparams::new().with("lr", 0.1);
        let mut d = Pb2Data::with_capacity(3);
        assert!(!d.observe(0, 0.0, 1.0, &h).unwrap());
        assert!(d.observe(0, 2.0, 2.0, &h).unwrap());
        let row = d.rows().next().unwrap();
        assert_eq!((row.t, row.r_start, row.y), (0.0, 1.0, 0.5));
        for t in 3..8 {
            d.observe(0, t as f64, t as f64, &h).unwrap();
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.rows().next().unwrap().t, 4.0);
    }

    #[test]
    fn non_finite_points_are_refused_and_break_the_interval() {
        let h = Hyperparams::new();
        let mut d = Pb2Data::new();
        d.observe(1, 0.0, 1.0, &h).unwrap();
        assert!(d.observe(1, 1.0, f64::NAN, &h).is_err());
        // The next point has no start to measure from.
        assert!(!d.observe(1, 2.0, 3.0, &h).unwrap());
        assert!(d.is_empty());
        let bad = Row {
            member: 0,
            t: 0.0,
            r_start: 0.0,
            h,
            y: f64::INFINITY,
        };
        assert!(d.push(bad).is_err());
    }

    #[test]
    fn restart_moves_the_start_to_the_donor() {
        let h = Hyperparams::new();
        let mut d = Pb2Data::new();
        d.observe(2, 0.0, 0.0, &h).unwrap();
        d.restart(2, 5.0, 10.0).unwrap();
        d.observe(2, 7.0, 14.0, &h).unwrap();
        let row = d.rows().next().unwrap();
        assert_eq!((row.t, row.r_start, row.y), (5.0, 10.0, 2.0));
    }
}
