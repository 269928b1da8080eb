//! The trainable contract for Rust code.

use serde::{Deserialize, Serialize};

use crate::error::TrainableError;
use crate::space::Hyperparams;

/// What one training step reports: the score PBT ranks members by, and any other metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The evaluation objective Q(θ) after the step (e.g. validation accuracy).
    pub score: f64,
    /// Other named values worth recording (training loss, parameters to plot...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, f64)>,
}

impl Metrics {
    /// Just a score.
    pub fn new(score: f64) -> Self {
        Metrics {
            score,
            values: Vec::new(),
        }
    }

    /// Adds a named value (builder style).
    pub fn with(mut self, name: &str, value: f64) -> Self {
        self.values.push((name.to_string(), value));
        self
    }

    /// The value called `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

/// An iterative training process that poptune can drive.
///
/// `step` trains one step with the given hyperparameters and reports metrics. `save` returns
/// the full training state θ (weights, optimiser state, RNG state...) and `restore` brings it
/// back; an in-process exploit clones the saved state, nothing is serialised. For a schedule
/// to replay exactly, `restore(save())` must leave the trainable exactly as it was and `step`
/// must depend only on the state and the hyperparameters.
///
/// ```
/// use poptune::{Hyperparams, Metrics, Trainable, TrainableError};
///
/// /// Minimise (x - 3)^2 by gradient descent; the learning rate is tuned.
/// struct Quadratic { x: f64 }
///
/// impl Trainable for Quadratic {
///     type State = f64;
///     fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
///         let lr = h.f64("lr").ok_or_else(|| TrainableError::new("missing lr"))?;
///         self.x -= lr * 2.0 * (self.x - 3.0);
///         Ok(Metrics::new((self.x - 3.0).powi(2)))
///     }
///     fn save(&self) -> f64 { self.x }
///     fn restore(&mut self, state: &f64) { self.x = *state }
/// }
///
/// let mut q = Quadratic { x: 0.0 };
/// let m = q.step(&Hyperparams::new().with("lr", 0.25)).unwrap();
/// assert_eq!(m.score, 2.25);
/// ```
pub trait Trainable: Send {
    /// The training state θ.
    type State: Clone + Send + Sync + 'static;

    /// Trains one step with hyperparameters `h` and reports the metrics after it.
    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError>;

    /// The current training state.
    fn save(&self) -> Self::State;

    /// Replaces the training state.
    fn restore(&mut self, state: &Self::State);
}
