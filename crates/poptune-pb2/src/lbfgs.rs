//! A small projected L-BFGS for box-constrained minimisation.
//!
//! Written here rather than taken from a crate: the well-kept pure-Rust optimiser (`argmin`)
//! has L-BFGS without bounds, and the L-BFGS-B crates wrap the Fortran or C original. PB2's
//! problems are tiny (four kernel hyperparameters; a handful of hyperparameters in the unit
//! box), so a projected variant is enough: the quasi-Newton direction is computed on the free
//! variables (those not held at a bound by the gradient), and the step follows the projected
//! path `clamp(x + a·d)` with Armijo backtracking.

use std::collections::VecDeque;

/// Settings of one minimisation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Most iterations (each makes one or more evaluations).
    pub max_iter: usize,
    /// Stop when the projected gradient's largest entry is below this.
    pub gtol: f64,
    /// Stop when the objective changes by less than this, relative to its size.
    pub ftol: f64,
    /// Correction pairs kept.
    pub memory: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_iter: 50,
            gtol: 1e-6,
            ftol: 1e-10,
            memory: 6,
        }
    }
}

/// The best point found and its value.
#[derive(Clone, Debug)]
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
}

/// Minimises `f` over the box `[lo, hi]` from `x0`. `f` returns the value and the gradient,
/// or `None` where it cannot be evaluated (taken as +∞, so the step is shortened).
pub(crate) fn minimize<F>(mut f: F, x0: &[f64], lo: &[f64], hi: &[f64], s: Settings) -> Minimum
where
    F: FnMut(&[f64]) -> Option<(f64, Vec<f64>)>,
{
    let batch = |xs: &[Vec<f64>]| xs.iter().map(|x| f(x)).collect();
    let mut out = minimize_many(batch, &[x0.to_vec()], lo, hi, s);
    out.pop().unwrap_or(Minimum {
        x: x0.to_vec(),
        f: f64::INFINITY,
    })
}

/// Minimises from every start in `x0s` at once: each start follows exactly the path
/// [`minimize`] would give it, but the points the starts need are evaluated together, one
/// call of `f` per round (so that `f` can share work between them).
pub(crate) fn minimize_many<F>(
    mut f: F,
    x0s: &[Vec<f64>],
    lo: &[f64],
    hi: &[f64],
    s: Settings,
) -> Vec<Minimum>
where
    F: FnMut(&[Vec<f64>]) -> Vec<Option<(f64, Vec<f64>)>>,
{
    let mut runs: Vec<Run> = x0s.iter().map(|x0| Run::new(x0, lo, hi)).collect();
    loop {
        let active: Vec<usize> = (0..runs.len()).filter(|&i| !runs[i].done).collect();
        if active.is_empty() {
            break;
        }
        let points: Vec<Vec<f64>> = active.iter().map(|&i| runs[i].want.clone()).collect();
        let values = f(&points);
        for (k, &i) in active.iter().enumerate() {
            let value = values.get(k).cloned().flatten();
            runs[i].take(value, lo, hi, s);
        }
    }
    runs.into_iter()
        .map(|r| Minimum { x: r.x, f: r.fx })
        .collect()
}

/// Where a run stands: its point `want` is evaluated next.
enum Phase {
    /// `want` is the start.
    Start,
    /// `want` is a trial point along `d` at `step`, after `tries` shorter ones were refused.
    Search {
        d: Vec<f64>,
        step: f64,
        tries: usize,
    },
}

/// One start's state of the projected L-BFGS.
struct Run {
    x: Vec<f64>,
    fx: f64,
    g: Vec<f64>,
    pairs: VecDeque<(Vec<f64>, Vec<f64>)>,
    iter: usize,
    want: Vec<f64>,
    phase: Phase,
    done: bool,
}

impl Run {
    fn new(x0: &[f64], lo: &[f64], hi: &[f64]) -> Run {
        let x: Vec<f64> = (0..x0.len()).map(|i| clamp(x0[i], lo[i], hi[i])).collect();
        Run {
            want: x.clone(),
            x,
            fx: f64::INFINITY,
            g: Vec::new(),
            pairs: VecDeque::new(),
            iter: 0,
            phase: Phase::Start,
            done: false,
        }
    }

