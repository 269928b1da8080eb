use super::*;
use crate::policy::{Algorithm, SyncMode};
use crate::space::{Hyperparams, Param};
use crate::trail::Evaluation;
use crate::Mode;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

fn fire() -> Fire {
    Fire::new(vec![4, 4], 2)
}

fn policy() -> Policy {
    Policy {
        algorithm: Algorithm::Fire(fire()),
        sync: SyncMode::Synchronous,
        ..Policy::default()
    }
}

fn space() -> Space {
    Space::new().with("lr", Param::float(0.0, 1.0))
}

/// 10 members at step 10; member m scores `scores[m]`, h = m / 10.
fn pop(scores: &[f64]) -> Population {
    let hs = (0..scores.len())
        .map(|m| Hyperparams::new().with("lr", m as f64 / 10.0))
        .collect();
    let mut p = Population::new(Mode::Max, hs, 0);
    for (m, &s) in scores.iter().enumerate() {
        p.record(m, 10, &[s]);
        p.trail_mut(m).push_point(10, s);
    }
    p
}

#[test]
fn roles_follow_the_sizes() {
    let f = fire();
    assert_eq!(f.members(), 10);
    assert_eq!(f.role(0), Role::Sub(0));
    assert_eq!(f.role(3), Role::Sub(0));
    assert_eq!(f.role(4), Role::Sub(1));
    assert_eq!(f.role(7), Role::Sub(1));
    assert_eq!(f.role(8), Role::Evaluator);
    assert_eq!(f.sub(1), 4..8);
    assert_eq!(f.evaluator_ids(), 8..10);
}

#[test]
fn bad_settings_are_refused() {
    assert!(fire().validate().is_ok());
    for f in [
        Fire::new(vec![4], 2),
        Fire::new(vec![4, 1], 2),
        Fire::new(vec![4, 4], 0),
        Fire {
            p_value: 1.5,
            ..fire()
        },
        Fire {
            max_eval_steps: 0,
            ..fire()
        },
    ] {
        assert!(f.validate().is_err(), "{f:?}");
    }
}

#[test]
fn smoothing_alignment_and_tests() {
    assert_eq!(smooth(&[1.0, 3.0, 5.0, 7.0], 2), vec![1.0, 2.0, 4.0, 6.0]);
    // b starts at 2; a reaches 2 at index 2.
    let a = [0.0, 1.0, 2.0, 3.0, 4.0];
    let b = [2.0, 2.5, 3.0];
    assert_eq!(overlap(&a, &b), Some(((2, 0), 3)));
    assert_eq!(overlap(&[0.0, 0.5], &[1.0, 2.0]), None);
    assert!((best_score_diff(&a, &a, &b, &b) - 1.0).abs() < 1e-12);
    // A curve above the other at every aligned point: a small p-value for many points.
    let up: Vec<f64> = (0..20).map(|i| i as f64 * 0.2).collect();
    let slow: Vec<f64> = (0..20).map(|i| i as f64 * 0.1).collect();
    assert!(binomial_p(&up, &up, &slow, &slow) < 0.01);
    assert!(binomial_p(&slow, &slow, &up, &up) > 0.5);
    assert!((binomial_tail(0, 10) - 1.0).abs() < 1e-12);
    assert!((binomial_tail(10, 10) - 0.5f64.powi(10)).abs() < 1e-12);
}

#[test]
fn greedy_members_copy_only_better_members_of_p1() {
    // P1 = 0..4 (member 3 worst in P1), P2 = 4..8 (all better than P1), evaluators idle.
    let p = pop(&[0.5, 0.6, 0.7, 0.1, 0.9, 0.9, 0.9, 0.9, 0.0, 0.0]);
    let pol = policy();
    for seed in 0..50 {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        match fire().decide(&pol, &space(), &p, 3, &mut rng) {
            Decision::Exploit { donor, h } => {
                assert!(donor < 4, "a P1 member copies within P1, not {donor}");
                assert!(p.member(donor).score > p.member(3).score);
                assert!(space().contains(&h));
            }
            d => panic!("the worst of P1 exploits, got {d:?}"),
        }
        // The best of P1 keeps going.
        let d = fire().decide(&pol, &space(), &p, 2, &mut rng);
        assert_eq!(d, Decision::Continue);
    }
}

#[test]
fn idle_evaluators_take_successive_parents_with_the_best_childs_hyperparameters() {
    let p = pop(&[0.5, 0.6, 0.7, 0.1, 0.9, 0.8, 0.7, 0.6, 0.0, 0.0]);
    let pol = policy();
    let a = fire().next_evaluation(&pol, &p, 8).unwrap();
    let b = fire().next_evaluation(&pol, &p, 9).unwrap();
    assert_eq!(a.child, 2, "the best of P1");
    assert_eq!(b.child, 2);
    assert!(fire().role(a.parent) == Role::Sub(1) && fire().role(b.parent) == Role::Sub(1));
    assert_ne!(
        a.parent, b.parent,
        "two evaluators of one round evaluate different members"
    );
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    match fire().decide(&pol, &space(), &p, 8, &mut rng) {
        Decision::Exploit { donor, h } => {
            assert_eq!(donor, a.parent);
            assert_eq!(h, p.member(2).h);
        }
        d => panic!("an idle evaluator starts an evaluation, got {d:?}"),
    }
}

/// Evaluator 8 evaluates member 4 against child 2 and climbs much faster than it.
fn evaluating(fast: bool) -> Population {
    let mut p = pop(&[0.5, 0.6, 0.7, 0.1, 0.9, 0.8, 0.7, 0.6, 0.0, 0.0]);
    for m in [2usize, 8] {
        p.trail_mut(m).curve.clear();
    }
    for i in 0..30u64 {
        p.trail_mut(2).push_point(10 + i, 0.7 + 0.001 * i as f64);
        let r = if fast { 0.7 + 0.01 * i as f64 } else { 0.6 };
        p.trail_mut(8).push_point(10 + i, r);
    }
    let last = p.member(8).trail.curve.back().map_or(0.0, |c| c.1);
    p.record(8, 40, &[last]);
    p.record(2, 40, &[0.729]);
    p.trail_mut(8).evaluation = Some(Evaluation {
        parent: 4,
        parent_epoch: 0,
        child: 2,
        child_epoch: 0,
        start: 10,
    });
    p
}

#[test]
fn a_winning_evaluator_replaces_its_child() {
    let p = evaluating(true);
    assert_eq!(fire().verdict(&p, 8), Verdict::Won);
    assert_eq!(fire().winner_for(&p, 2), Some(8));
    let mut rng = Pcg64Mcg::seed_from_u64(3);
    let d = fire().decide(&policy(), &space(), &p, 2, &mut rng);
    assert_eq!(
        d,
        Decision::Exploit {
            donor: 8,
            h: p.member(8).h.clone()
        }
    );
    // The evaluator waits for its child meanwhile.
    assert_eq!(
        fire().decide(&policy(), &space(), &p, 8, &mut rng),
        Decision::Continue
    );
}

#[test]
fn a_losing_evaluation_ends_and_one_whose_child_moved_on_too() {
    let mut p = evaluating(false);
    // Never reaching the child's level, it runs until max_eval_steps (50) have passed.
    assert_eq!(fire().verdict(&p, 8), Verdict::Running);
    p.record(8, 60, &[0.6]);
    assert_eq!(fire().verdict(&p, 8), Verdict::Over);
    let mut q = evaluating(true);
    q.trail_mut(2).took_state();
    assert_eq!(fire().verdict(&q, 8), Verdict::Over);
    assert_eq!(fire().winner_for(&q, 2), None);
}
