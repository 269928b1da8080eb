//! A member's hyperparameters.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Value;

/// A member's hyperparameters: one value per name of the space.
///
/// Cloning is cheap (the map is shared until one of the clones changes it), so that events,
/// snapshots and members can each hold their own copy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hyperparams(pub(super) Arc<BTreeMap<Arc<str>, Value>>);

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
