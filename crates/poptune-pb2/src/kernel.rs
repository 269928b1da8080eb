//! The time-varying kernel of PB2, and its mixed form for PB2-Mix.
//!
//! An input is laid out as `[t, x_1 .. x_m, c_1 .. c_k]`: the (normalised) time, the
//! squared-exponential part `x` (the start reward, then the continuous hyperparameters) and
//! the categorical part `c` (each category's index in its list, as a float).
//!
//! Plain PB2 (`k = 0`):
//! `k(a, b) = σ² · exp(-‖x_a - x_b‖² / ℓ) · (1 - ε)^(|t_a - t_b| / 2)`.
//!
//! PB2-Mix mixes the squared exponential `k_se` with the overlap kernel `k_ov` (the share of
//! categories that agree), as CoCaBO does, with the mixing weight λ fixed at one half:
//! `k = σ² · (1 - ε)^(|Δt| / 2) · ((1 - λ)/2 · (k_se + k_ov) + λ · k_se · k_ov)`.
//! Both reduce to the same code: `k = σ² · tv · (A · k_se + B)` with `A = 1, B = 0` for
//! plain PB2 and `A = (1 - λ)/2 + λ·k_ov`, `B = (1 - λ)/2 · k_ov` for the mix.

/// The mixing weight between the sum and the product of the two kernels in PB2-Mix.
pub const MIX_LAMBDA: f64 = 0.5;

/// Hyperparameters of the GP: the kernel's and the observation noise's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Signal variance σ², in [1e-5, 1e5].
    pub variance: f64,
    /// Lengthscale ℓ (it divides the squared distance, so it is a squared length), in
    /// [1e-5, 1e5].
    pub lengthscale: f64,
    /// Forgetting rate ε of the time factor `(1 - ε)^(|Δt|/2)`, in [1e-5, 0.5].
    pub epsilon: f64,
    /// Observation noise variance, in [1e-5, 10].
    pub noise: f64,
}

impl Default for Hyper {
    /// The starting point of the fit: σ² = 1, ℓ = 1, ε = 0.1, noise 0.1.
    fn default() -> Self {
        Hyper {
            variance: 1.0,
            lengthscale: 1.0,
            epsilon: 0.1,
            noise: 0.1,
        }
    }
}

/// Bounds of the hyperparameters, in the order of [`Hyper::to_log`].
pub(crate) const BOUNDS: [(f64, f64); 4] = [(1e-5, 1e5), (1e-5, 1e5), (1e-5, 0.5), (1e-5, 10.0)];

impl Hyper {
    /// `[ln σ², ln ℓ, ln ε, ln noise]`: the space the fit works in.
    pub(crate) fn to_log(self) -> [f64; 4] {
        [
            self.variance.ln(),
            self.lengthscale.ln(),
            self.epsilon.ln(),
            self.noise.ln(),
        ]
    }

    /// The inverse of [`Hyper::to_log`].
    pub(crate) fn from_log(p: &[f64]) -> Hyper {
        Hyper {
            variance: p[0].exp(),
            lengthscale: p[1].exp(),
            epsilon: p[2].exp(),
            noise: p[3].exp(),
        }
    }
}

/// Constants of [`Hyper`] that every kernel value uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Coef {
    pub variance: f64,
    /// `1 / ℓ`.
    pub inv_ls: f64,
    /// `½ ln(1 - ε)`.
    pub half_ln_keep: f64,
    /// `ε / (1 - ε)`.
    pub eps_ratio: f64,
}

impl Coef {
    pub fn new(h: &Hyper) -> Coef {
        Coef {
            variance: h.variance,
            inv_ls: 1.0 / h.lengthscale,
            half_ln_keep: 0.5 * (1.0 - h.epsilon).ln(),
            eps_ratio: h.epsilon / (1.0 - h.epsilon),
        }
    }
}

/// The shape of the inputs: how many squared-exponential and categorical columns follow the
/// time column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub se: usize,
    pub cat: usize,
}

impl Shape {
    /// Columns of one input.
    pub fn dim(self) -> usize {
        1 + self.se + self.cat
    }
}

/// What the kernel needs of a pair of inputs: squared distance of the SE part, time distance
/// and the overlap of the categorical part.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pair {
    pub d2: f64,
    pub dt: f64,
    pub ov: f64,
}

impl Shape {
    /// The pair quantities of inputs `a` and `b`.
    pub fn pair(self, a: &[f64], b: &[f64]) -> Pair {
        let d2 = (1..1 + self.se).map(|j| (a[j] - b[j]).powi(2)).sum();
        let ov = if self.cat == 0 {
            1.0
        } else {
            let same = (1 + self.se..self.dim())
                .filter(|&j| a[j] >= 0.0 && a[j] == b[j])
                .count();
            same as f64 / self.cat as f64
        };
        Pair {
            d2,
            dt: (a[0] - b[0]).abs(),
            ov,
        }
    }

