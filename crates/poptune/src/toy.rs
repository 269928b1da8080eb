//! The toy example of the PBT paper (Jaderberg et al., 2017, Figure 2).
//!
//! Maximise Q(θ) = 1.2 − (θ0² + θ1²), a black box, by gradient ascent on the surrogate
//! Q̂(θ|h) = 1.2 − (h0·θ0² + h1·θ1²) with step size η. θ starts at (0.9, 0.9); two members
//! start with h = (1, 0) and (0, 1); 40 steps; ready every 5 steps; exploit = winner takes all,
//! inheriting weights only; explore = Gaussian noise (std 0.1) on h, clamped at 0.
//!
//! The paper gives no η. The default, η = 0.05, shrinks a coordinate by the factor
//! (1 − 2η)^5 = 0.59 per 5-step segment: a member with a fixed h (grid search) then ends at
//! Q = 0.39 − 0.81·0.9^80 ≈ 0.3898, while PBT, whose members alternate which coordinate they
//! shrink, ends close to 1.2 within the 40 steps, as in the paper's figure. Larger η makes
//! every method converge faster; η ≥ 1 / (2·h) diverges.

use serde::{Deserialize, Serialize};

use crate::error::TrainableError;
use crate::experiment::{Baseline, Experiment, Initial};
use crate::exploit::Exploit;
use crate::explore::Explore;
use crate::policy::{Inherit, Policy, SyncMode};
use crate::space::{Hyperparams, Param, Space};
use crate::trainable::{Metrics, Trainable};

/// The evaluation objective Q(θ) = 1.2 − (θ0² + θ1²).
pub fn q(theta: [f64; 2]) -> f64 {
    1.2 - (theta[0] * theta[0] + theta[1] * theta[1])
}

/// The toy's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyConfig {
    /// Gradient-ascent step size η (default 0.05).
    pub eta: f64,
    /// Steps per member (default 40).
    pub steps: u64,
    /// Ready interval (default 5).
    pub interval: u64,
    /// Standard deviation of the Gaussian explore noise on h (default 0.1).
    pub noise: f64,
    /// What an exploiting member inherits (default: weights only, as in the paper).
    pub inherit: Inherit,
    /// Worker threads (default 1: the toy is far too small to gain from more).
    pub workers: usize,
    /// PBT (default), or PB2 choosing h instead of the Gaussian noise.
    #[serde(default)]
    pub algorithm: crate::policy::Algorithm,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig {
            eta: 0.05,
            steps: 40,
            interval: 5,
            noise: 0.1,
            inherit: Inherit::WeightsOnly,
            workers: 1,
            algorithm: crate::policy::Algorithm::Pbt,
        }
    }
}

/// The variants the paper's figure compares.
pub const TOY_VARIANTS: [Baseline; 4] = [
    Baseline::Pbt,
    Baseline::ExploreOnly,
    Baseline::ExploitOnly,
    Baseline::Grid,
];

/// θ starts here.
pub const THETA_START: [f64; 2] = [0.9, 0.9];

/// One toy member: θ trained by gradient ascent on the surrogate.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyTrainable {
    /// The parameters θ.
    pub theta: [f64; 2],
    /// The step size η.
    pub eta: f64,
}

impl ToyTrainable {
    /// A member at θ = (0.9, 0.9).
    pub fn new(eta: f64) -> Self {
        ToyTrainable {
            theta: THETA_START,
            eta,
        }
    }
}

impl Trainable for ToyTrainable {
    type State = [f64; 2];

    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
        let h0 = h
            .f64("h0")
            .ok_or_else(|| TrainableError::new("missing h0"))?;
        let h1 = h
            .f64("h1")
            .ok_or_else(|| TrainableError::new("missing h1"))?;
        // Gradient of the surrogate: dQ̂/dθi = −2·hi·θi.
        self.theta[0] += self.eta * (-2.0 * h0 * self.theta[0]);
        self.theta[1] += self.eta * (-2.0 * h1 * self.theta[1]);
        Ok(Metrics::new(q(self.theta))
            .with("theta0", self.theta[0])
            .with("theta1", self.theta[1]))
    }

    fn save(&self) -> [f64; 2] {
        self.theta
    }

    fn restore(&mut self, state: &[f64; 2]) {
        self.theta = *state;
    }
}

impl ToyConfig {
    /// The toy as a poptune experiment, for one variant and seed.
    pub fn experiment(&self, variant: Baseline, seed: u64) -> Experiment {
        let space = Space::new()
            .with("h0", Param::float(0.0, 10.0))
            .with("h1", Param::float(0.0, 10.0));
        let policy = Policy {
            interval: self.interval,
            burn_in: 0,
            exploit: Exploit::WinnerTakesAll,
            explore: Explore::gaussian(self.noise),
            inherit: self.inherit,
            sync: SyncMode::Synchronous,
            algorithm: self.algorithm.clone(),
            ..Policy::default()
        };
        let initial = vec![
            Hyperparams::new().with("h0", 1.0).with("h1", 0.0),
            Hyperparams::new().with("h0", 0.0).with("h1", 1.0),
        ];
        Experiment::new(space)
            .policy(policy)
            .population(2)
            .steps(self.steps)
            .seed(seed)
            .workers(self.workers)
            .initial(Initial::Given(initial))
            .baseline(variant)
    }

    /// Grid search's result in closed form: a member with h = (1, 0) ends at
    /// θ = (0.9·(1 − 2η)^T, 0.9), so Q = 1.2 − 0.81·(1 − 2η)^(2T) − 0.81 (and the same for
    /// h = (0, 1)).
    pub fn grid_closed_form(&self) -> f64 {
        let shrink = (1.0 - 2.0 * self.eta).powf(2.0 * self.steps as f64);
        1.2 - 0.81 * shrink - 0.81
    }
}
