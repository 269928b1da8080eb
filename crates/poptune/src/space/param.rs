//! One hyperparameter's domain and prior, and what explore does with its values.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Value;
use crate::error::SpaceError;

/// The domain and prior of one hyperparameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Param {
    /// A real number in `[low, high]`; uniform prior, or log-uniform when `log` is set (then
    /// `low` must be positive).
    Float {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (inclusive).
        high: f64,
        /// Log-uniform prior and multiplicative noise.
        #[serde(default)]
        log: bool,
    },
    /// An integer in `[low, high]`; uniform prior, or log-uniform when `log` is set.
    Int {
        /// Lower bound (inclusive).
        low: i64,
        /// Upper bound (inclusive).
        high: i64,
        /// Log-uniform prior (then `low` must be positive).
        #[serde(default)]
        log: bool,
    },
    /// An ordered list of values (e.g. batch sizes); explore moves to a neighbour.
    Ordered {
        /// The values, in order.
        values: Vec<Value>,
    },
    /// Unordered categories; explore resamples.
    Choice {
        /// The categories.
        values: Vec<Value>,
    },
    /// A value that never changes.
    Fixed {
        /// The value.
        value: Value,
    },
}

impl Param {
    /// A uniform float range.
    pub fn float(low: f64, high: f64) -> Self {
        Param::Float {
            low,
            high,
            log: false,
        }
    }

    /// A log-uniform float range (`low` > 0).
    pub fn log_float(low: f64, high: f64) -> Self {
        Param::Float {
            low,
            high,
            log: true,
        }
    }

    /// A uniform integer range.
    pub fn int(low: i64, high: i64) -> Self {
        Param::Int {
            low,
            high,
            log: false,
        }
    }

