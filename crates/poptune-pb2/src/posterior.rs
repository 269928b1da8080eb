//! The GP conditioned on its window, as the acquisition uses it: the mean from the window's
//! targets and the variance of the second GP, which also holds the points already chosen at
//! this time (batch diversity). The second GP's factor is the first's extended by those few
//! rows, and both are evaluated at a batch of points with one triangular solve each way.

use faer::Mat;

use crate::gp::{diag, gram};
use crate::kernel::{Coef, Hyper, Shape};
use crate::linalg::Factor;

/// The chosen points' part of the second GP's factor:
/// `chol([[K, K_c], [K_cᵀ, K_cc]]) = [[L, 0], [Bᵀ, C]]` with `B = L⁻¹ K_c`.
struct Extension {
    /// The chosen points' inputs (row-major).
    xc: Vec<f64>,
    /// `B = L⁻¹ K_c`, `n × c`.
    b: Mat<f64>,
    /// The factor of `K_cc + noise - Bᵀ B`.
    c: Factor,
}

/// The mean and variance of the GP at one point, with their gradients with respect to the
/// columns asked for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Eval {
    pub mean: f64,
    pub mean_grad: Vec<f64>,
    pub var: f64,
    pub var_grad: Vec<f64>,
}

/// A GP conditioned on the leading `n` inputs of a factor.
pub(crate) struct Posterior {
    shape: Shape,
    coef: Coef,
    h: Hyper,
    x: Vec<f64>,
    n: usize,
    factor: Factor,
    alpha: Vec<f64>,
    ext: Option<Extension>,
}

impl Posterior {
    /// Conditions on inputs `x` (row-major) and targets `y`, factoring afresh.
    pub fn new(shape: Shape, h: Hyper, x: Vec<f64>, y: &[f64]) -> Option<Posterior> {
        let factor = Factor::new(gram(shape, &h, &x, y.len()))?;
        Posterior::from_factor(shape, h, x, factor, y)
    }

    /// Conditions on the first `y.len()` inputs of `x`, whose covariance's factor is the
    /// leading block of `factor` (which may be larger).
    pub fn from_factor(
        shape: Shape,
        h: Hyper,
        mut x: Vec<f64>,
        factor: Factor,
        y: &[f64],
    ) -> Option<Posterior> {
        let n = y.len();
        if n > factor.len() || x.len() < n * shape.dim() {
            return None;
        }
        x.truncate(n * shape.dim());
        let alpha = factor.solve(y);
        alpha.iter().all(|a| a.is_finite()).then_some(Posterior {
            shape,
            coef: Coef::new(&h),
            h,
            x,
            n,
            factor,
            alpha,
            ext: None,
        })
    }

    /// Adds the points already chosen at this time (`xc`, row-major) to the variance's GP.
    /// `None` when the extended covariance cannot be factorised.
    pub fn with_chosen(mut self, xc: Vec<f64>) -> Option<Posterior> {
        let d = self.shape.dim();
        let c = xc.len() / d;
        if c == 0 {
            return Some(self);
        }
        let mut b = Mat::from_fn(self.n, c, |i, k| {
            self.kernel(&self.x[i * d..(i + 1) * d], &xc[k * d..(k + 1) * d])
        });
        self.factor.forward(b.as_mut());
        let add = diag(&self.h);
        let s = Mat::from_fn(c, c, |i, j| {
            let k = self.kernel(&xc[i * d..(i + 1) * d], &xc[j * d..(j + 1) * d]);
            let bb: f64 = (0..self.n).map(|r| b[(r, i)] * b[(r, j)]).sum();
            k - bb + if i == j { add } else { 0.0 }
        });
        let c = Factor::new(s)?;
        self.ext = Some(Extension { xc, b, c });
        Some(self)
    }

    fn kernel(&self, a: &[f64], b: &[f64]) -> f64 {
        self.shape.k_fast(&self.coef, self.shape.pair(a, b))
    }

