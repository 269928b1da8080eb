//! Gaussian-process regression with the time-varying kernel: the log marginal likelihood
//! and its gradient (through a Cholesky factor), the fit of the hyperparameters, and the
//! likelihoods of every leading window from one factorisation.

use faer::{Mat, MatMut};

use crate::kernel::{Coef, Hyper, Shape, BOUNDS};
use crate::lbfgs::{self, Settings};
use crate::linalg::Factor;
use crate::vexp::exp_in_place;

/// Added to the diagonal, relative to σ², so that a factorisation near the noise's lower
/// bound stays well conditioned.
pub(crate) const JITTER: f64 = 1e-8;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The pair quantities of `n` inputs, lower triangle packed column by column (the order in
/// which the Gram matrix is filled), one array per quantity.
pub(crate) struct Pairs {
    n: usize,
    d2: Vec<f64>,
    dt: Vec<f64>,
    ov: Vec<f64>,
}

impl Pairs {
    /// The pairs of the first `n` inputs of `x` (row-major, `shape.dim()` columns).
    pub fn new(shape: Shape, x: &[f64], n: usize) -> Pairs {
        let d = shape.dim();
        let len = n * (n + 1) / 2;
        let (mut d2, mut dt, mut ov) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        for j in 0..n {
            for i in j..n {
                let p = shape.pair(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
                d2.push(p.d2);
                dt.push(p.dt);
                ov.push(p.ov);
            }
        }
        Pairs { n, d2, dt, ov }
    }

    /// The kernel of every pair, and its squared-exponential part (the part that depends on
    /// the lengthscale; the whole kernel for plain PB2): [`Shape::k_grad_fast`]'s `k` and
    /// `se_part`, with the exponentials taken together.
    fn kernel(&self, shape: Shape, c: &Coef) -> (Vec<f64>, Option<Vec<f64>>) {
        if shape.cat == 0 {
            let mut k: Vec<f64> = (self.dt.iter().zip(&self.d2))
                .map(|(dt, d2)| c.half_ln_keep * dt - d2 * c.inv_ls)
                .collect();
            exp_in_place(&mut k);
            k.iter_mut().for_each(|v| *v *= c.variance);
            return (k, None);
        }
        let mut vt: Vec<f64> = self.dt.iter().map(|dt| c.half_ln_keep * dt).collect();
        exp_in_place(&mut vt);
        let mut se: Vec<f64> = self.d2.iter().map(|d2| -d2 * c.inv_ls).collect();
        exp_in_place(&mut se);
        let mut k = Vec::with_capacity(se.len());
        for ((v, s), ov) in vt.iter_mut().zip(se.iter_mut()).zip(&self.ov) {
            let (a, b) = shape.weights(*ov);
            let vt = c.variance * *v;
            *s *= vt * a;
            k.push(*s + vt * b);
        }
        (k, Some(se))
    }
}

/// The diagonal's addition: the noise and the jitter.
pub(crate) fn diag(h: &Hyper) -> f64 {
    h.noise + JITTER * h.variance
}

/// Orders from which [`gram`] fills its columns on two threads.
const PAR_ORDER: usize = 128;

/// The covariance matrix (lower triangle) of the first `n` inputs of `x`, noise and jitter on
/// the diagonal. Its columns are filled in two fixed parts (from order [`PAR_ORDER`] on two
/// threads); every entry is computed alone, so the split changes no value.
pub(crate) fn gram(shape: Shape, h: &Hyper, x: &[f64], n: usize) -> Mat<f64> {
    let cols = Columns::new(shape, x, n);
    let c = Coef::new(h);
    let add = diag(h);
    let mut a = Mat::zeros(n, n);
    let fill = |mut m: MatMut<'_, f64>, from: usize| {
        let mut scratch = vec![0.0; n];
        for jj in 0..m.ncols() {
            let j = from + jj;
            let col = m.as_mut().col_mut(jj);
            match col.try_as_col_major_mut() {
                Some(col) => cols.kernel_column(shape, &c, j, &mut col.as_slice_mut()[j..]),
                None => {
                    let out = &mut scratch[j..];
                    cols.kernel_column(shape, &c, j, out);
                    let mut col = m.as_mut().col_mut(jj);
                    for (i, v) in (j..n).zip(out.iter()) {
                        col[i] = *v;
                    }
                }
            }
            m[(j, jj)] += add;
        }
    };
    // Columns `0..split` hold about half the lower triangle.
    let split = if n >= PAR_ORDER {
        n - (n as f64 / std::f64::consts::SQRT_2) as usize
    } else {
        n
    };
    let (left, right) = a.as_mut().split_at_col_mut(split);
    if split < n {
        rayon::join(|| fill(left, 0), || fill(right, split));
    } else {
        fill(left, 0);
    }
    a
}

/// Inputs stored column by column, for the kernel between one input and many.
struct Columns<'a> {
    n: usize,
    x: &'a [f64],
    t: Vec<f64>,
    se: Vec<Vec<f64>>,
}