    /// Takes the value at `want` and moves on.
    fn take(&mut self, value: Option<(f64, Vec<f64>)>, lo: &[f64], hi: &[f64], s: Settings) {
        let value = value.filter(|(v, g)| v.is_finite() && finite(g));
        match std::mem::replace(&mut self.phase, Phase::Start) {
            Phase::Start => {
                let Some((fx, g)) = value else {
                    self.done = true;
                    return;
                };
                (self.fx, self.g) = (fx, g);
                self.begin(lo, hi, s);
            }
            Phase::Search { d, step, tries } => {
                let n = self.x.len();
                let xn = std::mem::take(&mut self.want);
                let decrease: f64 = (0..n).map(|i| self.g[i] * (xn[i] - self.x[i])).sum();
                match value {
                    Some((fn_, gn)) if fn_ <= self.fx + 1e-4 * decrease => {
                        self.accept(xn, fn_, gn, s);
                        if !self.done {
                            self.iter += 1;
                            self.begin(lo, hi, s);
                        }
                    }
                    _ if tries + 1 >= 40 => self.done = true,
                    _ => {
                        let step = step * 0.5;
                        self.want = (0..n)
                            .map(|i| clamp(self.x[i] + step * d[i], lo[i], hi[i]))
                            .collect();
                        self.phase = Phase::Search {
                            d,
                            step,
                            tries: tries + 1,
                        };
                    }
                }
            }
        }
    }

    /// An accepted step: the correction pair, the move, and the stop on a small change.
    fn accept(&mut self, xn: Vec<f64>, fn_: f64, gn: Vec<f64>, s: Settings) {
        let n = self.x.len();
        let sv: Vec<f64> = (0..n).map(|i| xn[i] - self.x[i]).collect();
        let yv: Vec<f64> = (0..n).map(|i| gn[i] - self.g[i]).collect();
        let sy: f64 = sv.iter().zip(&yv).map(|(a, b)| a * b).sum();
        if sy > 1e-12 {
            if self.pairs.len() == s.memory {
                self.pairs.pop_front();
            }
            self.pairs.push_back((sv, yv));
        }
        let change = (self.fx - fn_).abs();
        let old = self.fx;
        (self.x, self.fx, self.g) = (xn, fn_, gn);
        if change <= s.ftol * old.abs().max(1.0) {
            self.done = true;
        }
    }

    /// The start of an iteration: the stops, the direction and the first trial point.
    fn begin(&mut self, lo: &[f64], hi: &[f64], s: Settings) {
        let (x, g, n) = (&self.x, &self.g, self.x.len());
        if self.iter >= s.max_iter {
            self.done = true;
            return;
        }
        let free: Vec<bool> = (0..n)
            .map(|i| !((x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0)))
            .collect();
        let pg = (0..n)
            .map(|i| (clamp(x[i] - g[i], lo[i], hi[i]) - x[i]).abs())
            .fold(0.0, f64::max);
        if pg < s.gtol {
            self.done = true;
            return;
        }
        let mut d = direction(g, &free, &self.pairs);
        let mut slope: f64 = d.iter().zip(g).map(|(a, b)| a * b).sum();
        if slope >= 0.0 || !slope.is_finite() {
            d = (0..n).map(|i| if free[i] { -g[i] } else { 0.0 }).collect();
            slope = d.iter().zip(g).map(|(a, b)| a * b).sum();
            self.pairs.clear();
        }
        if slope >= 0.0 {
            self.done = true;
            return;
        }
        let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
        let step = if self.iter == 0 && self.pairs.is_empty() {
            (1.0 / norm).min(1.0)
        } else {
            1.0
        };
        self.want = (0..n)
            .map(|i| clamp(x[i] + step * d[i], lo[i], hi[i]))
            .collect();
        self.phase = Phase::Search { d, step, tries: 0 };
    }
}

