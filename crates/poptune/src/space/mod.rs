//! Search spaces: the hyperparameters a population explores, their bounds and their priors.
//!
//! A [`Space`] maps names to [`Param`]s. A member's hyperparameters are a [`Hyperparams`]
//! value: one [`Value`] per name. Every value that poptune produces (by sampling, by a grid, by
//! exploring) is passed through [`Space::project`], so it always lies inside the bounds and an
//! integer parameter always holds an integer.

mod hyperparams;
mod param;
mod value;

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::SpaceError;
pub use hyperparams::Hyperparams;
pub use param::Param;
pub use value::Value;

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
mod tests;
