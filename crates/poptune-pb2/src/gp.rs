//! Gaussian-process regression with the time-varying kernel: the log marginal likelihood
//! and its gradient (through a Cholesky factor), the fit of the hyperparameters, and the
//! likelihoods of every leading window from one factorisation.

use faer::Mat;

use crate::kernel::{Coef, Hyper, Pair, Shape, BOUNDS};
use crate::lbfgs::{self, Settings};
use crate::linalg::Factor;

/// Added to the diagonal, relative to σ², so that a factorisation near the noise's lower
/// bound stays well conditioned.
pub(crate) const JITTER: f64 = 1e-8;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The pair quantities of `n` inputs, lower triangle packed column by column (the order in
/// which the Gram matrix is filled).
pub(crate) struct Pairs {
    n: usize,
    pairs: Vec<Pair>,
}

impl Pairs {
    /// The pairs of the first `n` inputs of `x` (row-major, `shape.dim()` columns).
    pub fn new(shape: Shape, x: &[f64], n: usize) -> Pairs {
        let d = shape.dim();
        let mut pairs = Vec::with_capacity(n * (n + 1) / 2);
        for j in 0..n {
            for i in j..n {
                pairs.push(shape.pair(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]));
            }
        }
        Pairs { n, pairs }
    }
}

/// The diagonal's addition: the noise and the jitter.
pub(crate) fn diag(h: &Hyper) -> f64 {
    h.noise + JITTER * h.variance
}

/// The covariance matrix (lower triangle) of the first `n` inputs of `x`, noise and jitter on
/// the diagonal.
pub(crate) fn gram(shape: Shape, h: &Hyper, x: &[f64], n: usize) -> Mat<f64> {
    let d = shape.dim();
    let c = Coef::new(h);
    let add = diag(h);
    let mut a = Mat::zeros(n, n);
    for j in 0..n {
        let xj = &x[j * d..(j + 1) * d];
        for i in j..n {
            let k = shape.k_fast(&c, shape.pair(&x[i * d..(i + 1) * d], xj));
            a[(i, j)] = if i == j { k + add } else { k };
        }
    }
    a
}

/// The log marginal likelihood of targets `y` and, with `grad`, its gradient with respect to
/// `[ln σ², ln ℓ, ln ε, ln noise]`. `None` when the covariance cannot be factorised.
pub(crate) fn lml(
    shape: Shape,
    h: &Hyper,
    pairs: &Pairs,
    y: &[f64],
    grad: bool,
) -> Option<(f64, [f64; 4])> {
    let n = y.len();
    let add = diag(h);
    let c = Coef::new(h);
    let mut a = Mat::zeros(n, n);
    // With the gradient, dK/dθ of each pair (packed like the pairs) for the trace below.
    let mut dks: Vec<[f64; 3]> = Vec::with_capacity(if grad { pairs.pairs.len() } else { 0 });
    let mut at = 0;
    for j in 0..n {
        for i in j..n {
            let p = pairs.pairs[at];
            at += 1;
            let k = if grad {
                let (k, dk) = shape.k_grad_fast(&c, p);
                dks.push(dk);
                k
            } else {
                shape.k_fast(&c, p)
            };
            a[(i, j)] = if i == j { k + add } else { k };
        }
    }
    let factor = Factor::new(a)?;
    let alpha = factor.solve(y);
    let fit: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
    let value = -0.5 * fit - 0.5 * factor.log_det(n) - 0.5 * n as f64 * LN_2PI;
    if !value.is_finite() {
        return None;
    }
    let mut g = [0.0; 4];
    if grad {
        // d lml / dθ = ½ tr((α αᵀ - K⁻¹) dK/dθ), summed over the lower triangle.
        let inv = factor.inverse();
        let mut at = 0;
        for j in 0..n {
            for i in j..n {
                let w = alpha[i] * alpha[j] - inv[(i, j)];
                let f = if i == j { 0.5 } else { 1.0 };
                for (gk, dkk) in g.iter_mut().zip(dks[at]) {
                    *gk += f * w * dkk;
                }
                if i == j {
                    g[3] += 0.5 * w * h.noise;
                }
                at += 1;
            }
        }
    }
    Some((value, g))
}

