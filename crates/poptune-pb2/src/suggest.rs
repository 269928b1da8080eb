//! One PB2 decision: choose the window, fit the GP, pick categories (PB2-Mix), maximise UCB.

use poptune::Hyperparams;
use rand::Rng;

use crate::bandit::{self, Play};
use crate::data::Row;
use crate::gp::{self, Pairs, Posterior};
use crate::kernel::{Hyper, Shape};
use crate::lbfgs::{self, Settings};
use crate::norm::{standardise, Encoding, MinMax};
use crate::{Config, Query, Suggestion};

/// The GP's view of the newest `len` rows: inputs normalised over them, targets
/// standardised and clipped.
struct Window {
    x: Vec<f64>,
    y: Vec<f64>,
    t: MinMax,
    r: MinMax,
}

/// Column of the first continuous hyperparameter in an input (after `t` and `r_start`).
const FIRST_H: usize = 2;

fn inputs(enc: &Encoding, rows: &[&Row], t: MinMax, r: MinMax) -> Vec<f64> {
    rows.iter()
        .flat_map(|row| {
            let mut v = vec![t.apply(row.t), r.apply(row.r_start)];
            v.extend(enc.cont_units(&row.h));
            v.extend(enc.cat_codes(&row.h));
            v
        })
        .collect()
}

/// `newest` holds the rows newest first; the window is its first `len`.
fn window(enc: &Encoding, newest: &[&Row], len: usize) -> Option<Window> {
    let rows = &newest[..len];
    let t = MinMax::fit(rows.iter().map(|r| r.t));
    let r = MinMax::fit(rows.iter().map(|r| r.r_start));
    let raw: Vec<f64> = rows.iter().map(|r| r.y).collect();
    let y = standardise(&raw)?;
    Some(Window {
        x: inputs(enc, rows, t, r),
        y,
        t,
        r,
    })
}

/// The window lengths tried: `min, min + step, …` up to `n`.
fn lengths(config: &Config, n: usize) -> Vec<usize> {
    let step = config.window_step.max(1);
    (config.min_window.max(2)..=n).step_by(step).collect()
}

/// Chooses the window length (the likeliest, among [`lengths`]) and a starting point for
/// the final fit.
fn choose_length(config: &Config, enc: &Encoding, shape: Shape, newest: &[&Row]) -> (usize, Hyper) {
    let n = newest.len();
    if n <= config.min_window {
        return (n, Hyper::default());
    }
    let lens = lengths(config, n);
    let mut best: Option<(f64, usize)> = None;
    let mut start = Hyper::default();
    if config.exact_window_scan {
        // Each window normalised on its own and fitted (warm-started from the previous).
        let mut from = Hyper::default();
        for &len in &lens {
            let Some(w) = window(enc, newest, len) else {
                continue;
            };
            let pairs = Pairs::new(shape, &w.x, len);
            if let Some((h, lml)) = gp::fit(shape, &pairs, &w.y, from, config.fit_iters) {
                from = h;
                if best.is_none_or(|(b, _)| lml > b) {
                    best = Some((lml, len));
                    start = h;
                }
            }
        }
    } else {
        // Shared hyperparameters, fitted on the smallest window; all windows' likelihoods
        // then come from one factorisation (inputs normalised over all rows).
        let all = Pairs::new(shape, &shared_inputs(enc, newest), n);
        let raw: Vec<f64> = newest.iter().map(|r| r.y).collect();
        let small = lens[0];
        let Some(y0) = standardise(&raw[..small]) else {
            return (n, start);
        };
        let x = shared_inputs(enc, &newest[..small]);
        let fitted = gp::fit(
            shape,
            &Pairs::new(shape, &x, small),
            &y0,
            start,
            config.fit_iters,
        );
        if let Some((h, _)) = fitted {
            start = h;
            let lmls = gp::prefix_lmls(shape, &h, &all, &lens, |len| standardise(&raw[..len]));
            for (&len, lml) in lens.iter().zip(lmls) {
                if let Some(v) = lml {
                    if best.is_none_or(|(b, _)| v > b) {
                        best = Some((v, len));
                    }
                }
            }
        }
    }
    (best.map_or(n, |(_, len)| len), start)
}

/// The inputs of `rows` normalised over the rows given (the shared scan's normalisation).
fn shared_inputs(enc: &Encoding, rows: &[&Row]) -> Vec<f64> {
    let t = MinMax::fit(rows.iter().map(|r| r.t));
    let r = MinMax::fit(rows.iter().map(|r| r.r_start));
    inputs(enc, rows, t, r)
}

