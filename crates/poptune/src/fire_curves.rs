//! Curves as FIRE-PBT compares them: smoothed, aligned where they reach the same reward, and
//! compared over the stretch where both run.

use super::binomial_tail;

/// A trailing moving average over `width` points (fewer at the start).
pub fn smooth(values: &[f64], width: usize) -> Vec<f64> {
    let width = width.max(1);
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for (i, v) in values.iter().enumerate() {
        sum += v;
        if i >= width {
            sum -= values[i - width];
        }
        out.push(sum / (i + 1).min(width) as f64);
    }
    out
}

/// Where two smoothed curves meet: the curve that starts lower is followed until it first
/// reaches the other's start, and both are compared from there. The starts `(i, j)` and the
/// length of the stretch where both run, or `None` if the lower one never gets there.
pub fn overlap(a: &[f64], b: &[f64]) -> Option<((usize, usize), usize)> {
    let (&a0, &b0) = (a.first()?, b.first()?);
    let start = if a0 < b0 {
        (a.iter().position(|&v| v >= b0)?, 0)
    } else {
        (0, b.iter().position(|&v| v >= a0)?)
    };
    let len = (a.len() - start.0).min(b.len() - start.1);
    (len > 0).then_some((start, len))
}

/// How much higher curve `a` gets than curve `b` over their overlap (raw values, aligned on
/// the smoothed ones): the best of `a` there minus the best of `b`. Without an overlap: how far
/// `a` lies wholly above `b` (positive), else 0.
pub fn best_score_diff(a: &[f64], a_smooth: &[f64], b: &[f64], b_smooth: &[f64]) -> f64 {
    match overlap(a_smooth, b_smooth) {
        Some(((i, j), len)) => max(&a[i..i + len]) - max(&b[j..j + len]),
        None => {
            let (amin, bmax) = (min(a), max(b));
            if amin > bmax {
                amin - bmax
            } else {
                0.0
            }
        }
    }
}

/// The one-sided binomial test that curve `a` is above curve `b`: over their overlap, how often
/// `a`'s raw value beats `b`'s at the same place, against a fair coin. Without an overlap: 0
/// when `a` lies wholly above `b`, 1 when wholly below, else the test over both curves from
/// their starts.
pub fn binomial_p(a: &[f64], a_smooth: &[f64], b: &[f64], b_smooth: &[f64]) -> f64 {
    let ((i, j), len) = match overlap(a_smooth, b_smooth) {
        Some(o) => o,
        None => {
            if a.is_empty() || b.is_empty() {
                return 1.0;
            }
            if min(a) > max(b) {
                return 0.0;
            }
            if max(a) < min(b) {
                return 1.0;
            }
            ((0, 0), a.len().min(b.len()))
        }
    };
    let wins = a[i..i + len]
        .iter()
        .zip(&b[j..j + len])
        .filter(|(x, y)| x > y)
        .count();
    binomial_tail(wins as u64, len as u64)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}