/// Fits the hyperparameters by maximising the log marginal likelihood (in log space, inside
/// the bounds) from `start`. Returns the hyperparameters and their likelihood, or `None` if
/// no point could be evaluated.
pub(crate) fn fit(
    shape: Shape,
    pairs: &Pairs,
    y: &[f64],
    start: Hyper,
    max_iter: usize,
) -> Option<(Hyper, f64)> {
    debug_assert_eq!(pairs.n, y.len());
    let lo: Vec<f64> = BOUNDS.iter().map(|b| b.0.ln()).collect();
    let hi: Vec<f64> = BOUNDS.iter().map(|b| b.1.ln()).collect();
    let settings = Settings {
        max_iter,
        gtol: 1e-5,
        ftol: 1e-9,
        memory: 6,
    };
    let m = lbfgs::minimize(
        |p| {
            crate::phase::count("#fit evals", 1);
            lml(shape, &Hyper::from_log(p), pairs, y, true)
                .map(|(v, g)| (-v, g.iter().map(|x| -x).collect()))
        },
        &start.to_log(),
        &lo,
        &hi,
        settings,
    );
    m.f.is_finite().then(|| (Hyper::from_log(&m.x), -m.f))
}

/// Windows solved together in [`window_lmls`]: each group's solve runs on the leading block
/// of its longest window only.
const GROUP: usize = 8;