    /// Inputs of the variance's GP: the window and the chosen points.
    pub fn variance_len(&self) -> usize {
        self.n
            + self
                .ext
                .as_ref()
                .map_or(0, |e| e.xc.len() / self.shape.dim())
    }

    /// The acquisition's slice: points equal to `fixed` but in the SE columns `cols`.
    pub fn slice(&self, fixed: &[f64], cols: &[usize]) -> Slice {
        let d = self.shape.dim();
        let part = |x: &[f64]| -> Side {
            let rows = x.len() / d;
            let mut side = Side {
                a: Vec::with_capacity(rows),
                b: Vec::with_capacity(rows),
                xs: Vec::with_capacity(rows * cols.len()),
            };
            for i in 0..rows {
                let xi = &x[i * d..(i + 1) * d];
                let (a, b) = self.shape.split(&self.coef, fixed, xi, cols);
                side.a.push(a);
                side.b.push(b);
                side.xs.extend(cols.iter().map(|&j| xi[j]));
            }
            side
        };
        Slice {
            nc: cols.len(),
            window: part(&self.x),
            chosen: self.ext.as_ref().map(|e| part(&e.xc)),
            prior: self.kernel(fixed, fixed),
        }
    }

    /// The chosen points' part at each point: with `w = L⁻¹ k_z`, `u = C⁻¹ (k_cz - Bᵀ w)`
    /// and `q = C⁻ᵀ u`; `r` (holding `w`) becomes `w - B q`.
    fn chosen_parts(
        &self,
        s: &Slice,
        us: &[Vec<f64>],
        w: &Mat<f64>,
        r: &mut Mat<f64>,
    ) -> Vec<ChosenAt> {
        let (Some(e), Some(side)) = (&self.ext, &s.chosen) else {
            return Vec::new();
        };
        let (n, c, nb) = (self.n, e.c.len(), us.len());
        let kc: Vec<(Vec<f64>, Vec<f64>)> = us.iter().map(|u| side.cross(&self.coef, u)).collect();
        let mut uu = Mat::from_fn(c, nb, |k, p| {
            kc[p].0[k] - (0..n).map(|i| e.b[(i, k)] * w[(i, p)]).sum::<f64>()
        });
        e.c.forward(uu.as_mut());
        let mut q = uu.clone();
        e.c.backward(q.as_mut());
        for p in 0..nb {
            for i in 0..n {
                r[(i, p)] -= (0..c).map(|k| e.b[(i, k)] * q[(k, p)]).sum::<f64>();
            }
        }
        kc.into_iter()
            .enumerate()
            .map(|(p, (_, dkc))| ChosenAt {
                dkc,
                u: (0..c).map(|k| uu[(k, p)]).collect(),
                q: (0..c).map(|k| q[(k, p)]).collect(),
            })
            .collect()
    }

    /// The mean (of the first GP) and the latent variance (of the second) at the points of
    /// slice `s` whose free columns are `us`, with gradients with respect to them: one
    /// forward and one backward triangular solve for all points.
    pub fn evaluate(&self, s: &Slice, us: &[Vec<f64>]) -> Vec<Eval> {
        let (n, nc, nb) = (self.n, s.nc, us.len());
        let crosses: Vec<(Vec<f64>, Vec<f64>)> =
            us.iter().map(|u| s.window.cross(&self.coef, u)).collect();
        let mut w = Mat::from_fn(n, nb, |i, p| crosses[p].0[i]);
        self.factor.forward(w.as_mut());
        let mut r = w.clone();
        let chosen = self.chosen_parts(s, us, &w, &mut r);
        // r = K₂⁻¹ k_z restricted to the window (the chosen points' part is q).
        self.factor.backward(r.as_mut());
        (0..nb)
            .map(|p| {
                let (k, dk) = &crosses[p];
                let mut mean_grad = vec![0.0; nc];
                let mut var_grad = vec![0.0; nc];
                let mut quad = 0.0;
                for i in 0..n {
                    quad += w[(i, p)] * w[(i, p)];
                    let dki = &dk[i * nc..(i + 1) * nc];
                    for c in 0..nc {
                        mean_grad[c] += self.alpha[i] * dki[c];
                        var_grad[c] -= 2.0 * r[(i, p)] * dki[c];
                    }
                }
                if let Some(at) = chosen.get(p) {
                    quad += at.u.iter().map(|v| v * v).sum::<f64>();
                    for (k, qk) in at.q.iter().enumerate() {
                        let dkc = &at.dkc[k * nc..(k + 1) * nc];
                        for (g, dv) in var_grad.iter_mut().zip(dkc) {
                            *g -= 2.0 * qk * dv;
                        }
                    }
                }
                Eval {
                    mean: k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum(),
                    mean_grad,
                    var: s.prior - quad,
                    var_grad,
                }
            })
            .collect()
    }
}

