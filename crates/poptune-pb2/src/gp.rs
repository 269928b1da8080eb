//! Gaussian-process regression with the time-varying kernel: the log marginal likelihood
//! and its gradient (through a Cholesky factor), the fit of the hyperparameters, the
//! posterior mean and variance with their gradients, and the likelihoods of every leading
//! window from one factorisation.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

use crate::kernel::{Hyper, Pair, Shape, BOUNDS};
use crate::lbfgs::{self, Settings};

/// Added to the diagonal, relative to σ², so that a factorisation near the noise's lower
/// bound stays well conditioned.
const JITTER: f64 = 1e-8;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The pair quantities of `n` inputs, lower triangle packed row by row.
pub(crate) struct Pairs {
    n: usize,
    pairs: Vec<Pair>,
}

impl Pairs {
    /// The pairs of the first `n` inputs of `x` (row-major, `shape.dim()` columns).
    pub fn new(shape: Shape, x: &[f64], n: usize) -> Pairs {
        let d = shape.dim();
        let mut pairs = Vec::with_capacity(n * (n + 1) / 2);
        for i in 0..n {
            for j in 0..=i {
                pairs.push(shape.pair(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]));
            }
        }
        Pairs { n, pairs }
    }

    fn get(&self, i: usize, j: usize) -> Pair {
        let (i, j) = if j > i { (j, i) } else { (i, j) };
        self.pairs[i * (i + 1) / 2 + j]
    }
}

