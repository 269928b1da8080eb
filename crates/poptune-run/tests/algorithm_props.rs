//! Properties of the PB2, PB2-Mix and FIRE-PBT decisions on random populations: the new
//! hyperparameters stay in the space, the same seed gives the same decision, and no member
//! copies a worse one (by the ranking its algorithm uses).

use poptune::fire::{Fire, Role};
use poptune::trail::{Evaluation, Interval};
use poptune::{Algorithm, Decision, Hyperparams, Mode, Param, Policy, Population, Space, SyncMode};
use poptune_run::guide::Pb2Guide;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

fn space() -> Space {
    Space::new()
        .with("lr", Param::log_float(1e-4, 1e-1))
        .with("momentum", Param::float(0.0, 0.99))
        .with("layers", Param::int(1, 8))
        .with("act", Param::choice(["relu", "tanh", "gelu"]))
        .with("batch", Param::ordered([16i64, 32, 64]))
}

/// A population of `scores.len()` members at `rounds * 5` steps, each with `rounds` intervals
/// in its trail (PB2's data) and a curve (FIRE-PBT's).
fn population(scores: &[f64], rounds: u64, seed: u64, mode: Mode) -> Population {
    let s = space();
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let hs: Vec<Hyperparams> = scores.iter().map(|_| s.sample(&mut rng)).collect();
    let mut pop = Population::new(mode, hs.clone(), 0);
    for (m, &score) in scores.iter().enumerate() {
        let step = rounds * 5;
        pop.record(m, step, &[score]);
        for r in 0..rounds {
            let frac = (r + 1) as f64 / rounds as f64;
            pop.trail_mut(m).push_interval(
                Interval {
                    t0: r * 5,
                    r0: mode.key(score) * (frac - 0.2),
                    t: r * 5 + 5,
                    r: mode.key(score) * frac,
                    h: hs[m].clone(),
                },
                1000,
            );
            for k in 0..5 {
                let t = r * 5 + k;
                pop.trail_mut(m)
                    .push_point(t + 1, mode.key(score) * (t as f64 + 1.0) / step as f64);
            }
        }
    }
    pop
}

fn policy(algorithm: Algorithm) -> Policy {
    Policy {
        algorithm,
        sync: SyncMode::Synchronous,
        ..Policy::default()
    }
}

fn decide(p: &Policy, pop: &Population, m: usize, seed: u64) -> Decision {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    p.decide_guided(&space(), pop, m, Some(&Pb2Guide), &[], &mut rng)
}

fn key(pop: &Population, m: usize) -> f64 {
    pop.mode().key(pop.member(m).score.unwrap_or(f64::NAN))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn pb2_decisions_stay_in_the_space_repeat_and_copy_only_better_members(
        scores in proptest::collection::vec(-10.0f64..10.0, 4..10),
        rounds in 1u64..8,
        seed in 0u64..1000,
        min in any::<bool>(),
        mix in any::<bool>(),
    ) {
        let mode = if min { Mode::Min } else { Mode::Max };
        let pop = population(&scores, rounds, seed, mode);
        let p = policy(if mix { Algorithm::Pb2Mix } else { Algorithm::Pb2 });
        for m in 0..scores.len() {
            let d = decide(&p, &pop, m, seed + m as u64);
            prop_assert_eq!(&d, &decide(&p, &pop, m, seed + m as u64));
            if let Decision::Exploit { donor, h } = &d {
                prop_assert!(space().contains(h), "{:?}", h);
                prop_assert!(key(&pop, *donor) > key(&pop, m));
                if !mix {
                    // Plain PB2 inherits what is not continuous.
                    prop_assert_eq!(h.get("act"), pop.member(*donor).h.get("act"));
                    prop_assert_eq!(h.get("batch"), pop.member(*donor).h.get("batch"));
                }
            }
        }
    }

    #[test]
    fn fire_decisions_stay_in_the_space_repeat_and_copy_only_better_members(
        scores in proptest::collection::vec(-10.0f64..10.0, 10..11),
        rounds in 1u64..8,
        seed in 0u64..1000,
        evaluating in any::<bool>(),
    ) {
        let fire = Fire::new(vec![4, 3], 3);
        let mut pop = population(&scores, rounds, seed, Mode::Max);
        if evaluating {
            // Evaluators 7, 8, 9 evaluate members 4, 5, 6 of P2 against the best of P1.
            let best = (0..4).max_by(|&a, &b| key(&pop, a).total_cmp(&key(&pop, b)).then(b.cmp(&a))).unwrap_or(0);
            for (e, parent) in [(7usize, 4usize), (8, 5), (9, 6)] {
                pop.trail_mut(e).evaluation = Some(Evaluation {
                    parent, parent_epoch: 0, child: best, child_epoch: 0, start: 0,
                });
            }
        }
        let p = policy(Algorithm::Fire(fire.clone()));
        for m in 0..scores.len() {
            let d = decide(&p, &pop, m, seed + m as u64);
            prop_assert_eq!(&d, &decide(&p, &pop, m, seed + m as u64));
            let h = match &d {
                Decision::Exploit { h, .. } | Decision::Explore { h } => h,
                Decision::Continue => continue,
            };
            prop_assert!(space().contains(h), "{:?}", h);
            let Decision::Exploit { donor, .. } = &d else { continue };
            let donor = *donor;
            match (fire.role(m), fire.role(donor)) {
                // A member that an evaluator beat takes the evaluator's state.
                (Role::Sub(_), Role::Evaluator) => {
                    prop_assert!(fire.winner_for(&pop, m) == Some(donor));
                }
                // P1 copies a better-scoring member of P1.
                (Role::Sub(0), Role::Sub(0)) => prop_assert!(key(&pop, donor) > key(&pop, m)),
                // P2 copies within P2, both being evaluated.
                (Role::Sub(1), Role::Sub(1)) => {
                    prop_assert!(evaluating);
                }
                // An evaluator starts an evaluation of a member of P2 with P1's best hyperparameters.
                (Role::Evaluator, Role::Sub(k)) => prop_assert!(k >= 1),
                (a, b) => prop_assert!(false, "member {} ({:?}) copied {} ({:?})", m, a, donor, b),
            }
        }
    }
}
