//! Runs the paper's toy example ([`poptune::toy`]) in memory.

use poptune::toy::{ToyConfig, ToyTrainable};
use poptune::{Baseline, Outcome};

use crate::memory::Run;
use crate::RunError;

/// Runs one variant of the toy for one seed.
pub fn run(cfg: &ToyConfig, variant: Baseline, seed: u64) -> Result<Outcome<[f64; 2]>, RunError> {
    let eta = cfg.eta;
    cfg.experiment(variant, seed)
        .run(|_| ToyTrainable::new(eta))
        .map(|o| o.outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_matches_closed_form() {
        let cfg = ToyConfig::default();
        for seed in 0..3 {
            let out = run(&cfg, Baseline::Grid, seed).unwrap();
            let best = out.best_score().unwrap();
            assert!((best - cfg.grid_closed_form()).abs() < 1e-12, "{best}");
            assert!(out.events.is_empty());
        }
    }

    #[test]
    fn pbt_beats_grid_and_explore_only() {
        let cfg = ToyConfig::default();
        let mean = |v: Baseline| {
            (0..20)
                .map(|s| run(&cfg, v, s).unwrap().best_score().unwrap())
                .sum::<f64>()
                / 20.0
        };
        let pbt = mean(Baseline::Pbt);
        assert!(pbt >= 1.17, "PBT mean {pbt}");
        assert!(pbt > mean(Baseline::ExploreOnly) + 0.1);
        assert!(pbt > mean(Baseline::Grid) + 0.5);
    }
}