/// The covariance matrix of the first `n` inputs, noise and jitter on the diagonal.
fn gram(shape: Shape, h: &Hyper, pairs: &Pairs, n: usize) -> DMatrix<f64> {
    let diag = h.noise + JITTER * h.variance;
    DMatrix::from_fn(n, n, |i, j| {
        let k = shape.k(h, pairs.get(i, j));
        if i == j {
            k + diag
        } else {
            k
        }
    })
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
    let chol = Cholesky::new(gram(shape, h, pairs, n))?;
    let alpha = chol.solve(&DVector::from_column_slice(y));
    let l = chol.l_dirty();
    let logdet: f64 = (0..n).map(|i| 2.0 * l[(i, i)].ln()).sum();
    let fit: f64 = y.iter().zip(alpha.iter()).map(|(a, b)| a * b).sum();
    let value = -0.5 * fit - 0.5 * logdet - 0.5 * n as f64 * LN_2PI;
    if !value.is_finite() {
        return None;
    }
    let mut g = [0.0; 4];
    if grad {
        // d lml / dθ = ½ tr((α αᵀ - K⁻¹) dK/dθ), summed over the lower triangle.
        let inv = chol.inverse();
        for i in 0..n {
            for j in 0..=i {
                let w = alpha[i] * alpha[j] - inv[(i, j)];
                let (_, dk) = shape.k_grad(h, pairs.get(i, j));
                let f = if i == j { 0.5 } else { 1.0 };
                for (gk, dkk) in g.iter_mut().zip(dk) {
                    *gk += f * w * dkk;
                }
                if i == j {
                    g[3] += 0.5 * w * h.noise;
                }
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

/// The log marginal likelihood of each leading window: for every `len` in `lens`, the GP on
/// the first `len` inputs with targets `targets(len)`. One factorisation serves all windows,
/// since the Cholesky factor of a leading block is the leading block of the factor.
pub(crate) fn prefix_lmls(
    shape: Shape,
    h: &Hyper,
    pairs: &Pairs,
    lens: &[usize],
    mut targets: impl FnMut(usize) -> Option<Vec<f64>>,
) -> Vec<Option<f64>> {
    let Some(chol) = Cholesky::new(gram(shape, h, pairs, pairs.n)) else {
        return vec![None; lens.len()];
    };
    let l = chol.l_dirty();
    lens.iter()
        .map(|&len| {
            let y = targets(len)?;
            let mut v = vec![0.0; len];
            let mut logdet = 0.0;
            for i in 0..len {
                let s: f64 = (0..i).map(|k| l[(i, k)] * v[k]).sum();
                v[i] = (y[i] - s) / l[(i, i)];
                logdet += 2.0 * l[(i, i)].ln();
            }
            let fit: f64 = v.iter().map(|x| x * x).sum();
            let value = -0.5 * fit - 0.5 * logdet - 0.5 * len as f64 * LN_2PI;
            value.is_finite().then_some(value)
        })
        .collect()
}

/// A GP conditioned on its inputs: the mean (with targets) and the variance.
pub(crate) struct Posterior {
    shape: Shape,
    h: Hyper,
    x: Vec<f64>,
    n: usize,
    chol: Cholesky<f64, Dyn>,
    alpha: DVector<f64>,
}

impl Posterior {
    /// Conditions on inputs `x` (row-major) and targets `y` (zeros for the variance-only GP,
    /// whose targets do not matter).
    pub fn new(shape: Shape, h: Hyper, x: Vec<f64>, y: &[f64]) -> Option<Posterior> {
        let n = y.len();
        let pairs = Pairs::new(shape, &x, n);
        let chol = Cholesky::new(gram(shape, &h, &pairs, n))?;
        let alpha = chol.solve(&DVector::from_column_slice(y));
        Some(Posterior {
            shape,
            h,
            x,
            n,
            chol,
            alpha,
        })
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.n
    }

    /// `k(z, x_i)` for every input, and the gradients with respect to the columns `cols` of
    /// `z` (row `i` of the returned matrix holds input `i`'s).
    fn cross(&self, z: &[f64], cols: &[usize]) -> (DVector<f64>, Vec<f64>) {
        let d = self.shape.dim();
        let mut kz = DVector::zeros(self.n);
        let mut dk = vec![0.0; self.n * cols.len()];
        for i in 0..self.n {
            let out = &mut dk[i * cols.len()..(i + 1) * cols.len()];
            kz[i] = self
                .shape
                .k_dz(&self.h, z, &self.x[i * d..(i + 1) * d], cols, out);
        }
        (kz, dk)
    }

    /// The posterior mean at `z` and its gradient with respect to `cols` (into `grad`).
    pub fn mean(&self, z: &[f64], cols: &[usize], grad: &mut [f64]) -> f64 {
        let (kz, dk) = self.cross(z, cols);
        grad.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..self.n {
            for (c, g) in grad.iter_mut().enumerate() {
                *g += self.alpha[i] * dk[i * cols.len() + c];
            }
        }
        kz.dot(&self.alpha)
    }

    /// The posterior variance of the latent function at `z` and its gradient with respect
    /// to `cols` (into `grad`).
    pub fn variance(&self, z: &[f64], cols: &[usize], grad: &mut [f64]) -> f64 {
        let (kz, dk) = self.cross(z, cols);
        let v = self.chol.solve(&kz);
        grad.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..self.n {
            for (c, g) in grad.iter_mut().enumerate() {
                *g -= 2.0 * v[i] * dk[i * cols.len() + c];
            }
        }
        let prior = self.shape.k(&self.h, self.shape.pair(z, z));
        prior - kz.dot(&v)
    }
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
    fn prefix_likelihoods_equal_separate_ones() {
        let (x, y) = data();
        let all = Pairs::new(SHAPE, &x, y.len());
        let got = prefix_lmls(SHAPE, &H, &all, &[5, 12], |len| Some(y[..len].to_vec()));
        for (len, g) in [5, 12].into_iter().zip(got) {
            let pairs = Pairs::new(SHAPE, &x, len);
            let (want, _) = lml(SHAPE, &H, &pairs, &y[..len], false).unwrap();
            assert!((g.unwrap() - want).abs() < 1e-10);
        }
    }

    #[test]
    fn posterior_interpolates_and_shrinks_variance() {
        let (x, y) = data();
        let h = Hyper { noise: 1e-5, ..H };
        let p = Posterior::new(SHAPE, h, x.clone(), &y).unwrap();
        let mut g = [0.0];
        let m = p.mean(&x[4..6], &[1], &mut g);
        assert!((m - y[2]).abs() < 1e-2, "{m} vs {}", y[2]);
        let at_data = p.variance(&x[4..6], &[1], &mut g);
        let far = p.variance(&[5.0, 0.5], &[1], &mut g);
        assert!(at_data < 1e-3 && far > 1.0, "{at_data} {far}");
        // Gradient of the mean by finite differences.
        let z = [0.5, 0.33];
        let mut g = [0.0];
        p.mean(&z, &[1], &mut g);
        let fd = (p.mean(&[0.5, 0.33 + 1e-6], &[1], &mut [0.0])
            - p.mean(&[0.5, 0.33 - 1e-6], &[1], &mut [0.0]))
            / 2e-6;
        assert!(
            (fd - g[0]).abs() < 1e-4 * (1.0 + fd.abs()),
            "{fd} vs {}",
            g[0]
        );
        p.variance(&z, &[1], &mut g);
        let fd = (p.variance(&[0.5, 0.33 + 1e-6], &[1], &mut [0.0])
            - p.variance(&[0.5, 0.33 - 1e-6], &[1], &mut [0.0]))
            / 2e-6;
        assert!(
            (fd - g[0]).abs() < 1e-4 * (1.0 + fd.abs()),
            "{fd} vs {}",
            g[0]
        );
    }
}