    /// The weights `A` and `B` of `k = σ² · tv · (A · k_se + B)` for an overlap `ov`.
    fn weights(self, ov: f64) -> (f64, f64) {
        if self.cat == 0 {
            (1.0, 0.0)
        } else {
            let half = (1.0 - MIX_LAMBDA) / 2.0;
            (half + MIX_LAMBDA * ov, half * ov)
        }
    }

    /// The kernel's value for a pair, with the hyperparameters' derived constants
    /// precomputed (one `exp` per pair for plain PB2): the same value as [`Shape::k`].
    pub fn k_fast(self, c: &Coef, p: Pair) -> f64 {
        let arg = c.half_ln_keep * p.dt - p.d2 * c.inv_ls;
        if self.cat == 0 {
            c.variance * arg.exp()
        } else {
            let (a, b) = self.weights(p.ov);
            let se = (-p.d2 * c.inv_ls).exp();
            c.variance * (c.half_ln_keep * p.dt).exp() * (a * se + b)
        }
    }

    /// [`Shape::k_grad`] with the constants precomputed (one `exp` for plain PB2).
    pub fn k_grad_fast(self, c: &Coef, p: Pair) -> (f64, [f64; 3]) {
        let tv_arg = c.half_ln_keep * p.dt;
        let (k, se_part) = if self.cat == 0 {
            let k = c.variance * (tv_arg - p.d2 * c.inv_ls).exp();
            (k, k)
        } else {
            let (a, b) = self.weights(p.ov);
            let vt = c.variance * tv_arg.exp();
            let s = vt * a * (-p.d2 * c.inv_ls).exp();
            (s + vt * b, s)
        };
        let d_ls = se_part * p.d2 * c.inv_ls;
        let d_eps = -0.5 * k * p.dt * c.eps_ratio;
        (k, [k, d_ls, d_eps])
    }

    /// The kernel's value for a pair (the reference for the fast forms).
    #[cfg(test)]
    pub fn k(self, h: &Hyper, p: Pair) -> f64 {
        let (a, b) = self.weights(p.ov);
        let se = (-p.d2 / h.lengthscale).exp();
        let tv = (0.5 * p.dt * (1.0 - h.epsilon).ln()).exp();
        h.variance * tv * (a * se + b)
    }

    /// The kernel's value and its derivatives with respect to `ln σ²`, `ln ℓ` and `ln ε`.
    #[cfg(test)]
    pub fn k_grad(self, h: &Hyper, p: Pair) -> (f64, [f64; 3]) {
        let (a, b) = self.weights(p.ov);
        let se = (-p.d2 / h.lengthscale).exp();
        let tv = (0.5 * p.dt * (1.0 - h.epsilon).ln()).exp();
        let k = h.variance * tv * (a * se + b);
        let d_ls = h.variance * tv * a * se * p.d2 / h.lengthscale;
        let d_eps = k * (-0.5 * p.dt) * h.epsilon / (1.0 - h.epsilon);
        (k, [k, d_ls, d_eps])
    }

    /// The value of `k(z, x)` and its gradient with respect to the SE columns of `z` listed
    /// in `cols` (written into `out`): the reference for [`Shape::split`].
    #[cfg(test)]
    pub fn k_dz(self, c: &Coef, z: &[f64], x: &[f64], cols: &[usize], out: &mut [f64]) -> f64 {
        let p = self.pair(z, x);
        let (a, b) = self.weights(p.ov);
        let se = (-p.d2 * c.inv_ls).exp();
        let tv = (c.half_ln_keep * p.dt).exp();
        let common = c.variance * tv * a * se;
        for (o, &j) in out.iter_mut().zip(cols) {
            *o = common * (-2.0 * (z[j] - x[j]) * c.inv_ls);
        }
        c.variance * tv * (a * se + b)
    }

