//! Normalisation: hyperparameters to and from the unit box (over the space's bounds, on a
//! log scale for log parameters), min-max scaling of time and reward over a window, and the
//! standardised, clipped targets.

use poptune::{Hyperparams, Param, Space, Value};

/// A continuous dimension: a float or integer parameter with usable bounds.
#[derive(Clone, Debug)]
pub(crate) struct Cont {
    pub name: String,
    pub low: f64,
    pub high: f64,
    pub log: bool,
    pub int: bool,
}

impl Cont {
    /// The value's position in `[0, 1]`; a missing or non-numeric value sits in the middle.
    pub fn unit_of(&self, v: Option<&Value>) -> f64 {
        let Some(x) = v.and_then(Value::as_f64).filter(|x| x.is_finite()) else {
            return 0.5;
        };
        let u = if self.log {
            (x.max(self.low).ln() - self.low.ln()) / (self.high.ln() - self.low.ln())
        } else {
            (x - self.low) / (self.high - self.low)
        };
        u.clamp(0.0, 1.0)
    }

    /// The value at position `u` of the unit box, inside the bounds (integers rounded).
    pub fn value_at(&self, u: f64) -> Value {
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let x = if self.log {
            (self.low.ln() + u * (self.high.ln() - self.low.ln())).exp()
        } else {
            self.low + u * (self.high - self.low)
        };
        let x = x.clamp(self.low, self.high);
        if self.int {
            Value::Int(x.round().clamp(self.low, self.high) as i64)
        } else {
            Value::Float(x)
        }
    }
}

/// A categorical dimension (PB2-Mix only): a choice or an ordered list.
#[derive(Clone, Debug)]
pub(crate) struct Cat {
    pub name: String,
    pub values: Vec<Value>,
}

impl Cat {
    /// The value's index in the list, as a float; -1 for a value not in it.
    pub fn code(&self, v: Option<&Value>) -> f64 {
        v.and_then(|v| self.values.iter().position(|w| w == v))
            .map_or(-1.0, |i| i as f64)
    }
}

/// Which parameters the GP models, in the space's (name) order.
#[derive(Clone, Debug)]
pub(crate) struct Encoding {
    pub cont: Vec<Cont>,
    pub cat: Vec<Cat>,
}

impl Encoding {
    /// Floats and integers with finite, ordered bounds (and a positive low end when log) are
    /// continuous. With `mix`, choices and ordered lists of two or more values are
    /// categorical; otherwise they, fixed values and unusable ranges are left alone.
    pub fn new(space: &Space, mix: bool) -> Encoding {
        let mut cont = Vec::new();
        let mut cat = Vec::new();
        for (name, p) in space.iter() {
            let (low, high, log, int) = match p {
                Param::Float { low, high, log } => (*low, *high, *log, false),
                Param::Int { low, high, log } => (*low as f64, *high as f64, *log, true),
                Param::Ordered { values } | Param::Choice { values } => {
                    if mix && values.len() > 1 {
                        cat.push(Cat {
                            name: name.to_string(),
                            values: values.clone(),
                        });
                    }
                    continue;
                }
                Param::Fixed { .. } => continue,
            };
            let usable = low.is_finite() && high.is_finite() && low < high && (!log || low > 0.0);
            if usable {
                cont.push(Cont {
                    name: name.to_string(),
                    low,
                    high,
                    log,
                    int,
                });
            }
        }
        Encoding { cont, cat }
    }

    /// The unit-box positions of `h`'s continuous values.
    pub fn cont_units(&self, h: &Hyperparams) -> Vec<f64> {
        self.cont
            .iter()
            .map(|c| c.unit_of(h.get(&c.name)))
            .collect()
    }

    /// The codes of `h`'s categorical values.
    pub fn cat_codes(&self, h: &Hyperparams) -> Vec<f64> {
        self.cat.iter().map(|c| c.code(h.get(&c.name))).collect()
    }
}

/// Min-max scaling fitted to some values: `(v - min) / (max - min)`, or 0 for all when
/// they are equal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MinMax {
    pub min: f64,
    pub max: f64,
}

