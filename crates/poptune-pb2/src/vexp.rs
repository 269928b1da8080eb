//! The exponential of many arguments at once, in a form the compiler vectorises: most of a
//! decision's time outside the linear algebra is spent in the kernel's `exp`, once per pair
//! of rows.
//!
//! On `[-708, 0]` (every argument the kernels give: the time factor's and the squared
//! exponential's exponents are never positive) it is Cody and Waite's reduction
//! `x = k ln 2 + r`, `|r| ≤ ln 2 / 2`, with `e^r` from its Taylor polynomial to degree 13
//! (truncation error below 5e-18) and `2^k` put into the exponent's bits: within 2 units in
//! the last place of `f64::exp` (tested). Plain multiplications and additions only (no
//! fused multiply-add), so the result does not depend on the processor's instruction set.
//! Other arguments (positive, below -708, NaN) go to `f64::exp`.

/// `log2(e)`.
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` in two parts (fdlibm's `ln2HI`, `ln2LO`): `k · LN2_HI` is exact for the `k` used
/// here.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1.5 · 2^52`: adding it rounds to an integer, which then sits in the low bits.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// The smallest argument taken by the fast path (`2^k` stays a normal number).
const LOW: f64 = -708.0;

/// `1 / j!` for `j = 13, 12, …, 2`, for Horner's scheme.
const INV_FACT: [f64; 12] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// Arguments taken together: each step of the polynomial is applied to all of them before
/// the next, so that the steps of different arguments overlap (a single argument's steps
/// depend on each other).
const LANES: usize = 8;

/// `e^x` for each `x` of `v`, every one in `[LOW, 0]` (clamped into it).
#[inline(always)]
fn exp_lanes<const N: usize>(v: &mut [f64; N]) {
    let mut shifted = [0.0; N];
    let mut r = [0.0; N];
    for ((x, s), r) in v.iter_mut().zip(&mut shifted).zip(&mut r) {
        *x = x.clamp(LOW, 0.0);
        *s = *x * LOG2E + ROUND;
        let k = *s - ROUND;
        *r = (*x - k * LN2_HI) - k * LN2_LO;
    }
    let mut p = [INV_FACT[0]; N];
    for c in &INV_FACT[1..] {
        for (p, r) in p.iter_mut().zip(&r) {
            *p = *p * r + c;
        }
    }
    for _ in 0..2 {
        for (p, r) in p.iter_mut().zip(&r) {
            *p = *p * r + 1.0;
        }
    }
    // The integer k sits in the low bits of `shifted`: 2^k has exponent bits k + 1023.
    for ((x, s), p) in v.iter_mut().zip(&shifted).zip(&p) {
        let k = s.to_bits().wrapping_sub(ROUND.to_bits());
        *x = p * f64::from_bits(k.wrapping_add(1023) << 52);
    }
}

/// `e^x` for one `x` in `[LOW, 0]`, exactly as [`exp_lanes`] computes it.
fn exp_one(x: f64) -> f64 {
    let mut v = [x];
    exp_lanes(&mut v);
    v[0]
}

fn fast(a: &f64) -> bool {
    (LOW..=0.0).contains(a)
}

/// Replaces each value of `v` by its exponential.
pub(crate) fn exp_in_place(v: &mut [f64]) {
    if v.iter().all(fast) {
        let mut chunks = v.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            if let Ok(lanes) = <&mut [f64; LANES]>::try_from(chunk) {
                exp_lanes(lanes);
            }
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|x| *x = exp_one(*x));
    } else {
        v.iter_mut()
            .for_each(|x| *x = if fast(x) { exp_one(*x) } else { x.exp() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn within_two_ulps_of_the_library_exp() {
        let n = 200_000;
        let args: Vec<f64> = (0..=n)
            .map(|i| LOW * i as f64 / n as f64)
            .chain((0..1000).map(|i| -1e-3 * i as f64 / 1000.0))
            .chain([
                0.0,
                -0.0,
                -1e-300,
                -f64::MIN_POSITIVE,
                LOW,
                -0.5 * std::f64::consts::LN_2,
            ])
            .collect();
        let mut out = args.clone();
        exp_in_place(&mut out);
        let worst = args
            .iter()
            .zip(&out)
            .map(|(a, o)| ulps(a.exp(), *o))
            .max()
            .unwrap_or(0);
        assert!(worst <= 2, "{worst} ulps");
        assert_eq!(out[args.len() - 6..args.len() - 2], [1.0; 4]);
    }

    #[test]
    fn arguments_outside_the_fast_path_are_exact() {
        let args = [
            1.0,
            709.0,
            710.0,
            -709.0,
            -745.0,
            -1e4,
            f64::NAN,
            f64::INFINITY,
        ];
        let mut out = args.to_vec();
        exp_in_place(&mut out);
        for (a, o) in args.iter().zip(&out) {
            assert!(a.exp() == *o || (a.is_nan() && o.is_nan()), "{a}: {o}");
        }
        let mut v = vec![-1.0, -2.0];
        exp_in_place(&mut v);
        assert!(ulps(v[0], (-1.0f64).exp()) <= 2 && ulps(v[1], (-2.0f64).exp()) <= 2);
    }
}