    /// The kernel against `x` for points that differ from `z` only in the SE columns `cols`:
    /// `(A, B)` with `k(z', x) = A · exp(-Σ_{j ∈ cols} (z'_j - x_j)² / ℓ) + B`.
    pub fn split(self, c: &Coef, z: &[f64], x: &[f64], cols: &[usize]) -> (f64, f64) {
        let p = self.pair(z, x);
        let rest: f64 = (1..1 + self.se)
            .filter(|j| !cols.contains(j))
            .map(|j| (z[j] - x[j]).powi(2))
            .sum();
        let (a, b) = self.weights(p.ov);
        let vt = c.variance * (c.half_ln_keep * p.dt).exp();
        (vt * a * (-rest * c.inv_ls).exp(), vt * b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hyper = Hyper {
        variance: 2.0,
        lengthscale: 0.5,
        epsilon: 0.2,
        noise: 0.1,
    };

    #[test]
    fn plain_kernel_matches_the_formula() {
        let s = Shape { se: 2, cat: 0 };
        let a = [0.0, 0.1, 0.3];
        let b = [1.0, 0.4, 0.7];
        // ‖x - x'‖² = 0.09 + 0.16 = 0.25; time distance 1.
        let want = 2.0 * (-0.25f64 / 0.5).exp() * 0.8f64.powf(0.5);
        assert!((s.k(&H, s.pair(&a, &b)) - want).abs() < 1e-14);
        // At distance zero the kernel is the variance.
        assert_eq!(s.k(&H, s.pair(&a, &a)), 2.0);
        // Symmetric.
        assert_eq!(s.k(&H, s.pair(&a, &b)), s.k(&H, s.pair(&b, &a)));
    }

    #[test]
    fn fast_kernel_equals_the_plain_one() {
        let c = Coef::new(&H);
        for s in [Shape { se: 2, cat: 0 }, Shape { se: 2, cat: 1 }] {
            let a = [0.2, 0.1, 0.3, 1.0];
            for b in [[0.9, 0.4, 0.5, 1.0], [0.0, 0.7, 0.1, 0.0]] {
                let p = s.pair(&a[..s.dim()], &b[..s.dim()]);
                let (x, y) = (s.k(&H, p), s.k_fast(&c, p));
                assert!((x - y).abs() < 1e-14 * x.abs().max(1.0), "{x} {y}");
                let ((k1, g1), (k2, g2)) = (s.k_grad(&H, p), s.k_grad_fast(&c, p));
                assert!((k1 - k2).abs() < 1e-14 * k1.abs().max(1.0));
                for (a, b) in g1.iter().zip(g2) {
                    assert!((a - b).abs() < 1e-13 * a.abs().max(1.0), "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn time_factor_decays_with_time_distance() {
        let s = Shape { se: 1, cat: 0 };
        let near = s.k(&H, s.pair(&[0.0, 0.5], &[0.1, 0.5]));
        let far = s.k(&H, s.pair(&[0.0, 0.5], &[0.9, 0.5]));
        assert!(far < near, "{far} {near}");
        assert!((near / 2.0 - 0.8f64.powf(0.05)).abs() < 1e-14);
    }

    #[test]
    fn mixed_kernel_uses_the_overlap() {
        let s = Shape { se: 1, cat: 2 };
        let a = [0.0, 0.5, 1.0, 0.0];
        let same = [0.0, 0.5, 1.0, 0.0];
        let half = [0.0, 0.5, 1.0, 2.0];
        let none = [0.0, 0.5, 0.0, 2.0];
        // SE part and time factor are 1 here: k = σ² (0.25 (1 + ov) + 0.5 ov).
        assert!((s.k(&H, s.pair(&a, &same)) - 2.0).abs() < 1e-14);
        assert!((s.k(&H, s.pair(&a, &half)) - 2.0 * (0.25 * 1.5 + 0.25)).abs() < 1e-14);
        assert!((s.k(&H, s.pair(&a, &none)) - 2.0 * 0.25).abs() < 1e-14);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for s in [Shape { se: 2, cat: 0 }, Shape { se: 2, cat: 1 }] {
            let a = [0.2, 0.1, 0.3, 1.0];
            let b = [0.9, 0.4, 0.5, 1.0];
            let p = s.pair(&a[..s.dim()], &b[..s.dim()]);
            let (_, g) = s.k_grad(&H, p);
            let base = H.to_log();
            for (i, gi) in g.iter().enumerate() {
                let mut up = base;
                let mut dn = base;
                up[i] += 1e-6;
                dn[i] -= 1e-6;
                let fd = (s.k(&Hyper::from_log(&up), p) - s.k(&Hyper::from_log(&dn), p)) / 2e-6;
                assert!((fd - gi).abs() < 1e-6, "{i}: {fd} vs {gi}");
            }
            let mut out = [0.0; 1];
            s.k_dz(&Coef::new(&H), &a[..s.dim()], &b[..s.dim()], &[2], &mut out);
            let mut up = a;
            up[2] += 1e-6;
            let mut dn = a;
            dn[2] -= 1e-6;
            let fd = (s.k(&H, s.pair(&up[..s.dim()], &b[..s.dim()]))
                - s.k(&H, s.pair(&dn[..s.dim()], &b[..s.dim()])))
                / 2e-6;
            assert!((fd - out[0]).abs() < 1e-6, "{fd} vs {}", out[0]);
            // The split form gives the same value at another point of the slice.
            let c = Coef::new(&H);
            let (big_a, big_b) = s.split(&c, &a[..s.dim()], &b[..s.dim()], &[2]);
            let mut moved = a;
            moved[2] = 0.8;
            let want = s.k(&H, s.pair(&moved[..s.dim()], &b[..s.dim()]));
            let got = big_a * (-(0.8f64 - b[2]).powi(2) / H.lengthscale).exp() + big_b;
            assert!((want - got).abs() < 1e-13, "{want} vs {got}");
        }
    }
}
