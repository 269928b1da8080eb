//! One PB2 decision: choose the window, fit the GP, pick categories (PB2-Mix), maximise UCB.

use poptune::Hyperparams;
use rand::Rng;

use crate::bandit::{self, Play};
use crate::data::Row;
use crate::gp::{self, Pairs};
use crate::kernel::{Hyper, Shape};
use crate::lbfgs::{self, Settings};
use crate::linalg::Factor;
use crate::norm::{standardise, Encoding, MinMax};
use crate::phase;
use crate::posterior::Posterior;
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

/// The GP the acquisition uses: conditioned on the newest `len` rows (targets `y`), with the
/// normalisation of `t` and the start reward that its inputs used.
struct Model {
    post: Posterior,
    len: usize,
    y: Vec<f64>,
    t: MinMax,
    r: MinMax,
    hyper: Hyper,
}

/// The literal reading (`Config::exact_window_scan`): each window normalised on its own and
/// fitted (warm-started from the previous), the likeliest refitted and factored afresh.
fn exact_model(config: &Config, enc: &Encoding, shape: Shape, newest: &[&Row]) -> Option<Model> {
    let n = newest.len();
    let mut len = n;
    let mut start = Hyper::default();
    if n > config.min_window {
        let mut best: Option<f64> = None;
        let mut from = Hyper::default();
        for l in lengths(config, n) {
            let Some(w) = window(enc, newest, l) else {
                continue;
            };
            let pairs = Pairs::new(shape, &w.x, l);
            if let Some((h, lml)) = gp::fit(shape, &pairs, &w.y, from, config.fit_iters) {
                from = h;
                if best.is_none_or(|b| lml > b) {
                    (best, len, start) = (Some(lml), l, h);
                }
            }
        }
    }
    let w = window(enc, newest, len)?;
    let m = len.min(config.fit_rows.max(2));
    let pairs = Pairs::new(shape, &w.x, m);
    let (hyper, _) = gp::fit(shape, &pairs, &w.y[..m], start, config.fit_iters)?;
    let post = Posterior::new(shape, hyper, w.x, &w.y)?;
    Some(Model {
        post,
        len,
        y: w.y,
        t: w.t,
        r: w.r,
        hyper,
    })
}