/// The decision; `None` where the data cannot support a GP (then the caller falls back).
pub(crate) fn decide(
    q: &Query<'_>,
    config: &Config,
    enc: &Encoding,
    rng: &mut impl Rng,
) -> Option<Suggestion> {
    if !(q.donor_t.is_finite() && q.donor_r.is_finite()) {
        return None;
    }
    let mut newest: Vec<&Row> = q
        .data
        .rows()
        .rev()
        .filter(|r| r.t.is_finite() && r.r_start.is_finite() && r.y.is_finite())
        .collect();
    newest.truncate(config.max_rows.max(2));
    if newest.len() < 2 {
        return None;
    }
    let shape = Shape {
        se: 1 + enc.cont.len(),
        cat: enc.cat.len(),
    };
    let (len, start) = choose_length(config, enc, shape, &newest);
    let w = window(enc, &newest, len)?;
    let m = len.min(config.fit_rows.max(2));
    let pairs = Pairs::new(shape, &w.x, m);
    let (hyper, _) = gp::fit(shape, &pairs, &w.y[..m], start, config.fit_iters)?;
    let mean_gp = Posterior::new(shape, hyper, w.x.clone(), &w.y)?;

    // PB2-Mix: the categories first, by the bandit on the same normalised rewards.
    let mut cats = Vec::with_capacity(enc.cat.len());
    for (c, cat) in enc.cat.iter().enumerate() {
        let plays: Vec<Play> = newest[..len]
            .iter()
            .zip(&w.y)
            .map(|(row, &reward)| Play {
                t: row.t,
                arm: cat
                    .values
                    .iter()
                    .position(|v| Some(v) == row.h.get(&cat.name)),
                reward,
            })
            .collect();
        let p = bandit::probabilities(cat.values.len(), &plays);
        let taken: Vec<usize> = taken_arms(enc, c, q.chosen_now);
        cats.push(bandit::draw(&p, &taken, rng));
    }

    let z_t = w.t.apply(q.donor_t);
    let z_r = w.r.apply(q.donor_r);
    let head = |units: &[f64], codes: &[f64]| -> Vec<f64> {
        let mut z = vec![z_t, z_r];
        z.extend_from_slice(units);
        z.extend_from_slice(codes);
        z
    };
    let codes: Vec<f64> = cats.iter().map(|&a| a as f64).collect();

    // Batch diversity: the members already given hyperparameters at this time join a second
    // GP (same hyperparameters, zero targets), whose variance the acquisition uses.
    let var_gp = if q.chosen_now.is_empty() {
        None
    } else {
        let mut x = w.x.clone();
        for h in q.chosen_now {
            x.extend(head(&enc.cont_units(h), &enc.cat_codes(h)));
        }
        let zeros = vec![0.0; len + q.chosen_now.len()];
        Some(Posterior::new(shape, hyper, x, &zeros)?)
    };
    let var = var_gp.as_ref().unwrap_or(&mean_gp);
    let beta = 0.2 + (0.4 * var.len() as f64).ln().max(0.0);
    let units = maximise_ucb(config, enc, &mean_gp, var, beta, &head(&[], &codes), rng);

    let mut h = q.space.project(q.base);
    for (c, u) in enc.cont.iter().zip(&units) {
        h.insert(&c.name, c.value_at(*u));
    }
    set_cats(&mut h, enc, &cats);
    Some(Suggestion {
        h: q.space.project(&h),
        window: len,
        hyper: Some(hyper),
        fallback: false,
    })
}

/// The arms of categorical parameter `c` that `chosen` already hold.
pub(crate) fn taken_arms(enc: &Encoding, c: usize, chosen: &[Hyperparams]) -> Vec<usize> {
    let cat = &enc.cat[c];
    chosen
        .iter()
        .filter_map(|h| cat.values.iter().position(|v| Some(v) == h.get(&cat.name)))
        .collect()
}

/// Writes the chosen arms into `h`.
pub(crate) fn set_cats(h: &mut Hyperparams, enc: &Encoding, arms: &[usize]) {
    for (cat, &a) in enc.cat.iter().zip(arms) {
        if let Some(v) = cat.values.get(a) {
            h.insert(&cat.name, v.clone());
        }
    }
}

/// Maximises `μ(z) + √β·σ²(z)` over the continuous hyperparameters in `[0, 1]^d` from
/// `config.starts` random starts; `z` is `fixed` (`[t, r, cats…]`) with the units spliced in.
fn maximise_ucb(
    config: &Config,
    enc: &Encoding,
    mean_gp: &Posterior,
    var_gp: &Posterior,
    beta: f64,
    fixed: &[f64],
    rng: &mut impl Rng,
) -> Vec<f64> {
    let d = enc.cont.len();
    if d == 0 {
        return Vec::new();
    }
    let cols: Vec<usize> = (FIRST_H..FIRST_H + d).collect();
    let kappa = beta.sqrt();
    let objective = |u: &[f64]| -> Option<(f64, Vec<f64>)> {
        let mut z = fixed[..FIRST_H].to_vec();
        z.extend_from_slice(u);
        z.extend_from_slice(&fixed[FIRST_H..]);
        let (mut gm, mut gv) = (vec![0.0; d], vec![0.0; d]);
        let m = mean_gp.mean(&z, &cols, &mut gm);
        let v = var_gp.variance(&z, &cols, &mut gv);
        let value = -(m + kappa * v);
        let grad = gm.iter().zip(&gv).map(|(a, b)| -(a + kappa * b)).collect();
        value.is_finite().then_some((value, grad))
    };
    let (lo, hi) = (vec![0.0; d], vec![1.0; d]);
    let settings = Settings {
        max_iter: config.acq_iters,
        gtol: 1e-6,
        ftol: 1e-9,
        memory: 6,
    };
    let mut best: Option<lbfgs::Minimum> = None;
    for _ in 0..config.starts.max(1) {
        let x0: Vec<f64> = (0..d).map(|_| rng.random::<f64>()).collect();
        let m = lbfgs::minimize(objective, &x0, &lo, &hi, settings);
        if best.as_ref().is_none_or(|b| m.f < b.f) {
            best = Some(m);
        }
    }
    best.map(|b| b.x).unwrap_or_else(|| vec![0.5; d])
}