    /// An ordered choice.
    pub fn ordered<V: Into<Value>>(values: impl IntoIterator<Item = V>) -> Self {
        Param::Ordered {
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// An unordered choice.
    pub fn choice<V: Into<Value>>(values: impl IntoIterator<Item = V>) -> Self {
        Param::Choice {
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// A fixed value.
    pub fn fixed(value: impl Into<Value>) -> Self {
        Param::Fixed {
            value: value.into(),
        }
    }

    /// Checks bounds and lists; `name` is used in the error.
    pub fn validate(&self, name: &str) -> Result<(), SpaceError> {
        let bad = |reason: String| {
            Err(SpaceError::InvalidParam {
                name: name.to_string(),
                reason,
            })
        };
        match self {
            Param::Float { low, high, log } => {
                if !low.is_finite() || !high.is_finite() {
                    return bad(format!(
                        "bounds must be finite numbers, got low = {low}, high = {high}"
                    ));
                }
                if low >= high {
                    return bad(format!(
                        "low ({low}) must be smaller than high ({high}); swap them or use a fixed value"
                    ));
                }
                if *log && *low <= 0.0 {
                    return bad(format!(
                        "a log-uniform range needs low > 0, got low = {low}; use a positive lower bound such as 1e-6"
                    ));
                }
            }
            Param::Int { low, high, log } => {
                if low >= high {
                    return bad(format!(
                        "low ({low}) must be smaller than high ({high}); swap them or use a fixed value"
                    ));
                }
                if *log && *low <= 0 {
                    return bad(format!(
                        "a log-uniform integer range needs low >= 1, got low = {low}"
                    ));
                }
            }
            Param::Ordered { values } | Param::Choice { values } => {
                if values.is_empty() {
                    return bad("the list of values is empty; give at least one value".into());
                }
                if values
                    .iter()
                    .any(|v| matches!(v, Value::Float(x) if !x.is_finite()))
                {
                    return bad("values must be finite numbers".into());
                }
                // A value listed twice would be drawn twice as often, and an ordered list
                // would have a neighbour equal to itself: almost surely a typo.
                if let Some((i, v)) = values
                    .iter()
                    .enumerate()
                    .find(|(i, v)| values[..*i].contains(v))
                {
                    return bad(format!(
                        "value {} is listed twice (at positions {} and {}); list each value once",
                        v,
                        values.iter().position(|w| w == v).unwrap_or(0) + 1,
                        i + 1
                    ));
                }
            }
            Param::Fixed { value } => {
                if matches!(value, Value::Float(x) if !x.is_finite()) {
                    return bad("the fixed value must be a finite number".into());
                }
            }
        }
        Ok(())
    }

    /// Draws a value from the prior.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Value {
        match self {
            Param::Float { low, high, log } => {
                let u: f64 = rng.random();
                let x = if *log {
                    (low.ln() + u * (high.ln() - low.ln())).exp()
                } else {
                    low + u * (high - low)
                };
                Value::Float(x.clamp(*low, *high))
            }
            Param::Int { low, high, log } => {
                if *log {
                    let u: f64 = rng.random();
                    let lo = (*low as f64).ln();
                    let hi = ((*high + 1) as f64).ln();
                    let x = (lo + u * (hi - lo)).exp().floor() as i64;
                    Value::Int(x.clamp(*low, *high))
                } else {
                    Value::Int(rng.random_range(*low..=*high))
                }
            }
            Param::Ordered { values } | Param::Choice { values } => {
                values[rng.random_range(0..values.len())].clone()
            }
            Param::Fixed { value } => value.clone(),
        }
    }

    /// Brings a value inside the domain: floats and integers are clamped to the bounds
    /// (integers rounded), list values not in the list are replaced by the nearest listed
    /// number or, failing that, the first value.
    pub fn project(&self, value: &Value) -> Value {
        match self {
            Param::Float { low, high, .. } => {
                let x = value.as_f64().unwrap_or(*low);
                let x = if x.is_nan() { *low } else { x };
                Value::Float(x.clamp(*low, *high))
            }
            Param::Int { low, high, .. } => {
                let x = value.as_f64().unwrap_or(*low as f64);
                let x = if x.is_nan() { *low as f64 } else { x.round() };
                Value::Int((x.clamp(*low as f64, *high as f64)) as i64)
            }
            Param::Ordered { values } | Param::Choice { values } => {
                if values.contains(value) {
                    return value.clone();
                }
                if let Some(x) = value.as_f64() {
                    let nearest = values
                        .iter()
                        .filter_map(|v| v.as_f64().map(|y| (v, (y - x).abs())))
                        .min_by(|a, b| a.1.total_cmp(&b.1));
                    if let Some((v, _)) = nearest {
                        return v.clone();
                    }
                }
                values[0].clone()
            }
            Param::Fixed { value: fixed } => fixed.clone(),
        }
    }

    /// Whether `value` lies in the domain.
    pub fn contains(&self, value: &Value) -> bool {
        match (self, value) {
            (Param::Float { low, high, .. }, Value::Float(x)) => *x >= *low && *x <= *high,
            (Param::Int { low, high, .. }, Value::Int(i)) => *i >= *low && *i <= *high,
            (Param::Ordered { values }, v) | (Param::Choice { values }, v) => values.contains(v),
            (Param::Fixed { value: fixed }, v) => fixed == v,
            _ => false,
        }
    }

    /// `k` evenly spread values (at most the number the domain holds): cell midpoints on a
    /// linear or log scale for ranges, every value for lists.
    pub fn levels(&self, k: usize) -> Vec<Value> {
        let k = k.max(1);
        match self {
            Param::Float { low, high, log } => (0..k)
                .map(|i| {
                    let u = (i as f64 + 0.5) / k as f64;
                    let x = if *log {
                        (low.ln() + u * (high.ln() - low.ln())).exp()
                    } else {
                        low + u * (high - low)
                    };
                    Value::Float(x.clamp(*low, *high))
                })
                .collect(),
            Param::Int { low, high, .. } => {
                let span = (high - low + 1) as usize;
                let k = k.min(span);
                let mut out: Vec<Value> = (0..k)
                    .map(|i| {
                        let u = (i as f64 + 0.5) / k as f64;
                        Value::Int((*low as f64 + u * (span as f64) - 0.5).round() as i64)
                    })
                    .map(|v| self.project(&v))
                    .collect();
                out.dedup();
                out
            }
            Param::Ordered { values } | Param::Choice { values } => {
                if k >= values.len() {
                    values.clone()
                } else {
                    (0..k)
                        .map(|i| values[(i * values.len() + values.len() / 2) / k].clone())
                        .collect()
                }
            }
            Param::Fixed { value } => vec![value.clone()],
        }
    }

    /// How many distinct values a grid can take from this parameter (`usize::MAX` for floats).
    pub fn cardinality(&self) -> usize {
        match self {
            Param::Float { .. } => usize::MAX,
            Param::Int { low, high, .. } => usize::try_from(high - low + 1).unwrap_or(usize::MAX),
            Param::Ordered { values } | Param::Choice { values } => values.len(),
            Param::Fixed { .. } => 1,
        }
    }
}
