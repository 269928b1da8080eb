//! Dense linear algebra on `faer`: a Cholesky factor whose leading blocks serve as the
//! factors of the leading blocks of the matrix, triangular solves on such a block (one or many
//! right-hand sides) and the inverse. Sequential: a decision runs on one core.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Mat, MatMut, MatRef, Par};

const PAR: Par = Par::Seq;

/// The lower Cholesky factor `L` of a symmetric positive definite matrix (`A = L Lᵀ`); only
/// its lower triangle is meaningful. The factor of `A`'s leading `n × n` block is `L`'s
/// leading `n × n` block, so one factor serves every leading window.
pub(crate) struct Factor {
    l: Mat<f64>,
}

impl Factor {
    /// Factors the matrix whose lower triangle `a` holds (the upper one is ignored).
    /// `None` when it is not numerically positive definite.
    pub fn new(mut a: Mat<f64>) -> Option<Factor> {
        let n = a.nrows();
        let req = llt::factor::cholesky_in_place_scratch::<f64>(n, PAR, Default::default());
        let mut buf = MemBuffer::new(req);
        llt::factor::cholesky_in_place(
            a.as_mut(),
            Default::default(),
            PAR,
            MemStack::new(&mut buf),
            Default::default(),
        )
        .ok()?;
        let ok = (0..n).all(|i| a[(i, i)].is_finite() && a[(i, i)] > 0.0);
        ok.then_some(Factor { l: a })
    }

    /// The order of the factored matrix.
    pub fn len(&self) -> usize {
        self.l.nrows()
    }

    /// The leading `n × n` block of `L`.
    pub fn lead(&self, n: usize) -> MatRef<'_, f64> {
        self.l.as_ref().submatrix(0, 0, n, n)
    }

    /// `ln det` of the leading `n × n` block of `A`: `2 Σ ln L_ii` over `i < n`.
    pub fn log_det(&self, n: usize) -> f64 {
        (0..n).map(|i| 2.0 * self.l[(i, i)].ln()).sum()
    }

    /// Solves `L_n X = B` in place, `n` being `B`'s rows.
    pub fn forward(&self, b: MatMut<'_, f64>) {
        let n = b.nrows();
        solve_lower_triangular_in_place(self.lead(n), b, PAR);
    }

    /// Solves `L_nᵀ X = B` in place, `n` being `B`'s rows.
    pub fn backward(&self, b: MatMut<'_, f64>) {
        let n = b.nrows();
        solve_upper_triangular_in_place(self.lead(n).transpose(), b, PAR);
    }

    /// `A_n⁻¹ y` for the leading block whose order is `y`'s length.
    pub fn solve(&self, y: &[f64]) -> Vec<f64> {
        let mut b = column(y);
        self.forward(b.as_mut());
        self.backward(b.as_mut());
        (0..y.len()).map(|i| b[(i, 0)]).collect()
    }

    /// `A⁻¹` (lower triangle only).
    pub fn inverse(&self) -> Mat<f64> {
        let n = self.len();
        let mut out = Mat::zeros(n, n);
        let req = llt::inverse::inverse_scratch::<f64>(n, PAR);
        let mut buf = MemBuffer::new(req);
        llt::inverse::inverse(out.as_mut(), self.l.as_ref(), PAR, MemStack::new(&mut buf));
        out
    }
}

/// `y` as an `n × 1` matrix.
pub(crate) fn column(y: &[f64]) -> Mat<f64> {
    Mat::from_fn(y.len(), 1, |i, _| y[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Mat<f64> {
        Mat::from_fn(n, n, |i, j| {
            let d = (i as f64 - j as f64) / 3.0;
            (-d * d).exp() + if i == j { 0.1 } else { 0.0 }
        })
    }

    #[test]
    fn leading_blocks_of_the_factor_factor_the_leading_blocks() {
        let a = spd(9);
        let full = Factor::new(a.clone()).unwrap();
        let part = Factor::new(a.as_ref().submatrix(0, 0, 5, 5).to_owned()).unwrap();
        for i in 0..5 {
            for j in 0..=i {
                assert!((full.lead(5)[(i, j)] - part.lead(5)[(i, j)]).abs() < 1e-14);
            }
        }
        assert!((full.log_det(5) - part.log_det(5)).abs() < 1e-12);
        let y: Vec<f64> = (0..5).map(|i| i as f64 - 2.0).collect();
        let (x, want) = (full.solve(&y), part.solve(&y));
        for (a, b) in x.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12);
        }
        // A x = y.
        for i in 0..5 {
            let ax: f64 = (0..5).map(|j| a[(i, j)] * x[j]).sum();
            assert!((ax - y[i]).abs() < 1e-10);
        }
    }

    #[test]
    fn inverse_inverts_and_indefinite_matrices_are_refused() {
        let a = spd(6);
        let inv = Factor::new(a.clone()).unwrap().inverse();
        for i in 0..6 {
            for j in 0..=i {
                let s: f64 = (0..6)
                    .map(|k| {
                        let v = if k <= i { inv[(i, k)] } else { inv[(k, i)] };
                        v * a[(k, j)]
                    })
                    .sum();
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-10);
            }
        }
        let bad = Mat::from_fn(2, 2, |i, j| if i == j { 1.0 } else { 2.0 });
        assert!(Factor::new(bad).is_none());
        let nan = Mat::from_fn(2, 2, |_, _| f64::NAN);
        assert!(Factor::new(nan).is_none());
    }
}
