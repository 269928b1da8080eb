//! Shared pieces of the poptune benchmarks (`cargo bench -p poptune-bench`).

use poptune::{Hyperparams, Metrics, Param, Space, Trainable, TrainableError};

/// A trainable that does no work: its state is one number, a "quality" drawn per member at
/// the start, reported as the score at every step. Exploits copy it, so the population
/// converges as a real one would, and the runner's own overhead is all that is measured.
#[derive(Clone, Debug)]
pub struct NoOp {
    /// Steps trained.
    pub steps: u64,
    /// The score it reports.
    pub quality: f64,
}

impl NoOp {
    /// Member `i`'s trainable.
    pub fn new(i: usize) -> Self {
        let mut z = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 31;
        NoOp {
            steps: 0,
            quality: (z >> 11) as f64 / (1u64 << 53) as f64,
        }
    }
}

impl Trainable for NoOp {
    type State = (u64, f64);

    fn step(&mut self, _h: &Hyperparams) -> Result<Metrics, TrainableError> {
        self.steps += 1;
        Ok(Metrics::new(self.quality))
    }

    fn save(&self) -> (u64, f64) {
        (self.steps, self.quality)
    }

    fn restore(&mut self, state: &(u64, f64)) {
        (self.steps, self.quality) = *state;
    }
}

/// A typical four-hyperparameter space.
pub fn space() -> Space {
    Space::new()
        .with("lr", Param::log_float(1e-5, 1e-1))
        .with("momentum", Param::float(0.0, 0.99))
        .with("weight_decay", Param::log_float(1e-6, 1e-2))
        .with("batch", Param::ordered([16i64, 32, 64, 128, 256]))
}
