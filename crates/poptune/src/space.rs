//! Search spaces: the hyperparameters a population explores, their bounds and their priors.
//!
//! A [`Space`] maps names to [`Param`]s. A member's hyperparameters are a [`Hyperparams`]
//! value: one [`Value`] per name. Every value that poptune produces (by sampling, by a grid, by
//! exploring) is passed through [`Space::project`], so it always lies inside the bounds and an
//! integer parameter always holds an integer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::SpaceError;

/// One hyperparameter value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (a category's name).
    Str(String),
}

impl Value {
    /// The value as a float: floats as they are, integers converted, others `None`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as an integer: integers only.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a string: strings only.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean: booleans only.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Read by hand instead of derived, so that a value of another type (a list, a table) gets
/// an error that says what a value may be.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hyperparameter value: a number, a string or a boolean")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Value, E> {
                Ok(Value::Int(i))
            }
            fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
                i64::try_from(u).map(Value::Int).map_err(|_| {
                    E::custom(format!(
                        "the integer {u} is too large (at most {})",
                        i64::MAX
                    ))
                })
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<Value, E> {
                Ok(Value::Float(x))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
                Ok(Value::Str(s.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Value, E> {
                Ok(Value::Str(s))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:.6}"),
            Value::Str(s) => write!(f, "{s}"),
        }
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

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

/// A member's hyperparameters: one value per name of the space.
///
/// Cloning is cheap (the map is shared until one of the clones changes it), so that events,
/// snapshots and members can each hold their own copy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hyperparams(Arc<BTreeMap<Arc<str>, Value>>);

impl Hyperparams {
    /// No hyperparameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value` (builder style).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets `name` to `value`.
    pub fn insert(&mut self, name: &str, value: impl Into<Value>) {
        Arc::make_mut(&mut self.0).insert(Arc::from(name), value.into());
    }

    /// Sets `name` to `value`, sharing the name.
    pub(crate) fn insert_shared(&mut self, name: &Arc<str>, value: Value) {
        Arc::make_mut(&mut self.0).insert(Arc::clone(name), value);
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The value of `name` as a float (integers converted).
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.0.get(name).and_then(Value::as_f64)
    }

    /// The value of `name` as an integer.
    pub fn i64(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }

    /// Names and values, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Number of hyperparameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Hyperparams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in self.0.iter() {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl<S: AsRef<str>, V: Into<Value>> FromIterator<(S, V)> for Hyperparams {
    fn from_iter<I: IntoIterator<Item = (S, V)>>(iter: I) -> Self {
        Hyperparams(Arc::new(
            iter.into_iter()
                .map(|(k, v)| (Arc::from(k.as_ref()), v.into()))
                .collect(),
        ))
    }
}

/// A search space: named hyperparameters with their domains.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Space {
    params: BTreeMap<Arc<str>, Param>,
}

impl Space {
    /// An empty space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter (builder style).
    pub fn with(mut self, name: &str, param: Param) -> Self {
        self.params.insert(Arc::from(name), param);
        self
    }

    /// Adds a parameter.
    pub fn insert(&mut self, name: &str, param: Param) {
        self.params.insert(Arc::from(name), param);
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.get(name)
    }

    /// Names and parameters, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Param)> {
        self.params.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Names (shared) and parameters, in name order.
    pub(crate) fn iter_shared(&self) -> impl Iterator<Item = (&Arc<str>, &Param)> {
        self.params.iter()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the space is empty.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), SpaceError> {
        self.params.iter().try_for_each(|(k, p)| p.validate(k))
    }

    /// Draws a full set of hyperparameters from the prior.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Hyperparams {
        Hyperparams(Arc::new(
            self.params
                .iter()
                .map(|(k, p)| (Arc::clone(k), p.sample(rng)))
                .collect(),
        ))
    }

    /// Brings every value inside its domain; names missing from `h` are taken from the
    /// parameter's midpoint level, names not in the space are dropped.
    pub fn project(&self, h: &Hyperparams) -> Hyperparams {
        Hyperparams(Arc::new(
            self.params
                .iter()
                .map(|(k, p)| {
                    let v = match h.get(k) {
                        Some(v) => p.project(v),
                        None => p.levels(1).remove(0),
                    };
                    (Arc::clone(k), v)
                })
                .collect(),
        ))
    }

    /// Whether every value of `h` lies in its domain and `h` names exactly the space's
    /// parameters.
    pub fn contains(&self, h: &Hyperparams) -> bool {
        h.len() == self.params.len()
            && self
                .params
                .iter()
                .all(|(k, p)| h.get(k).is_some_and(|v| p.contains(v)))
    }

    /// Checks that `h` names exactly the space's parameters with values inside their domains.
    pub fn check(&self, h: &Hyperparams) -> Result<(), SpaceError> {
        for (name, value) in h.iter() {
            match self.params.get(name) {
                None => {
                    return Err(SpaceError::UnknownName {
                        name: name.to_string(),
                    })
                }
                Some(p) if !p.contains(value) => {
                    return Err(SpaceError::OutOfDomain {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some((name, _)) = self.params.iter().find(|(k, _)| h.get(k).is_none()) {
            return Err(SpaceError::Missing {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// A grid of at most `n` points: each parameter gets a number of levels so that their
    /// product is as large as possible without passing `n` (floats get cell midpoints, on a
    /// log scale for log ranges). The points come in row-major order.
    pub fn grid(&self, n: usize) -> Vec<Hyperparams> {
        let names: Vec<&Arc<str>> = self.params.keys().collect();
        let params: Vec<&Param> = self.params.values().collect();
        let mut counts = vec![1usize; params.len()];
        let n = n.max(1);
        loop {
            // Grow the dimension with the fewest levels that can still grow.
            let product: usize = counts.iter().product();
            let candidate = (0..params.len())
                .filter(|&i| counts[i] < params[i].cardinality())
                .filter(|&i| product / counts[i] * (counts[i] + 1) <= n)
                .min_by_key(|&i| (counts[i], i));
            match candidate {
                Some(i) => counts[i] += 1,
                None => break,
            }
        }
        let levels: Vec<Vec<Value>> = params
            .iter()
            .zip(&counts)
            .map(|(p, &k)| p.levels(k))
            .collect();
        let total: usize = levels.iter().map(Vec::len).product();
        (0..total)
            .map(|mut index| {
                let mut h = BTreeMap::new();
                for (i, lv) in levels.iter().enumerate().rev() {
                    h.insert(Arc::clone(names[i]), lv[index % lv.len()].clone());
                    index /= lv.len();
                }
                Hyperparams(Arc::new(h))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    fn space() -> Space {
        Space::new()
            .with("lr", Param::log_float(1e-4, 1e-1))
            .with("wd", Param::float(0.0, 0.1))
            .with("layers", Param::int(1, 4))
            .with("batch", Param::ordered([16i64, 32, 64, 128]))
            .with("act", Param::choice(["relu", "tanh"]))
            .with("seed", Param::fixed(7i64))
    }

    #[test]
    fn samples_stay_in_domain() {
        let s = space();
        s.validate().unwrap();
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for _ in 0..2000 {
            let h = s.sample(&mut rng);
            assert!(s.contains(&h), "{h}");
            s.check(&h).unwrap();
        }
    }

    #[test]
    fn log_prior_is_log_uniform() {
        let p = Param::log_float(1e-4, 1.0);
        let mut rng = Pcg64Mcg::seed_from_u64(2);
        let below = (0..20000)
            .filter(|_| p.sample(&mut rng).as_f64().unwrap() < 1e-2)
            .count();
        // Half the log range lies below 1e-2.
        assert!((9000..11000).contains(&below), "{below}");
    }

    #[test]
    fn validation_catches_bad_ranges() {
        assert!(Param::float(1.0, 1.0).validate("x").is_err());
        assert!(Param::float(2.0, 1.0).validate("x").is_err());
        assert!(Param::log_float(0.0, 1.0).validate("x").is_err());
        assert!(Param::float(0.0, f64::INFINITY).validate("x").is_err());
        assert!(Param::int(3, 3).validate("x").is_err());
        assert!(Param::choice(Vec::<i64>::new()).validate("x").is_err());
        let err = Param::log_float(-1.0, 1.0).validate("lr").unwrap_err();
        assert!(err.to_string().contains("lr"), "{err}");
    }

    #[test]
    fn projection_clamps_and_rounds() {
        let s = space();
        let h = Hyperparams::new()
            .with("lr", 5.0)
            .with("wd", -1.0)
            .with("layers", 9.7)
            .with("batch", 50i64)
            .with("act", "sigmoid")
            .with("seed", 1i64);
        let p = s.project(&h);
        assert_eq!(p.f64("lr"), Some(1e-1));
        assert_eq!(p.f64("wd"), Some(0.0));
        assert_eq!(p.get("layers"), Some(&Value::Int(4)));
        assert_eq!(p.get("batch"), Some(&Value::Int(64)));
        assert_eq!(p.get("act"), Some(&Value::Str("relu".into())));
        assert_eq!(p.get("seed"), Some(&Value::Int(7)));
        assert!(s.contains(&p));
    }

    #[test]
    fn serde_round_trip() {
        let s = space();
        let json = serde_json::to_string(&s).unwrap();
        let back: Space = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let h = s.sample(&mut rng);
        let json = serde_json::to_string(&h).unwrap();
        let back: Hyperparams = serde_json::from_str(&json).unwrap();
        assert_eq!(h, back);
    }

    #[test]
    fn grid_is_spread_and_bounded() {
        let s = Space::new()
            .with("a", Param::float(0.0, 1.0))
            .with("b", Param::choice(["x", "y"]));
        let g = s.grid(8);
        assert_eq!(g.len(), 8);
        for h in &g {
            assert!(s.contains(h));
        }
        let a: Vec<f64> = g.iter().map(|h| h.f64("a").unwrap()).collect();
        assert_eq!(a[0], 0.125);
        // Only two categories: the float takes the rest.
        let g = s.grid(9);
        assert_eq!(g.len(), 8);
        let g = Space::new().with("f", Param::fixed(1i64)).grid(5);
        assert_eq!(g.len(), 1);
    }
}
