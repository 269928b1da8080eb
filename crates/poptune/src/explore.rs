//! Explore: how a member that exploited mutates its hyperparameters.
//!
//! Each hyperparameter is treated on its own: with probability `resample_probability` it is
//! drawn afresh from the prior, otherwise the method moves it. Whatever the method (a custom
//! function included), the result is projected into the space, so values stay inside their
//! bounds and integers stay integers.

use std::fmt;
use std::sync::Arc;

use rand::{Rng, RngCore};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::space::{Hyperparams, Param, Space, Value};

/// A user-supplied explore function: from the space, the hyperparameters to mutate and an RNG,
/// new hyperparameters (projected into the space afterwards).
pub type ExploreFn = dyn Fn(&Space, &Hyperparams, &mut dyn RngCore) -> Hyperparams + Send + Sync;

/// A custom explore function (library API only; it cannot be written in a file).
#[derive(Clone)]
pub struct CustomExplore(pub Arc<ExploreFn>);

impl fmt::Debug for CustomExplore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomExplore(..)")
    }
}

/// How hyperparameters move.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ExploreMethod {
    /// Multiply each number by one of `factors`, picked at random (integers round and move by
    /// at least one; ordered choices move to a neighbour; categories resample).
    Perturb {
        /// The factors; default 0.8 and 1.2.
        #[serde(default = "default_factors")]
        factors: Vec<f64>,
    },
    /// Add Gaussian noise of standard deviation `std` to each number (for log ranges, in
    /// natural-log units: the value is multiplied by `exp(N(0, std))`); integers round; ordered
    /// choices move to a neighbour; categories resample.
    Gaussian {
        /// The noise's standard deviation.
        std: f64,
    },
    /// Draw every hyperparameter from the prior.
    Resample,
    /// A function of the library's user.
    #[serde(skip)]
    Custom(CustomExplore),
}

fn default_factors() -> Vec<f64> {
    vec![0.8, 1.2]
}

fn default_resample() -> f64 {
    0.25
}

/// The explore step's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Explore {
    /// How values move.
    #[serde(flatten)]
    pub method: ExploreMethod,
    /// Probability that a hyperparameter is resampled from the prior instead (default 0.25).
    #[serde(default = "default_resample")]
    pub resample_probability: f64,
}

impl Default for Explore {
    fn default() -> Self {
        Explore {
            method: ExploreMethod::Perturb {
                factors: default_factors(),
            },
            resample_probability: default_resample(),
        }
    }
}

impl Explore {
    /// Multiplicative perturbation by these factors, with the default resample probability.
    pub fn perturb(factors: Vec<f64>) -> Self {
        Explore {
            method: ExploreMethod::Perturb { factors },
            ..Explore::default()
        }
    }

    /// Additive Gaussian noise, never resampling.
    pub fn gaussian(std: f64) -> Self {
        Explore {
            method: ExploreMethod::Gaussian { std },
            resample_probability: 0.0,
        }
    }

    /// Resampling from the prior.
    pub fn resample() -> Self {
        Explore {
            method: ExploreMethod::Resample,
            resample_probability: 1.0,
        }
    }

    /// A custom function, never resampling on its own.
    pub fn custom(
        f: impl Fn(&Space, &Hyperparams, &mut dyn RngCore) -> Hyperparams + Send + Sync + 'static,
    ) -> Self {
        Explore {
            method: ExploreMethod::Custom(CustomExplore(Arc::new(f))),
            resample_probability: 0.0,
        }
    }

