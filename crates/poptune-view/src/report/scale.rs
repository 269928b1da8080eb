//! The figures' axes: which range to show (robust to a member that diverges), linear or
//! logarithmic, which ticks, and how they are labelled.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;

use crate::format::score;

/// The most ticks an axis gets.
const MAX_TICKS: usize = 10;

/// One axis of a figure. On a logarithmic axis the plot's coordinates are the values' log10;
/// `at` takes a value to its coordinate, and the labels show values again.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Axis {
    /// The range shown, in plot coordinates.
    pub lo: f64,
    /// The end of the range shown, in plot coordinates.
    pub hi: f64,
    /// Logarithmic: coordinates are log10 of the values.
    pub log: bool,
    /// The ticks, in plot coordinates.
    pub ticks: Vec<f64>,
}

impl Axis {
    /// A linear axis over `lo..hi` (widened when empty); `integer`: ticks only at integers.
    pub(crate) fn linear(lo: f64, hi: f64, integer: bool) -> Axis {
        let (lo, hi) = widen(lo, hi);
        Axis {
            lo,
            hi,
            log: false,
            ticks: nice_ticks(lo, hi, integer),
        }
    }

    /// A logarithmic axis over the values `lo..hi` (both positive).
    pub(crate) fn log(lo: f64, hi: f64, integer: bool) -> Axis {
        let (a, b) = widen(
            lo.max(f64::MIN_POSITIVE).log10(),
            hi.max(f64::MIN_POSITIVE).log10(),
        );
        Axis {
            lo: a,
            hi: b,
            log: true,
            ticks: log_ticks(a, b, integer),
        }
    }

    /// An axis with ticks at exactly these values (an ordered hyperparameter's levels).
    pub(crate) fn at_values(values: &[f64], log: bool) -> Axis {
        let at = |v: f64| if log { v.log10() } else { v };
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(at(*v)), b.max(at(*v)))
            });
        let (lo, hi) = widen(lo, hi);
        Axis {
            lo,
            hi,
            log,
            ticks: values.iter().map(|v| at(*v)).collect(),
        }
    }

    /// A value's plot coordinate.
    pub(crate) fn at(&self, v: f64) -> f64 {
        if self.log {
            v.max(f64::MIN_POSITIVE).log10()
        } else {
            v
        }
    }

    /// A value's plot coordinate, held inside the range shown, and whether it had to be.
    pub(crate) fn clamp(&self, v: f64) -> (f64, bool) {
        let p = if v.is_nan() { v } else { self.at(v) };
        if p < self.lo {
            (self.lo, true)
        } else if p > self.hi {
            (self.hi, true)
        } else {
            (p, false)
        }
    }

    /// The label of a tick at plot coordinate `p`: the value, with significant digits.
    pub(crate) fn label(&self, p: f64) -> String {
        score(if self.log { 10f64.powf(p) } else { p })
    }

    /// Every tick's label.
    pub(crate) fn labels(&self) -> Vec<String> {
        self.ticks.iter().map(|p| self.label(*p)).collect()
    }

    /// The range and ticks for plotters.
    pub(crate) fn spec(&self) -> Ticked {
        Ticked {
            range: (self.lo..self.hi).into(),
            ticks: self.ticks.clone(),
        }
    }
}

/// A plotters coordinate over an [`Axis`]'s range with its ticks (and no light mesh lines);
/// the charts label them with [`Axis::label`].
#[derive(Clone)]
pub(crate) struct Ticked {
    range: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            vec![]
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.range()
    }
}

/// A range with room around it: 5% on each side, or ±0.5 (or ±5% of the value) when empty.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        (lo.abs() * 0.05).max(0.5)
    };
    (lo - pad, hi + pad)
}