impl<'a> Columns<'a> {
    fn new(shape: Shape, x: &'a [f64], n: usize) -> Columns<'a> {
        let d = shape.dim();
        Columns {
            n,
            x,
            t: (0..n).map(|i| x[i * d]).collect(),
            se: (1..1 + shape.se)
                .map(|k| (0..n).map(|i| x[i * d + k]).collect())
                .collect(),
        }
    }

    /// `out[i - j] = k(x_i, x_j)` for `i` in `j..n` (no noise): for plain PB2 the exponents
    /// first, then [`exp_in_place`] on all of them.
    fn kernel_column(&self, shape: Shape, c: &Coef, j: usize, out: &mut [f64]) {
        let d = shape.dim();
        if shape.cat > 0 {
            let xj = &self.x[j * d..(j + 1) * d];
            for (o, i) in out.iter_mut().zip(j..self.n) {
                *o = shape.k_fast(c, shape.pair(&self.x[i * d..(i + 1) * d], xj));
            }
            return;
        }
        let mut d2 = vec![0.0; out.len()];
        for xs in &self.se {
            let xj = xs[j];
            for (s, xi) in d2.iter_mut().zip(&xs[j..]) {
                *s += (xi - xj) * (xi - xj);
            }
        }
        let tj = self.t[j];
        for ((o, ti), s) in out.iter_mut().zip(&self.t[j..]).zip(&d2) {
            *o = c.half_ln_keep * (ti - tj).abs() - s * c.inv_ls;
        }
        exp_in_place(out);
        out.iter_mut().for_each(|o| *o *= c.variance);
    }
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
    let (k, se_part) = pairs.kernel(shape, &Coef::new(h));
    let mut a = Mat::zeros(n, n);
    let mut at = 0;
    for j in 0..n {
        for i in j..n {
            a[(i, j)] = if i == j { k[at] + add } else { k[at] };
            at += 1;
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
        // d lml / dθ = ½ tr((α αᵀ - K⁻¹) dK/dθ), summed over the lower triangle, with
        // dK/dθ as in [`Shape::k_grad_fast`].
        let inv = factor.inverse();
        let se_part = se_part.as_ref().unwrap_or(&k);
        let c = Coef::new(h);
        let mut at = 0;
        for j in 0..n {
            for i in j..n {
                let w = alpha[i] * alpha[j] - inv[(i, j)];
                let f = if i == j { 0.5 } else { 1.0 };
                let d_ls = se_part[at] * pairs.d2[at] * c.inv_ls;
                let d_eps = -0.5 * k[at] * pairs.dt[at] * c.eps_ratio;
                for (gk, dkk) in g.iter_mut().zip([k[at], d_ls, d_eps]) {
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
        ftol: lbfgs::SCIPY_FTOL,
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
    let groups: Vec<&[usize]> = order.chunks(GROUP).collect();
    // Two threads take the groups up to and past half the work (a group's solve costs about
    // its longest window squared); each group is solved alone, so the split changes nothing.
    let cost = |g: &[usize]| {
        g.last()
            .and_then(|&w| targets[w].as_ref())
            .map_or(0, |y| y.len().pow(2))
    };
    let total: usize = groups.iter().map(|g| cost(g)).sum();
    let (mut acc, mut split) = (0, 0);
    while split < groups.len() && 2 * (acc + cost(groups[split])) <= total {
        acc += cost(groups[split]);
        split += 1;
    }
    let solve = |gs: &[&[usize]]| -> Vec<(usize, Option<f64>)> {
        gs.iter()
            .flat_map(|g| group_lmls(factor, targets, g))
            .collect()
    };
    let (a, b) = rayon::join(|| solve(&groups[..split]), || solve(&groups[split..]));
    for (w, v) in a.into_iter().chain(b) {
        out[w] = v;
    }
    out
}

/// The likelihoods of the windows `group` (their targets exist and fit the factor) from one
/// triangular solve on the leading block of the longest.
fn group_lmls(
    factor: &Factor,
    targets: &[Option<Vec<f64>>],
    group: &[usize],
) -> Vec<(usize, Option<f64>)> {
    let ys: Vec<&Vec<f64>> = group.iter().filter_map(|&w| targets[w].as_ref()).collect();
    let rows = ys.iter().map(|y| y.len()).max().unwrap_or(0);
    let mut z = Mat::from_fn(rows, ys.len(), |i, c| ys[c].get(i).copied().unwrap_or(0.0));
    factor.forward(z.as_mut());
    group
        .iter()
        .zip(&ys)
        .enumerate()
        .map(|(c, (&w, y))| {
            let len = y.len();
            let fit: f64 = (0..len).map(|i| z[(i, c)] * z[(i, c)]).sum();
            let value = -0.5 * fit - 0.5 * factor.log_det(len) - 0.5 * len as f64 * LN_2PI;
            (w, value.is_finite().then_some(value))
        })
        .collect()
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
    fn the_pairs_kernel_is_the_kernel_and_its_lengthscale_part() {
        let c = Coef::new(&H);
        for shape in [Shape { se: 2, cat: 0 }, Shape { se: 2, cat: 1 }] {
            let x: Vec<f64> = (0..7 * shape.dim())
                .map(|v| ((v * 5) % 7) as f64 / 3.0)
                .collect();
            let pairs = Pairs::new(shape, &x, 7);
            let (k, se) = pairs.kernel(shape, &c);
            assert_eq!(se.is_some(), shape.cat > 0);
            let se = se.unwrap_or_else(|| k.clone());
            let d = shape.dim();
            let mut at = 0;
            for j in 0..7 {
                for i in j..7 {
                    let p = shape.pair(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
                    let (want, g) = shape.k_grad_fast(&c, p);
                    assert!(
                        (k[at] - want).abs() <= 1e-15 * want.abs(),
                        "{} vs {want}",
                        k[at]
                    );
                    let d_ls = se[at] * p.d2 * c.inv_ls;
                    assert!((d_ls - g[1]).abs() <= 1e-15 * g[1].abs().max(1e-300));
                    at += 1;
                }
            }
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

    #[test]
    fn a_gram_matrix_filled_on_two_threads_is_the_kernel() {
        let n = PAR_ORDER + 37;
        for shape in [Shape { se: 3, cat: 0 }, Shape { se: 2, cat: 1 }] {
            let d = shape.dim();
            let x: Vec<f64> = (0..n * d).map(|v| ((v * 37) % 101) as f64 / 50.0).collect();
            let a = gram(shape, &H, &x, n);
            for j in 0..n {
                for i in j..n {
                    let k = shape.k(
                        &H,
                        shape.pair(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]),
                    );
                    let want = if i == j { k + diag(&H) } else { k };
                    assert!((a[(i, j)] - want).abs() < 1e-13, "{i} {j}");
                }
            }
        }
    }
}
