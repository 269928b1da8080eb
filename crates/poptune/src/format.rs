//! How numbers are written for people and for data files, the same in every face
//! (`poptune status`, the summary of `poptune run`, the report).
//!
//! - [`score`]: a score or metric for a person: 6 significant digits, in exponent form when it
//!   is tiny or huge (`0.123457`, `-1e-8`, `1.5e11`), never a row of zeros.
//! - [`mode`]: `max` or `min`, as an experiment file writes it.
//! - [`number`]: a number for a data file (CSV): every digit needed to read back the same
//!   `f64`, and no more, in exponent form when it is tiny or huge (`3.82e276`, not 277 digits).

/// A mode as an experiment file writes it: `max` or `min`.
pub fn mode(mode: crate::Mode) -> &'static str {
    match mode {
        crate::Mode::Max => "max",
        crate::Mode::Min => "min",
    }
}

/// Significant digits of [`score`].
const DIGITS: usize = 6;

/// A score (or any metric) for a person: [`DIGITS`] significant digits, trailing zeros
/// dropped, in exponent form when its decimal exponent is below -4 or at least 6 (like C's
/// `%g`). NaN is `NaN`, the infinities `inf` and `-inf`.
pub fn score(x: f64) -> String {
    if !x.is_finite() {
        return special(x);
    }
    if x == 0.0 {
        return "0".to_string();
    }
    // The exponent after rounding to DIGITS digits (999999.7 is 1e6, not 999999.7).
    let sci = format!("{:.*e}", DIGITS - 1, x);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if exp < -4 || exp >= DIGITS as i32 {
        format!("{}e{exp}", trim_zeros(mantissa))
    } else {
        let decimals = (DIGITS as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

/// A number for a data file: the shortest digits that read back as the same `f64`, in
/// exponent form (`{:e}`) when its magnitude is at least 1e16 or below 1e-5 (and not zero).
/// NaN is `NaN`, the infinities `inf` and `-inf` (what a dataframe library reads).
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return special(x);
    }
    let a = x.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

fn special(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_string()
    } else if x > 0.0 {
        "inf".to_string()
    } else {
        "-inf".to_string()
    }
}

/// `1.500` -> `1.5`, `2.000` -> `2`; a number without a point is left alone.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_has_significant_digits_not_a_row_of_zeros() {
        assert_eq!(score(-1e-8), "-1e-8");
        assert_eq!(score(1.23456789e-8), "1.23457e-8");
        assert_eq!(score(0.123456789), "0.123457");
        assert_eq!(score(0.5), "0.5");
        assert_eq!(score(0.0), "0");
        assert_eq!(score(-3.0), "-3");
        assert_eq!(score(12.3456789), "12.3457");
        assert_eq!(score(123456.7), "123457");
        assert_eq!(score(999999.7), "1e6");
        assert_eq!(score(1.5e11), "1.5e11");
        assert_eq!(score(0.0001234), "0.0001234");
        assert_eq!(score(f64::NAN), "NaN");
        assert_eq!(score(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn a_mode_is_written_as_in_the_file() {
        assert_eq!(mode(crate::Mode::Max), "max");
        assert_eq!(mode(crate::Mode::Min), "min");
    }

    #[test]
    fn a_number_for_a_file_reads_back_the_same_and_is_short() {
        let huge = 3.82e276;
        assert_eq!(number(huge), "3.82e276");
        assert_eq!(number(-1e16), "-1e16");
        assert_eq!(number(1e-8), "1e-8");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(20.0), "20");
        assert_eq!(number(f64::NAN), "NaN");
        for x in [
            huge,
            1.0 / 3.0,
            123456789.123,
            1e-300,
            -2.5e-7,
            9.999e15,
            5e-324,
        ] {
            assert_eq!(number(x).parse::<f64>().unwrap(), x, "{}", number(x));
            assert!(number(x).len() <= 24, "{}", number(x));
        }
    }
}