/// Ticks at round numbers (1, 2 or 5 times a power of ten apart) inside `lo..=hi`; at
/// integers only when `integer`.
pub(crate) fn nice_ticks(lo: f64, hi: f64, integer: bool) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![];
    }
    let raw = (hi - lo) / (MAX_TICKS - 2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|k| k * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if integer {
        step = step.max(1.0).round();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .take(MAX_TICKS * 2)
        .map(|k| k as f64 * step)
        // 0.30000000000000004 -> 0.3 (and never -0): what the label shows.
        .map(|v| score(v).parse::<f64>().unwrap_or(v) + 0.0)
        .collect()
}

/// Ticks of a logarithmic axis over the coordinates `lo..=hi` (log10 of the values): powers
/// of ten over many decades, 1-2-5 steps (powers of two on an integer axis) over few, round
/// linear steps inside one.
pub(crate) fn log_ticks(lo: f64, hi: f64, integer: bool) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![];
    }
    let decades = hi - lo;
    if decades >= 3.0 {
        let every = (decades / (MAX_TICKS - 1) as f64).ceil().max(1.0) as i64;
        let first = lo.ceil() as i64;
        let first = first + (every - first.rem_euclid(every)) % every;
        return (first..=hi.floor() as i64)
            .step_by(every as usize)
            .map(|k| k as f64)
            .collect();
    }
    let inside = |v: &f64| *v >= lo - 1e-9 && *v <= hi + 1e-9;
    let mut ticks: Vec<f64> = Vec::new();
    if integer {
        let (a, b) = (lo / 2f64.log10(), hi / 2f64.log10());
        ticks = (a.ceil() as i64..=b.floor() as i64)
            .map(|k| k as f64 * 2f64.log10())
            .collect();
    }
    if ticks.len() < 3 || ticks.len() > MAX_TICKS {
        ticks = (lo.floor() as i64..=hi.ceil() as i64)
            .flat_map(|k| [1.0, 2.0, 5.0].map(|m| (m * 10f64.powi(k as i32)).log10()))
            .filter(inside)
            .collect();
    }
    if ticks.len() < 3 {
        ticks = nice_ticks(10f64.powf(lo), 10f64.powf(hi), integer)
            .into_iter()
            .filter(|v| *v > 0.0)
            .map(f64::log10)
            .filter(inside)
            .collect();
    }
    ticks
}

/// The quantile `q` of sorted values (linear interpolation).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    let next = sorted.get(i + 1).copied().unwrap_or(sorted[i]);
    sorted[i] + f * (next - sorted[i])
}

/// The range of the values that are not outliers: those within five times the spread of
/// the middle 80% beyond the 10% and 90% quantiles, when what lies beyond would squash the
/// rest. A member that diverges to 1e11 while the others stay near 1 is left out (and drawn at
/// the edge), a steep start is not. NaN
/// and infinite values are left out; `None` when nothing is left.
pub(crate) fn robust_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let (q1, q9) = (quantile(&v, 0.1), quantile(&v, 0.9));
    let spread = q9 - q1;
    let (fence_lo, fence_hi) = (q1 - 5.0 * spread, q9 + 5.0 * spread);
    let inside = v.iter().filter(|x| **x >= fence_lo && **x <= fence_hi);
    let lo = inside.clone().copied().fold(f64::INFINITY, f64::min);
    let hi = inside.copied().fold(f64::NEG_INFINITY, f64::max);
    // Values are left out only when keeping them would squash the rest: when the whole range
    // is more than ten times what is left. A long run's early steps, far from where it
    // settles but on the same scale, stay in.
    let (min, max) = (v[0], v[v.len() - 1]);
    if max - min <= OUTLIER_SQUASH * (hi - lo).max(f64::MIN_POSITIVE) {
        return Some((min, max));
    }
    Some((lo, hi))
}

/// How many times wider than the rest the whole range must be before outliers are left out.
const OUTLIER_SQUASH: f64 = 10.0;