/// The two-loop recursion on the free variables: `-H·g`, zero on the fixed ones.
fn direction(g: &[f64], free: &[bool], pairs: &VecDeque<(Vec<f64>, Vec<f64>)>) -> Vec<f64> {
    let mask = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .zip(free)
            .map(|(x, &f)| if f { *x } else { 0.0 })
            .collect()
    };
    let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    let mut q = mask(g);
    let masked: Vec<(Vec<f64>, Vec<f64>, f64)> = pairs
        .iter()
        .filter_map(|(s, y)| {
            let (s, y) = (mask(s), mask(y));
            let sy = dot(&s, &y);
            (sy > 1e-12).then_some((s, y, 1.0 / sy))
        })
        .collect();
    let mut alphas = Vec::with_capacity(masked.len());
    for (s, y, rho) in masked.iter().rev() {
        let a = rho * dot(s, &q);
        q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
        alphas.push(a);
    }
    if let Some((s, y, _)) = masked.last() {
        let gamma = dot(s, y) / dot(y, y).max(1e-300);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for ((s, y, rho), a) in masked.iter().zip(alphas.iter().rev()) {
        let b = rho * dot(y, &q);
        q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
    }
    mask(&q).into_iter().map(|v| -v).collect()
}

fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() {
        lo
    } else {
        v.clamp(lo, hi)
    }
}

fn finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64]) -> Option<(f64, Vec<f64>)> {
        let (a, b) = (x[0], x[1]);
        let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
        let g = vec![
            -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
            200.0 * (b - a * a),
        ];
        Some((f, g))
    }

    #[test]
    fn finds_an_interior_minimum() {
        let s = Settings {
            max_iter: 500,
            ..Settings::default()
        };
        let m = minimize(rosenbrock, &[-1.2, 1.0], &[-5.0, -5.0], &[5.0, 5.0], s);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] - 1.0).abs() < 1e-3,
            "{m:?}"
        );
    }

    #[test]
    fn stops_on_an_active_bound() {
        // The unconstrained minimum (3, -2) lies outside the box; the constrained one is (1, 0).
        let f = |x: &[f64]| {
            let f = (x[0] - 3.0).powi(2) + (x[1] + 2.0).powi(2);
            Some((f, vec![2.0 * (x[0] - 3.0), 2.0 * (x[1] + 2.0)]))
        };
        let m = minimize(
            f,
            &[0.5, 0.5],
            &[0.0, 0.0],
            &[1.0, 1.0],
            Settings::default(),
        );
        assert_eq!(m.x, vec![1.0, 0.0]);
        assert!((m.f - 8.0).abs() < 1e-12);
    }

    #[test]
    fn survives_points_it_cannot_evaluate() {
        let f = |x: &[f64]| {
            if x[0] > 0.6 {
                None
            } else {
                Some(((x[0] - 1.0).powi(2), vec![2.0 * (x[0] - 1.0)]))
            }
        };
        let m = minimize(f, &[0.0], &[0.0], &[1.0], Settings::default());
        assert!(m.x[0] <= 0.6 && m.x[0] > 0.5, "{m:?}");
    }

    #[test]
    fn many_starts_follow_the_single_paths() {
        let starts = vec![
            vec![-1.2, 1.0],
            vec![3.0, -2.0],
            vec![0.5, 0.5],
            vec![9.0, 9.0],
        ];
        let s = Settings {
            max_iter: 200,
            ..Settings::default()
        };
        let (lo, hi) = ([-5.0, -5.0], [5.0, 5.0]);
        let mut rounds = 0;
        let many = minimize_many(
            |xs: &[Vec<f64>]| {
                rounds += 1;
                xs.iter().map(|x| rosenbrock(x)).collect()
            },
            &starts,
            &lo,
            &hi,
            s,
        );
        for (x0, m) in starts.iter().zip(&many) {
            let one = minimize(rosenbrock, x0, &lo, &hi, s);
            assert_eq!(one.x, m.x);
            assert_eq!(one.f, m.f);
        }
        assert!(rounds > 1);
    }
}