    /// Sets the resample probability.
    pub fn with_resample_probability(mut self, p: f64) -> Self {
        self.resample_probability = p;
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = self.resample_probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(ConfigError::invalid(
                "resample_probability",
                p,
                "must lie between 0 and 1",
            ));
        }
        match &self.method {
            ExploreMethod::Perturb { factors } => {
                if factors.is_empty() {
                    return Err(ConfigError::invalid(
                        "factors",
                        "[]",
                        "give at least one factor, e.g. [0.8, 1.2]",
                    ));
                }
                if let Some(f) = factors.iter().find(|f| !f.is_finite() || **f <= 0.0) {
                    return Err(ConfigError::invalid(
                        "factors",
                        f,
                        "factors must be positive finite numbers",
                    ));
                }
            }
            ExploreMethod::Gaussian { std } => {
                if !std.is_finite() || *std < 0.0 {
                    return Err(ConfigError::invalid(
                        "std",
                        std,
                        "the standard deviation must be a finite number >= 0",
                    ));
                }
            }
            ExploreMethod::Resample | ExploreMethod::Custom(_) => {}
        }
        Ok(())
    }

    /// Mutates `h`; the result always lies in `space`.
    pub fn apply<R: Rng>(&self, space: &Space, h: &Hyperparams, rng: &mut R) -> Hyperparams {
        if let ExploreMethod::Custom(CustomExplore(f)) = &self.method {
            let mut out = space.project(&f(space, h, rng));
            if self.resample_probability > 0.0 {
                for (name, param) in space.iter_shared() {
                    if rng.random_bool(self.resample_probability) {
                        out.insert_shared(name, param.sample(rng));
                    }
                }
            }
            return out;
        }
        let mut out = Hyperparams::new();
        for (name, param) in space.iter_shared() {
            let current = match h.get(name) {
                Some(v) => param.project(v),
                None => param.sample(rng),
            };
            let resample = match self.method {
                ExploreMethod::Resample => true,
                _ => self.resample_probability > 0.0 && rng.random_bool(self.resample_probability),
            };
            let v = if resample {
                param.sample(rng)
            } else {
                self.move_value(param, &current, rng)
            };
            out.insert_shared(name, param.project(&v));
        }
        out
    }

    fn move_value<R: Rng>(&self, param: &Param, v: &Value, rng: &mut R) -> Value {
        match param {
            Param::Fixed { value } => value.clone(),
            Param::Choice { .. } => param.sample(rng),
            Param::Ordered { values } => neighbour(values, v, rng),
            Param::Float { log, .. } => {
                let x = v.as_f64().unwrap_or(0.0);
                Value::Float(match &self.method {
                    ExploreMethod::Perturb { factors } => x * pick(factors, rng),
                    ExploreMethod::Gaussian { std } => {
                        let n = normal(*std, rng);
                        if *log {
                            x * n.exp()
                        } else {
                            x + n
                        }
                    }
                    _ => x,
                })
            }
            Param::Int { log, .. } => {
                let x = v.as_f64().unwrap_or(0.0);
                let moved = match &self.method {
                    ExploreMethod::Perturb { factors } => {
                        let f = pick(factors, rng);
                        let y = (x * f).round();
                        // A factor that rounds back to the same integer still moves it by one.
                        if y == x && f > 1.0 {
                            x + 1.0
                        } else if y == x && f < 1.0 {
                            x - 1.0
                        } else {
                            y
                        }
                    }
                    ExploreMethod::Gaussian { std } => {
                        let n = normal(*std, rng);
                        if *log {
                            (x * n.exp()).round()
                        } else {
                            (x + n).round()
                        }
                    }
                    _ => x,
                };
                Value::Int(moved as i64)
            }
        }
    }
}

fn pick<R: Rng>(factors: &[f64], rng: &mut R) -> f64 {
    factors[rng.random_range(0..factors.len())]
}

fn normal<R: Rng>(std: f64, rng: &mut R) -> f64 {
    match Normal::new(0.0, std) {
        Ok(d) => d.sample(rng),
        Err(_) => 0.0,
    }
}