impl MinMax {
    /// Fitted to `values` (finite ones; none gives the identity on [0, 1]).
    pub fn fit(values: impl IntoIterator<Item = f64>) -> MinMax {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            min = min.min(v);
            max = max.max(v);
        }
        if min > max {
            MinMax { min: 0.0, max: 1.0 }
        } else {
            MinMax { min, max }
        }
    }

    /// The scaled value.
    pub fn apply(self, v: f64) -> f64 {
        let span = self.max - self.min;
        if span > 0.0 {
            (v - self.min) / span
        } else {
            0.0
        }
    }
}

/// Standardised targets clipped to [-2, 2]; `None` when they are constant (or not finite).
pub(crate) fn standardise(y: &[f64]) -> Option<Vec<f64>> {
    let n = y.len() as f64;
    if y.is_empty() {
        return None;
    }
    let mean = y.iter().sum::<f64>() / n;
    let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    if !(sd.is_finite() && sd > 1e-12 * mean.abs().max(1e-300)) {
        return None;
    }
    Some(
        y.iter()
            .map(|v| ((v - mean) / sd).clamp(-2.0, 2.0))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_box_round_trips_on_linear_and_log_scales() {
        let lin = Cont {
            name: "a".into(),
            low: 2.0,
            high: 6.0,
            log: false,
            int: false,
        };
        assert_eq!(lin.unit_of(Some(&Value::Float(3.0))), 0.25);
        assert_eq!(lin.value_at(0.25), Value::Float(3.0));
        assert_eq!(lin.unit_of(Some(&Value::Float(9.0))), 1.0);
        assert_eq!(lin.unit_of(Some(&Value::Float(f64::NAN))), 0.5);
        let log = Cont {
            name: "lr".into(),
            low: 1e-4,
            high: 1e-2,
            log: true,
            int: false,
        };
        assert!((log.unit_of(Some(&Value::Float(1e-3))) - 0.5).abs() < 1e-12);
        let back = log.value_at(0.5).as_f64().unwrap();
        assert!((back - 1e-3).abs() < 1e-15);
        let int = Cont {
            name: "n".into(),
            low: 1.0,
            high: 4.0,
            log: false,
            int: true,
        };
        assert_eq!(int.value_at(0.6), Value::Int(3));
        assert_eq!(int.value_at(f64::NAN), Value::Int(3));
    }

    #[test]
    fn min_max_scales_and_handles_constants() {
        let m = MinMax::fit([3.0, 5.0, f64::NAN, 4.0]);
        assert_eq!((m.apply(3.0), m.apply(4.0), m.apply(5.0)), (0.0, 0.5, 1.0));
        assert_eq!(MinMax::fit([2.0, 2.0]).apply(2.0), 0.0);
    }

    #[test]
    fn targets_are_standardised_and_clipped() {
        let y = standardise(&[1.0, 2.0, 3.0]).unwrap();
        let sd = (2.0f64 / 3.0).sqrt();
        assert!((y[0] + 1.0 / sd).abs() < 1e-12 && y[1] == 0.0);
        // One large outlier among many equal values is clipped at 2.
        let mut v = vec![0.0; 99];
        v.push(100.0);
        let y = standardise(&v).unwrap();
        assert_eq!(y[99], 2.0);
        assert!(standardise(&[4.0, 4.0]).is_none());
        assert!(standardise(&[]).is_none());
    }

    #[test]
    fn encoding_sorts_parameters_by_kind() {
        let s = Space::new()
            .with("lr", Param::log_float(1e-4, 1e-1))
            .with("layers", Param::int(1, 4))
            .with("act", Param::choice(["relu", "tanh"]))
            .with("batch", Param::ordered([16i64, 32]))
            .with("seed", Param::fixed(1i64));
        let plain = Encoding::new(&s, false);
        let names: Vec<&str> = plain.cont.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["layers", "lr"]);
        assert!(plain.cat.is_empty());
        let mix = Encoding::new(&s, true);
        let names: Vec<&str> = mix.cat.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["act", "batch"]);
        let h = Hyperparams::new().with("act", "tanh").with("batch", 64i64);
        assert_eq!(mix.cat_codes(&h), vec![1.0, -1.0]);
    }
}
