//! The time-varying batch EXP3 bandit that PB2-Mix uses for categorical hyperparameters.
//!
//! One bandit per categorical parameter; its arms are the parameter's values. The rows of the
//! window are replayed in time order, grouped by their start time (one group is one round of
//! the population). Before each round the log-weights shrink by the factor `1 - FORGET`, so
//! that old rounds count less (the time-varying part); then every arm played in the round
//! adds `η · r̄` to its log-weight, where `r̄` is the mean reward of its rows (the clipped
//! standardised targets, `[-2, 2]`, mapped to `[0, 1]`) and `η = sqrt(8 ln K / R)` for `K`
//! arms and `R` rounds. The arms' probabilities are EXP3's: `(1 - γ)·w / Σw + γ / K` with
//! `γ = min(1, sqrt(K ln K / ((e - 1) · R)))`.
//!
//! Unlike single-play EXP3, a played arm's reward is not divided by its probability: a round
//! of a population shows several arms at once, and the recorded history was not drawn from
//! this bandit's probabilities (members keep and inherit values), so importance weights by
//! them would penalise the arm that is doing well.
//!
//! Batch: an arm already given to another member at this time is left out of the draw until
//! every arm has been given.

use rand::Rng;

/// How much of the log-weights a round forgets.
pub const FORGET: f64 = 0.1;

/// One played arm: the round's time, the arm (or `None` for a value not in the list) and the
/// normalised reward in `[-2, 2]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Play {
    pub t: f64,
    pub arm: Option<usize>,
    pub reward: f64,
}

/// The arms' probabilities after replaying `plays`.
pub(crate) fn probabilities(arms: usize, plays: &[Play]) -> Vec<f64> {
    if arms <= 1 {
        return vec![1.0; arms];
    }
    let mut order: Vec<&Play> = plays.iter().filter(|p| p.t.is_finite()).collect();
    order.sort_by(|a, b| a.t.total_cmp(&b.t));
    let rounds = order.windows(2).filter(|w| w[0].t != w[1].t).count() + 1;
    let k = arms as f64;
    let gamma = (k * k.ln() / ((std::f64::consts::E - 1.0) * rounds as f64))
        .sqrt()
        .min(1.0);
    let eta = (8.0 * k.ln() / rounds as f64).sqrt();
    let mut logw = vec![0.0; arms];
    let mut i = 0;
    while i < order.len() {
        let t = order[i].t;
        let mut sum = vec![0.0; arms];
        let mut count = vec![0usize; arms];
        while i < order.len() && order[i].t == t {
            if let Some(a) = order[i].arm.filter(|&a| a < arms) {
                sum[a] += ((order[i].reward + 2.0) / 4.0).clamp(0.0, 1.0);
                count[a] += 1;
            }
            i += 1;
        }
        logw.iter_mut().for_each(|w| *w *= 1.0 - FORGET);
        for a in 0..arms {
            if count[a] > 0 {
                let mean = sum[a] / count[a] as f64;
                logw[a] += eta * mean;
            }
        }
    }
    probs(&logw, gamma)
}

fn probs(logw: &[f64], gamma: f64) -> Vec<f64> {
    let max = logw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logw.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let k = logw.len() as f64;
    w.iter()
        .map(|wi| (1.0 - gamma) * wi / total + gamma / k)
        .collect()
}

/// Draws an arm from `p`, leaving out the arms in `taken` unless that leaves none.
pub(crate) fn draw(p: &[f64], taken: &[usize], rng: &mut impl Rng) -> usize {
    let mut q: Vec<f64> = p
        .iter()
        .enumerate()
        .map(|(a, &pa)| if taken.contains(&a) { 0.0 } else { pa })
        .collect();
    if q.iter().sum::<f64>() <= 0.0 {
        q = p.to_vec();
    }
    let total: f64 = q.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (a, qa) in q.iter().enumerate() {
        if *qa > 0.0 && u < *qa {
            return a;
        }
        u -= qa;
    }
    q.iter().rposition(|&x| x > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    fn plays(good: usize, rounds: usize) -> Vec<Play> {
        (0..rounds)
            .flat_map(|t| {
                (0..3).map(move |a| Play {
                    t: t as f64,
                    arm: Some(a),
                    reward: if a == good { 2.0 } else { -2.0 },
                })
            })
            .collect()
    }

    #[test]
    fn the_rewarded_arm_gets_the_most_probability() {
        let p = probabilities(3, &plays(1, 20));
        assert!(p[1] > p[0] && p[1] > p[2], "{p:?}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Without data: uniform.
        let p = probabilities(3, &[]);
        assert!(p.iter().all(|&x| (x - 1.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn recent_rounds_count_more() {
        // Arm 0 was best for a long time, then arm 2 for the last rounds.
        let mut p = plays(0, 30);
        p.extend(plays(2, 30).into_iter().map(|mut x| {
            x.t += 30.0;
            x
        }));
        let prob = probabilities(3, &p);
        assert!(prob[2] > prob[0], "{prob:?}");
    }

    #[test]
    fn draws_avoid_taken_arms() {
        let mut rng = Pcg64Mcg::seed_from_u64(4);
        let p = [0.9, 0.05, 0.05];
        for _ in 0..100 {
            assert_ne!(draw(&p, &[0], &mut rng), 0);
        }
        // All taken: draw from p.
        let a = draw(&p, &[0, 1, 2], &mut rng);
        assert!(a < 3);
    }
}