/// The default (see `docs/pb2.md`): the inputs normalised over all rows; the hyperparameters
/// fitted once, on the newest `fit_rows` rows; the covariance of all rows (newest first)
/// factored once. Every window's likelihood comes from that factor's leading blocks, and the
/// likeliest window's GP is conditioned on its leading block.
fn shared_model(config: &Config, enc: &Encoding, shape: Shape, newest: &[&Row]) -> Option<Model> {
    let n = newest.len();
    let t = MinMax::fit(newest.iter().map(|r| r.t));
    let r = MinMax::fit(newest.iter().map(|r| r.r_start));
    let x = inputs(enc, newest, t, r);
    let raw: Vec<f64> = newest.iter().map(|r| r.y).collect();
    let m = n.min(config.fit_rows.max(2));
    let whole = || standardise(&raw).map(|y| y[..m].to_vec());
    let y_fit = if n <= config.min_window {
        whole()
    } else {
        standardise(&raw[..m]).or_else(whole)
    }?;
    phase::mark("other");
    let pairs = Pairs::new(shape, &x, m);
    let (hyper, _) = gp::fit(shape, &pairs, &y_fit, Hyper::default(), config.fit_iters)?;
    phase::mark("fit");
    let gram = gp::gram(shape, &hyper, &x, n);
    phase::mark("gram");
    let factor = Factor::new(gram)?;
    phase::mark("factor");
    let (len, y) = if n <= config.min_window {
        (n, standardise(&raw)?)
    } else {
        let lens = lengths(config, n);
        let mut targets: Vec<Option<Vec<f64>>> =
            lens.iter().map(|&l| standardise(&raw[..l])).collect();
        let lmls = gp::window_lmls(&factor, &targets);
        let mut best: Option<(f64, usize)> = None;
        for (w, lml) in lmls.into_iter().enumerate() {
            if let Some(v) = lml.filter(|v| best.is_none_or(|(b, _)| *v > b)) {
                best = Some((v, w));
            }
        }
        match best {
            Some((_, w)) => (lens[w], targets[w].take()?),
            None => (n, standardise(&raw)?),
        }
    };
    phase::mark("scan");
    let post = Posterior::from_factor(shape, hyper, x, factor, &y)?;
    phase::mark("posterior");
    Some(Model {
        post,
        len,
        y,
        t,
        r,
        hyper,
    })
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
    let model = if config.exact_window_scan {
        exact_model(config, enc, shape, &newest)
    } else {
        shared_model(config, enc, shape, &newest)
    }?;
    let len = model.len;

    // PB2-Mix: the categories first, by the bandit on the same normalised rewards.
    let mut cats = Vec::with_capacity(enc.cat.len());
    for (c, cat) in enc.cat.iter().enumerate() {
        let plays: Vec<Play> = newest[..len]
            .iter()
            .zip(&model.y)
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

    let z_t = model.t.apply(q.donor_t);
    let z_r = model.r.apply(q.donor_r);
    let head = |units: &[f64], codes: &[f64]| -> Vec<f64> {
        let mut z = vec![z_t, z_r];
        z.extend_from_slice(units);
        z.extend_from_slice(codes);
        z
    };
    let codes: Vec<f64> = cats.iter().map(|&a| a as f64).collect();

    // Batch diversity: the members already given hyperparameters at this time join a second
    // GP (same hyperparameters, zero targets), whose variance the acquisition uses.
    let xc: Vec<f64> = q
        .chosen_now
        .iter()
        .flat_map(|h| head(&enc.cont_units(h), &enc.cat_codes(h)))
        .collect();
    phase::mark("other");
    let post = model.post.with_chosen(xc)?;
    phase::mark("posterior");
    let beta = 0.2 + (0.4 * post.variance_len() as f64).ln().max(0.0);
    let units = maximise_ucb(config, enc, &post, beta, &head(&[], &codes), rng);
    phase::mark("ucb");

    let mut h = q.space.project(q.base);
    for (c, u) in enc.cont.iter().zip(&units) {
        h.insert(&c.name, c.value_at(*u));
    }
    set_cats(&mut h, enc, &cats);
    Some(Suggestion {
        h: q.space.project(&h),
        window: len,
        hyper: Some(model.hyper),
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
/// The starts run together, so that each round's points share their triangular solves.
fn maximise_ucb(
    config: &Config,
    enc: &Encoding,
    post: &Posterior,
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
    let mut z = fixed[..FIRST_H].to_vec();
    z.extend(std::iter::repeat_n(0.5, d));
    z.extend_from_slice(&fixed[FIRST_H..]);
    let slice = post.slice(&z, &cols);
    let objective = |us: &[Vec<f64>]| -> Vec<Option<(f64, Vec<f64>)>> {
        phase::count("#ucb rounds", 1);
        phase::count("#ucb points", us.len());
        post.evaluate(&slice, us)
            .into_iter()
            .map(|e| {
                let value = -(e.mean + kappa * e.var);
                let grad = (e.mean_grad.iter().zip(&e.var_grad))
                    .map(|(a, b)| -(a + kappa * b))
                    .collect();
                value.is_finite().then_some((value, grad))
            })
            .collect()
    };
    let (lo, hi) = (vec![0.0; d], vec![1.0; d]);
    let settings = Settings {
        max_iter: config.acq_iters,
        gtol: 1e-6,
        ftol: 1e-9,
        memory: 6,
    };
    let x0s: Vec<Vec<f64>> = (0..config.starts.max(1))
        .map(|_| (0..d).map(|_| rng.random::<f64>()).collect())
        .collect();
    let mut best: Option<lbfgs::Minimum> = None;
    for m in lbfgs::minimize_many(objective, &x0s, &lo, &hi, settings) {
        if best.as_ref().is_none_or(|b| m.f < b.f) {
            best = Some(m);
        }
    }
    best.map(|b| b.x).unwrap_or_else(|| vec![0.5; d])
}