/// The points an acquisition searches: [`Posterior::slice`].
pub(crate) struct Slice {
    nc: usize,
    window: Side,
    chosen: Option<Side>,
    prior: f64,
}

/// The kernel against one set of inputs along a slice: `k_i(u) = a_i · exp(-‖u - xs_i‖² / ℓ)
/// + b_i`, `xs_i` being input `i`'s free columns.
struct Side {
    a: Vec<f64>,
    b: Vec<f64>,
    xs: Vec<f64>,
}

impl Side {
    /// The kernel values at `u` and, per input, their gradients with respect to `u`.
    fn cross(&self, c: &Coef, u: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let nc = u.len();
        let mut k = Vec::with_capacity(self.a.len());
        let mut dk = vec![0.0; self.a.len() * nc];
        for (i, (a, b)) in self.a.iter().zip(&self.b).enumerate() {
            let xs = &self.xs[i * nc..(i + 1) * nc];
            let d2: f64 = u.iter().zip(xs).map(|(p, q)| (p - q) * (p - q)).sum();
            let e = a * (-d2 * c.inv_ls).exp();
            k.push(e + b);
            for (o, (p, q)) in dk[i * nc..(i + 1) * nc].iter_mut().zip(u.iter().zip(xs)) {
                *o = -2.0 * e * (p - q) * c.inv_ls;
            }
        }
        (k, dk)
    }
}

/// [`Posterior::chosen_parts`] at one point.
struct ChosenAt {
    dkc: Vec<f64>,
    u: Vec<f64>,
    q: Vec<f64>,
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
    const SHAPE: Shape = Shape { se: 2, cat: 0 };

    /// 12 inputs `[t, r, h]` and targets.
    fn data() -> (Vec<f64>, Vec<f64>) {
        let n = 12;
        let x: Vec<f64> = (0..n)
            .flat_map(|i| {
                let i = i as f64;
                [i / 12.0, (i * 0.37).sin().abs(), ((i * 7.0) % 5.0) / 5.0]
            })
            .collect();
        let y: Vec<f64> = (0..n).map(|i| ((i * 3) % 4) as f64 - 1.5).collect();
        (x, y)
    }

    /// Evaluations along the slice `[0.6, 0.4, ·]` at `us`.
    fn at(p: &Posterior, us: &[f64]) -> Vec<Eval> {
        let s = p.slice(&[0.6, 0.4, 0.0], &[2]);
        let us: Vec<Vec<f64>> = us.iter().map(|&u| vec![u]).collect();
        p.evaluate(&s, &us)
    }

    fn close(a: &[Eval], b: &[Eval], tol: f64) {
        for (a, b) in a.iter().zip(b) {
            let pairs = [(a.mean, b.mean), (a.var, b.var)]
                .into_iter()
                .chain(a.mean_grad.iter().copied().zip(b.mean_grad.iter().copied()))
                .chain(a.var_grad.iter().copied().zip(b.var_grad.iter().copied()));
            for (x, y) in pairs {
                assert!((x - y).abs() < tol * x.abs().max(1.0), "{a:?} vs {b:?}");
            }
        }
    }