/// The log marginal likelihood of each leading window from one factor: window `w` is the GP
/// on the first `targets[w].len()` inputs, with those targets (`None`: not scored). The factor
/// of a leading block is the leading block of the factor, and the forward solve of a leading
/// block is the prefix of the forward solve with any continuation, so each group of windows
/// takes one triangular solve with several right-hand sides.
pub(crate) fn window_lmls(factor: &Factor, targets: &[Option<Vec<f64>>]) -> Vec<Option<f64>> {
    let n = factor.len();
    let mut out = vec![None; targets.len()];
    let mut order: Vec<usize> = (0..targets.len())
        .filter(|&w| targets[w].as_ref().is_some_and(|y| y.len() <= n))
        .collect();
    order.sort_by_key(|&w| targets[w].as_ref().map_or(0, Vec::len));
    for group in order.chunks(GROUP) {
        let ys: Vec<&Vec<f64>> = group.iter().filter_map(|&w| targets[w].as_ref()).collect();
        let rows = ys.iter().map(|y| y.len()).max().unwrap_or(0);
        let mut z = Mat::from_fn(rows, ys.len(), |i, c| ys[c].get(i).copied().unwrap_or(0.0));
        factor.forward(z.as_mut());
        for (c, (&w, y)) in group.iter().zip(&ys).enumerate() {
            let len = y.len();
            let fit: f64 = (0..len).map(|i| z[(i, c)] * z[(i, c)]).sum();
            let value = -0.5 * fit - 0.5 * factor.log_det(len) - 0.5 * len as f64 * LN_2PI;
            out[w] = value.is_finite().then_some(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hyper = Hyper {
        variance: 1.5,
        lengthscale: 0.8,
        epsilon: 0.3,
        noise: 0.2,
    };
    const SHAPE: Shape = Shape { se: 1, cat: 0 };

    #[test]
    fn lml_matches_a_hand_computed_case() {
        // Two inputs [t, x]: (0, 0) and (1, 1). k12 = 1.5·exp(-1/0.8)·0.7^0.5.
        let x = [0.0, 0.0, 1.0, 1.0];
        let y = [1.0, -1.0];
        let k12 = 1.5 * (-1.0f64 / 0.8).exp() * 0.7f64.sqrt();
        let d = 1.5 + 0.2 + JITTER * 1.5;
        // K = [[d, k12], [k12, d]]: det = d² - k12², K⁻¹y = [1, -1] / (d - k12) for y = [1, -1].
        let det = d * d - k12 * k12;
        let quad = 2.0 / (d - k12);
        let want = -0.5 * quad - 0.5 * det.ln() - LN_2PI;
        let pairs = Pairs::new(SHAPE, &x, 2);
        let (got, _) = lml(SHAPE, &H, &pairs, &y, false).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    fn data() -> (Vec<f64>, Vec<f64>) {
        let n = 12;
        let x: Vec<f64> = (0..n)
            .flat_map(|i| [i as f64 / n as f64, ((i * 7) % 5) as f64 / 5.0])
            .collect();
        let y: Vec<f64> = (0..n).map(|i| ((i * 3) % 4) as f64 - 1.5).collect();
        (x, y)
    }

    #[test]
    fn lml_gradient_matches_finite_differences() {
        let (x, y) = data();
        let pairs = Pairs::new(SHAPE, &x, y.len());
        let (_, g) = lml(SHAPE, &H, &pairs, &y, true).unwrap();
        for (i, gi) in g.iter().enumerate() {
            let (mut up, mut dn) = (H.to_log(), H.to_log());
            up[i] += 1e-6;
            dn[i] -= 1e-6;
            let f = |p: &[f64; 4]| {
                lml(SHAPE, &Hyper::from_log(p), &pairs, &y, false)
                    .unwrap()
                    .0
            };
            let fd = (f(&up) - f(&dn)) / 2e-6;
            assert!(
                (fd - gi).abs() < 1e-5 * (1.0 + fd.abs()),
                "{i}: {fd} vs {gi}"
            );
        }
    }

    #[test]
    fn fit_improves_the_likelihood() {
        let (x, y) = data();
        let pairs = Pairs::new(SHAPE, &x, y.len());
        let start = Hyper::default();
        let (before, _) = lml(SHAPE, &start, &pairs, &y, false).unwrap();
        let (h, after) = fit(SHAPE, &pairs, &y, start, 50).unwrap();
        assert!(after > before, "{after} <= {before}");
        for (v, (lo, hi)) in h.to_log().iter().zip(BOUNDS) {
            assert!(*v >= lo.ln() - 1e-12 && *v <= hi.ln() + 1e-12);
        }
    }

    #[test]
    fn window_likelihoods_from_one_factor_equal_separate_ones() {
        let (x, y) = data();
        let factor = Factor::new(gram(SHAPE, &H, &x, y.len())).unwrap();
        // More windows than a group, out of order, one not scored; each with its own targets.
        let lens = [12, 3, 5, 7, 4, 9, 6, 10, 11, 8, 2];
        let targets: Vec<Option<Vec<f64>>> = lens
            .iter()
            .map(|&len| (len != 6).then(|| y[..len].iter().map(|v| v * len as f64).collect()))
            .collect();
        let got = window_lmls(&factor, &targets);
        for ((len, g), t) in lens.into_iter().zip(got).zip(&targets) {
            let Some(t) = t else {
                assert!(g.is_none());
                continue;
            };
            let pairs = Pairs::new(SHAPE, &x, len);
            let (want, _) = lml(SHAPE, &H, &pairs, t, false).unwrap();
            assert!(
                (g.unwrap() - want).abs() < 1e-9 * want.abs().max(1.0),
                "{len}"
            );
        }
    }

    #[test]
    fn gram_matches_the_pairs_kernel() {
        let (x, y) = data();
        let n = y.len();
        let a = gram(SHAPE, &H, &x, n);
        let d = SHAPE.dim();
        for i in 0..n {
            for j in 0..=i {
                let k = SHAPE.k(
                    &H,
                    SHAPE.pair(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]),
                );
                let want = if i == j { k + diag(&H) } else { k };
                assert!((a[(i, j)] - want).abs() < 1e-13);
            }
        }
    }
}
