//! Not only gradient descent: simulated annealing on a travelling-salesman instance, with PBT
//! tuning the temperature and the mix of moves.
//!
//! A member's state θ is a tour (and its generator); a step is `moves` proposals, each a 2-opt
//! reversal (with probability `two_opt`) or else moving one city elsewhere, accepted by the
//! Metropolis rule at `temperature` (relative to the mean edge length). The score is the tour's
//! length (lower is better).

use std::path::Path;
use std::sync::Arc;

use poptune::{Hyperparams, Metrics, Trainable, TrainableError};
use poptune_run::inprocess::Persist;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

/// Cities in the unit square, from a fixed seed.
#[derive(Debug, Clone)]
pub struct Instance {
    pub xy: Vec<(f64, f64)>,
}

impl Instance {
    /// `n` cities drawn uniformly from the unit square with generator seed `seed`.
    pub fn random(n: usize, seed: u64) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        Instance {
            xy: (0..n).map(|_| (rng.random(), rng.random())).collect(),
        }
    }

    fn d(&self, a: usize, b: usize) -> f64 {
        let (p, q) = (self.xy[a], self.xy[b]);
        ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt()
    }

    /// The length of the closed tour.
    pub fn length(&self, tour: &[usize]) -> f64 {
        (0..tour.len())
            .map(|i| self.d(tour[i], tour[(i + 1) % tour.len()]))
            .sum()
    }
}

/// A member's state: its tour and generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tour {
    pub tour: Vec<usize>,
    rng: Pcg64Mcg,
}

/// Simulated annealing as a trainable.
pub struct Annealer {
    inst: Arc<Instance>,
    state: Tour,
    moves: usize,
}

impl Annealer {
    /// A random starting tour for `seed`; `moves` proposals per step.
    pub fn new(inst: Arc<Instance>, seed: u64, moves: usize) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let mut tour: Vec<usize> = (0..inst.xy.len()).collect();
        rand::seq::SliceRandom::shuffle(&mut tour[..], &mut rng);
        Annealer {
            inst,
            state: Tour { tour, rng },
            moves,
        }
    }

    /// The current tour's length.
    pub fn length(&self) -> f64 {
        self.inst.length(&self.state.tour)
    }
}

impl Trainable for Annealer {
    type State = Tour;

    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
        let temp = h
            .f64("temperature")
            .ok_or_else(|| TrainableError::new("hyperparameter \"temperature\" is missing"))?;
        let two_opt = h.f64("two_opt").unwrap_or(0.5);
        let inst = &*self.inst;
        let n = inst.xy.len();
        // Temperatures are relative to the mean edge of a random tour (about 0.52).
        let t = temp * 0.52;
        let Tour { tour, rng } = &mut self.state;
        let mut accepted = 0usize;
        for _ in 0..self.moves {
            if rng.random::<f64>() < two_opt {
                // Reverse tour[i+1..=j].
                let mut i = rng.random_range(0..n);
                let mut j = rng.random_range(0..n);
                if i > j {
                    std::mem::swap(&mut i, &mut j);
                }
                if j - i < 2 || (i == 0 && j == n - 1) {
                    continue;
                }
                let (a, b, c, d) = (tour[i], tour[i + 1], tour[j], tour[(j + 1) % n]);
                let delta = inst.d(a, c) + inst.d(b, d) - inst.d(a, b) - inst.d(c, d);
                if delta <= 0.0 || (t > 0.0 && rng.random::<f64>() < (-delta / t).exp()) {
                    tour[i + 1..=j].reverse();
                    accepted += 1;
                }
            } else {
                // Move the city at i to between positions j and j+1.
                let i = rng.random_range(0..n);
                let j = rng.random_range(0..n);
                if i == j || (j + 1) % n == i {
                    continue;
                }
                let (p, c, q) = (tour[(i + n - 1) % n], tour[i], tour[(i + 1) % n]);
                let (a, b) = (tour[j], tour[(j + 1) % n]);
                if a == c || b == c {
                    continue;
                }
                let delta =
                    inst.d(p, q) - inst.d(p, c) - inst.d(c, q) + inst.d(a, c) + inst.d(c, b)
                        - inst.d(a, b);
                if delta <= 0.0 || (t > 0.0 && rng.random::<f64>() < (-delta / t).exp()) {
                    let city = tour.remove(i);
                    let at = tour.iter().position(|&x| x == a).map_or(0, |k| k + 1);
                    tour.insert(at, city);
                    accepted += 1;
                }
            }
        }
        let len = inst.length(tour);
        Ok(Metrics::new(len).with("acceptance", accepted as f64 / self.moves.max(1) as f64))
    }

    fn save(&self) -> Tour {
        self.state.clone()
    }

    fn restore(&mut self, state: &Tour) {
        self.state = state.clone();
    }
}

impl Persist for Annealer {
    fn save_state(state: &Tour, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("tour.json"), serde_json::to_vec(state)?)
    }

    fn load_state(&self, dir: &Path) -> std::io::Result<Tour> {
        let t: Tour = serde_json::from_slice(&std::fs::read(dir.join("tour.json"))?)?;
        let mut seen = vec![false; self.inst.xy.len()];
        for &c in &t.tour {
            if c >= seen.len() || std::mem::replace(&mut seen[c], true) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "tour.json is not a permutation of the cities",
                ));
            }
        }
        if seen.iter().any(|s| !s) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "tour.json misses cities",
            ));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annealing_keeps_a_permutation_and_shortens_the_tour() {
        let inst = Arc::new(Instance::random(60, 7));
        let mut a = Annealer::new(Arc::clone(&inst), 1, 5000);
        let start = a.length();
        let h = Hyperparams::new()
            .with("temperature", 0.01)
            .with("two_opt", 0.7);
        let mut last = start;
        for _ in 0..10 {
            last = a.step(&h).unwrap().score;
        }
        let mut sorted = a.save().tour;
        sorted.sort_unstable();
        assert_eq!(sorted, (0..60).collect::<Vec<_>>());
        assert!((last - a.length()).abs() < 1e-12);
        assert!(last < 0.5 * start, "{last} vs {start}");
        // Save, load, go on: the same as going on directly.
        let dir = tempfile::tempdir().unwrap();
        Annealer::save_state(&a.save(), dir.path()).unwrap();
        let mut b = Annealer::new(Arc::clone(&inst), 99, 5000);
        let s = b.load_state(dir.path()).unwrap();
        b.restore(&s);
        assert_eq!(a.step(&h).unwrap(), b.step(&h).unwrap());
        std::fs::write(
            dir.path().join("tour.json"),
            "{\"tour\":[1,1],\"rng\":null}",
        )
        .unwrap();
        assert!(b.load_state(dir.path()).is_err());
    }
}