/// The value next to `v` in `values`, one way or the other at random; at either end, the
/// only neighbour.
fn neighbour<R: Rng>(values: &[Value], v: &Value, rng: &mut R) -> Value {
    if values.len() < 2 {
        return values.first().cloned().unwrap_or_else(|| v.clone());
    }
    let i = values.iter().position(|x| x == v).unwrap_or(0);
    let j = if i == 0 {
        1
    } else if i == values.len() - 1 {
        i - 1
    } else if rng.random_bool(0.5) {
        i + 1
    } else {
        i - 1
    };
    values[j].clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    #[test]
    fn perturb_multiplies_by_a_factor() {
        let space = Space::new().with("x", Param::float(0.0, 100.0));
        let h = Hyperparams::new().with("x", 10.0);
        let e = Explore::perturb(vec![0.8, 1.2]).with_resample_probability(0.0);
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let x = e.apply(&space, &h, &mut rng).f64("x").unwrap();
            seen.insert((x * 1000.0).round() as i64);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![8000, 12000]);
    }

    #[test]
    fn integers_always_move_and_stay_integers() {
        let space = Space::new().with("n", Param::int(1, 10));
        let h = Hyperparams::new().with("n", 2i64);
        let e = Explore::perturb(vec![0.8, 1.2]).with_resample_probability(0.0);
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for _ in 0..100 {
            let n = e.apply(&space, &h, &mut rng);
            let v = n.get("n").unwrap();
            assert!(matches!(v, Value::Int(1) | Value::Int(3)), "{v:?}");
        }
    }

    #[test]
    fn ordered_moves_to_a_neighbour() {
        let space = Space::new().with("b", Param::ordered([16i64, 32, 64, 128]));
        let e = Explore::gaussian(1.0);
        let mut rng = Pcg64Mcg::seed_from_u64(2);
        for (from, allowed) in [(16, vec![32]), (64, vec![32, 128]), (128, vec![64])] {
            let h = Hyperparams::new().with("b", from as i64);
            for _ in 0..50 {
                let b = e.apply(&space, &h, &mut rng).i64("b").unwrap();
                assert!(allowed.contains(&b), "{from} -> {b}");
            }
        }
    }

    #[test]
    fn gaussian_clamps_at_bounds() {
        let space = Space::new().with("h", Param::float(0.0, 10.0));
        let h = Hyperparams::new().with("h", 0.0);
        let e = Explore::gaussian(0.1);
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let mut zeros = 0;
        for _ in 0..1000 {
            let x = e.apply(&space, &h, &mut rng).f64("h").unwrap();
            assert!((0.0..=10.0).contains(&x));
            if x == 0.0 {
                zeros += 1;
            }
        }
        assert!((400..600).contains(&zeros), "{zeros}");
    }

    #[test]
    fn custom_explore_is_projected() {
        let space = Space::new().with("h", Param::float(0.0, 1.0));
        let e = Explore::custom(|_, h, _| {
            let x = h.f64("h").unwrap_or(0.0);
            Hyperparams::new().with("h", x + 5.0)
        });
        let mut rng = Pcg64Mcg::seed_from_u64(4);
        let out = e.apply(&space, &Hyperparams::new().with("h", 0.5), &mut rng);
        assert_eq!(out.f64("h"), Some(1.0));
    }

    #[test]
    fn resample_probability_is_respected() {
        let space = Space::new().with("c", Param::float(0.0, 1.0));
        let h = Hyperparams::new().with("c", 0.5);
        let e = Explore::perturb(vec![1.0]).with_resample_probability(0.25);
        let mut rng = Pcg64Mcg::seed_from_u64(5);
        let changed = (0..4000)
            .filter(|_| e.apply(&space, &h, &mut rng).f64("c") != Some(0.5))
            .count();
        assert!((900..1100).contains(&changed), "{changed}");
    }

    #[test]
    fn validation() {
        assert!(Explore::default().validate().is_ok());
        assert!(Explore::perturb(vec![]).validate().is_err());
        assert!(Explore::perturb(vec![-1.0]).validate().is_err());
        assert!(Explore::gaussian(-0.1).validate().is_err());
        assert!(Explore::default()
            .with_resample_probability(1.5)
            .validate()
            .is_err());
    }
}