    const US: [f64; 4] = [0.0, 0.33, 0.71, 1.0];

    #[test]
    fn a_leading_block_of_a_larger_factor_gives_the_fresh_posterior() {
        let (x, y) = data();
        let big = Factor::new(gram(SHAPE, &H, &x, 12)).unwrap();
        let reused = Posterior::from_factor(SHAPE, H, x.clone(), big, &y[..7]).unwrap();
        let fresh = Posterior::new(SHAPE, H, x[..7 * 3].to_vec(), &y[..7]).unwrap();
        close(&at(&reused, &US), &at(&fresh, &US), 1e-10);
    }

    #[test]
    fn the_extended_factor_gives_the_second_gp_of_the_chosen_points() {
        let (x, y) = data();
        let xc = vec![0.6, 0.4, 0.5, 0.6, 0.4, 0.9];
        let p = Posterior::new(SHAPE, H, x.clone(), &y)
            .unwrap()
            .with_chosen(xc.clone())
            .unwrap();
        assert_eq!(p.variance_len(), 14);
        // The second GP factored afresh on the window and the chosen points, zero targets.
        let mut all = x.clone();
        all.extend_from_slice(&xc);
        let second = Posterior::new(SHAPE, H, all, &[0.0; 14]).unwrap();
        let first = Posterior::new(SHAPE, H, x, &y).unwrap();
        for ((e, v), m) in at(&p, &US)
            .iter()
            .zip(at(&second, &US))
            .zip(at(&first, &US))
        {
            assert!((e.var - v.var).abs() < 1e-10, "{} vs {}", e.var, v.var);
            assert!((e.var_grad[0] - v.var_grad[0]).abs() < 1e-9);
            assert!(
                (e.mean - m.mean).abs() < 1e-12 && (e.mean_grad[0] - m.mean_grad[0]).abs() < 1e-12
            );
        }
        // At a chosen point the variance is lower than without it.
        let (without, with) = (at(&first, &[0.5])[0].var, at(&p, &[0.5])[0].var);
        assert!(with < without - 1e-3, "{with} vs {without}");
    }

    #[test]
    fn a_batch_equals_single_points_and_gradients_match_differences() {
        let (x, y) = data();
        let p = Posterior::new(SHAPE, H, x, &y)
            .unwrap()
            .with_chosen(vec![0.6, 0.4, 0.5])
            .unwrap();
        let batch = at(&p, &US);
        for (i, u) in US.iter().enumerate() {
            close(&batch[i..i + 1], &at(&p, &[*u]), 1e-12);
        }
        let u = 0.42;
        let e = &at(&p, &[u])[0];
        let (up, dn) = (&at(&p, &[u + 1e-6])[0], &at(&p, &[u - 1e-6])[0]);
        let fd_mean = (up.mean - dn.mean) / 2e-6;
        let fd_var = (up.var - dn.var) / 2e-6;
        assert!((fd_mean - e.mean_grad[0]).abs() < 1e-5 * (1.0 + fd_mean.abs()));
        assert!((fd_var - e.var_grad[0]).abs() < 1e-5 * (1.0 + fd_var.abs()));
    }

    #[test]
    fn posterior_interpolates_and_shrinks_variance() {
        let (x, y) = data();
        let h = Hyper { noise: 1e-5, ..H };
        let p = Posterior::new(SHAPE, h, x.clone(), &y).unwrap();
        // At input 4: the slice through its t and r.
        let s = p.slice(&x[12..15], &[2]);
        let e = &p.evaluate(&s, &[vec![x[14]]])[0];
        assert!((e.mean - y[4]).abs() < 1e-2, "{} vs {}", e.mean, y[4]);
        assert!(e.var < 1e-3, "{}", e.var);
        let far = p.slice(&[5.0, 0.5, 0.5], &[2]);
        assert!(p.evaluate(&far, &[vec![0.5]])[0].var > 1.0);
    }
}