/// The axis for scores: linear over the robust range, or logarithmic when every value is
/// positive and the robust range spans three decades or more (then robust in log10).
pub(crate) fn score_axis(values: &[f64]) -> Axis {
    let Some((lo, hi)) = robust_range(values.iter().copied()) else {
        return Axis::linear(0.0, 1.0, false);
    };
    let positive = values.iter().all(|v| v.is_nan() || *v > 0.0);
    if positive && lo > 0.0 && hi / lo >= 1e3 {
        if let Some((a, b)) = robust_range(values.iter().map(|v| v.log10())) {
            return Axis::log(10f64.powf(a), 10f64.powf(b), false);
        }
    }
    Axis::linear(lo, hi, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integer_axis_has_integer_ticks() {
        let t = nice_ticks(0.0, 20.0, true);
        assert!(t.iter().all(|v| v.fract() == 0.0), "{t:?}");
        assert!(t.contains(&20.0), "{t:?}");
        let axis = Axis::linear(0.0, 3.0, true);
        assert_eq!(axis.labels(), ["0", "1", "2", "3"]);
        let labels = Axis::linear(0.0, 100.0, true).labels();
        assert!(labels.contains(&"20".to_string()), "{labels:?}");
        // Batch sizes 16 to 128, log-uniform: the powers of two.
        let axis = Axis::log(16.0, 128.0, true);
        assert_eq!(axis.labels(), ["16", "32", "64", "128"]);
        let axis = Axis::at_values(&[16.0, 32.0, 64.0, 128.0], true);
        assert_eq!(axis.labels(), ["16", "32", "64", "128"]);
    }

    #[test]
    fn ticks_are_round_and_inside() {
        let t = nice_ticks(0.0, 1.0, false);
        assert_eq!(t, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let t = nice_ticks(-9.3, 0.2, false);
        assert!(t.iter().all(|v| (-9.3..=0.2).contains(v)), "{t:?}");
        // Many decades: powers of ten.
        let axis = Axis::log(1e-3, 1e11, false);
        assert!(
            axis.labels().contains(&"1e6".to_string()),
            "{:?}",
            axis.labels()
        );
        assert!(axis.ticks.len() <= MAX_TICKS, "{:?}", axis.ticks);
        let t = log_ticks(-4.0, -0.4, false);
        assert!(t.len() >= 3, "{t:?}");
    }

    #[test]
    fn a_member_that_diverges_leaves_the_others_readable() {
        // Minimisation: 15 members settle from 2.3 to about 0.1; one goes to 1e11.
        let mut scores = Vec::new();
        for m in 0..16 {
            for s in 0..100 {
                let settle = 0.1 + 2.2 * (-(s as f64) / 10.0).exp() + m as f64 * 0.01;
                scores.push(if m == 3 && s > 50 { 1e11 } else { settle });
            }
        }
        let axis = score_axis(&scores);
        assert!(!axis.log, "{axis:?}");
        // Every normal point is inside; the diverged ones are not.
        assert!(
            axis.lo <= 0.1 && axis.hi >= 2.3 + 0.15 && axis.hi < 10.0,
            "{axis:?}"
        );
        assert_eq!(axis.clamp(1e11), (axis.hi, true));
        assert_eq!(axis.clamp(1.0), (1.0, false));
        // Maximisation with a member that went to -1e11.
        let neg: Vec<f64> = scores.iter().map(|s| -s).collect();
        let axis = score_axis(&neg);
        assert!(axis.lo > -10.0 && axis.hi >= -0.1, "{axis:?}");
    }

    #[test]
    fn a_long_runs_early_steps_are_not_outliers() {
        // Accuracy: 8 members, 400 steps, from 0.1 at the first steps to about 0.95, where most
        // of the steps are: the start stays on the axis.
        let mut values = Vec::new();
        for m in 0..8 {
            for s in 1..=400 {
                let settle = 0.95 - 0.85 * (-(s as f64) / 4.0).exp() + m as f64 * 0.002;
                values.push(settle);
            }
        }
        let axis = score_axis(&values);
        assert!(axis.lo <= 0.3 && axis.hi >= 0.95, "{axis:?}");
    }

    #[test]
    fn positive_scores_over_many_decades_get_a_log_axis() {
        // Losses that fall from 1e3 to 1e-4 for every member.
        let scores: Vec<f64> = (0..16)
            .flat_map(|m| {
                (0..100).map(move |s| 1e3 * 10f64.powf(-0.07 * s as f64) * (1.0 + m as f64 / 100.0))
            })
            .collect();
        let axis = score_axis(&scores);
        assert!(axis.log, "{axis:?}");
        assert!(axis.lo <= 1e-4f64.log10() && axis.hi >= 3.0, "{axis:?}");
        // Flat scores still get a range, and NaN is no outlier.
        let axis = score_axis(&[0.5, 0.5, f64::NAN]);
        assert!(axis.lo < 0.5 && axis.hi > 0.5, "{axis:?}");
    }
}
