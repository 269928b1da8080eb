//! The README's Rust example, kept in an experiment directory: PBT tunes the learning rate of
//! gradient descent on (x − 3)². Run it with
//! `cargo run --release -p poptune-run --example quadratic -- results/quadratic`; Ctrl-C (or a
//! kill) stops it, and the same command continues it. Then `poptune status results/quadratic`,
//! `poptune report results/quadratic` and `poptune export results/quadratic --out best` read
//! the directory.

use std::path::{Path, PathBuf};

use poptune::{Experiment, Hyperparams, Metrics, Param, Policy, Space, Trainable, TrainableError};
use poptune_run::inprocess::Persist;
use poptune_run::{Quiet, Run};

struct Quadratic {
    x: f64,
}

impl Trainable for Quadratic {
    type State = f64;
    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
        let lr = h
            .f64("lr")
            .ok_or_else(|| TrainableError::new("missing lr"))?;
        self.x -= lr * 2.0 * (self.x - 3.0);
        Ok(Metrics::new(-(self.x - 3.0).powi(2))) // the score: higher is better
    }
    fn save(&self) -> f64 {
        self.x
    }
    fn restore(&mut self, s: &f64) {
        self.x = *s
    }
}

/// How a state is written to a checkpoint directory and read back.
impl Persist for Quadratic {
    fn save_state(x: &f64, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("x"), x.to_string())
    }
    fn load_state(&self, dir: &Path) -> std::io::Result<f64> {
        let text = std::fs::read_to_string(dir.join("x"))?;
        text.trim().parse().map_err(std::io::Error::other)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "results/quadratic".into())
        .into();
    let space = Space::new().with("lr", Param::log_float(1e-4, 0.4));
    let experiment = Experiment::new(space)
        .policy(Policy::default()) // truncation 25%, perturb ×0.8/×1.2, ready every 5 steps
        .population(16)
        .steps(100)
        .target(-1e-12) // stop once a member is this close
        .seed(7);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let summary = experiment.run_in("quadratic", &dir, |_| Quadratic { x: 0.0 }, &Quiet, &stop)?;
    println!("{}: {}", dir.display(), summary.status);
    if let Some((member, score)) = summary.best {
        println!(
            "best member {member}: score {}",
            poptune::format::score(score)
        );
    }
    Ok(())
}
