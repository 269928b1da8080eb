//! Properties of PB2's decisions: bounds, determinism, finding a clear optimum, batch
//! diversity, PB2-Mix's categories, the fallback and bad data.

use poptune::{Hyperparams, Param, Space, Value};
use poptune_pb2::{decide, suggest, Config, Pb2Data, Query, Row};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

fn rng(seed: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed)
}

/// `members` members trained for `steps` intervals with random hyperparameters; each
/// interval's rate is `rate(h)` plus a little noise.
fn synthetic(
    space: &Space,
    members: usize,
    steps: usize,
    seed: u64,
    rate: impl Fn(&Hyperparams) -> f64,
) -> Pb2Data {
    synthetic_best(space, members, steps, seed, rate).0
}

/// As [`synthetic`], with the best final reward (the donor's).
fn synthetic_best(
    space: &Space,
    members: usize,
    steps: usize,
    seed: u64,
    rate: impl Fn(&Hyperparams) -> f64,
) -> (Pb2Data, f64) {
    let mut r = rng(seed);
    let mut data = Pb2Data::new();
    let mut best = f64::NEG_INFINITY;
    for m in 0..members {
        let mut reward = 0.0;
        data.observe(m, 0.0, reward, &space.sample(&mut r)).unwrap();
        for t in 1..=steps {
            let h = space.sample(&mut r);
            reward += rate(&h) + 0.01 * r.random::<f64>();
            data.observe(m, t as f64, reward, &h).unwrap();
        }
        best = best.max(reward);
    }
    (data, best)
}

fn lr_space() -> Space {
    Space::new().with("lr", Param::float(0.0, 1.0))
}

fn peak(h: &Hyperparams) -> f64 {
    let lr = h.f64("lr").unwrap_or(0.0);
    1.0 - 8.0 * (lr - 0.3).powi(2)
}

#[test]
fn a_clear_optimum_is_found_more_often_than_by_chance() {
    let space = lr_space();
    let (data, best) = synthetic_best(&space, 12, 8, 1, peak);
    let base = Hyperparams::new().with("lr", 0.9);
    let q = Query::new(&space, &data, 8.0, best, &base);
    let near = |lr: f64| (lr - 0.3).abs() < 0.1;
    let trials = 20;
    let hits = (0..trials)
        .filter(|&s| near(suggest(&q, &mut rng(100 + s)).f64("lr").unwrap()))
        .count();
    let mut r = rng(5);
    let chance = (0..trials)
        .filter(|_| near(space.sample(&mut r).f64("lr").unwrap()))
        .count();
    assert!(
        hits >= 16 && hits > chance + 8,
        "{hits} hits, chance {chance}"
    );
}

#[test]
fn batch_diversity_pushes_the_second_suggestion_away() {
    let space = lr_space();
    // Members trained only at lr = 0 and lr = 1, equally well (the rate falls with time,
    // whatever lr): the mean is flat in lr and the variance highest in between, so the first
    // suggestion lies inside. The second GP's variance is low there, which pushes the
    // second suggestion away.
    let mut data = Pb2Data::new();
    let mut r = rng(2);
    let mut best = f64::NEG_INFINITY;
    for m in 0..4 {
        let h = Hyperparams::new().with("lr", if m % 2 == 0 { 0.0 } else { 1.0 });
        let mut reward = 0.0;
        data.observe(m, 0.0, reward, &h).unwrap();
        for t in 1..=6 {
            reward += 3.0 / t as f64 + 0.01 * r.random::<f64>();
            data.observe(m, t as f64, reward, &h).unwrap();
        }
        best = best.max(reward);
    }
    let base = Hyperparams::new().with("lr", 0.5);
    let q = Query::new(&space, &data, 6.0, best, &base);
    let first = suggest(&q, &mut rng(9));
    assert_eq!(first, suggest(&q, &mut rng(9)));
    let chosen = [first.clone()];
    let second = suggest(&q.chosen(&chosen), &mut rng(9));
    let (a, b) = (first.f64("lr").unwrap(), second.f64("lr").unwrap());
    assert!(a > 0.1 && a < 0.9, "first {a}");
    assert!((a - b).abs() > 0.1, "first {a}, second {b}");
}

#[test]
fn plain_pb2_keeps_lists_and_fixed_values_of_the_base() {
    let space = Space::new()
        .with("lr", Param::log_float(1e-4, 1e-1))
        .with("layers", Param::int(1, 6))
        .with("act", Param::choice(["relu", "tanh", "gelu"]))
        .with("batch", Param::ordered([16i64, 32, 64]))
        .with("seed", Param::fixed(3i64));
    let (data, best) = synthetic_best(&space, 8, 5, 3, |h| h.f64("layers").unwrap_or(0.0));
    let base = Hyperparams::new()
        .with("lr", 1e-3)
        .with("layers", 2i64)
        .with("act", "gelu")
        .with("batch", 32i64)
        .with("seed", 3i64);
    let q = Query::new(&space, &data, 5.0, best, &base);
    let s = decide(&q, &Config::default(), &mut rng(4));
    assert!(!s.fallback);
    assert!(space.contains(&s.h));
    assert_eq!(s.h.get("act"), Some(&Value::from("gelu")));
    assert_eq!(s.h.get("batch"), Some(&Value::Int(32)));
    assert_eq!(s.h.get("seed"), Some(&Value::Int(3)));
    // More layers are better: the GP says so.
    assert!(s.h.i64("layers").unwrap() >= 5, "{}", s.h);
}

#[test]
fn pb2_mix_prefers_the_rewarded_category() {
    let space = Space::new()
        .with("lr", Param::float(0.0, 1.0))
        .with("opt", Param::choice(["sgd", "adam", "rmsprop"]));
    let rate = |h: &Hyperparams| match h.get("opt").and_then(Value::as_str) {
        Some("adam") => 2.0,
        _ => 0.0,
    };
    let (data, best) = synthetic_best(&space, 16, 12, 6, rate);
    let base = Hyperparams::new().with("lr", 0.5).with("opt", "sgd");
    let q = Query::new(&space, &data, 12.0, best, &base).mix(true);
    let adam = (0..60)
        .filter(|&s| suggest(&q, &mut rng(s)).get("opt") == Some(&Value::from("adam")))
        .count();
    // Chance would be 20 of 60.
    assert!(adam >= 34, "adam chosen {adam} of 60 times");
    // Batch: with adam handed out already, another category is tried.
    let chosen = [Hyperparams::new().with("lr", 0.5).with("opt", "adam")];
    let h = suggest(&q.chosen(&chosen), &mut rng(1));
    assert_ne!(h.get("opt"), Some(&Value::from("adam")));
}

#[test]
fn fallback_is_deterministic_and_near_the_base() {
    let space = Space::new()
        .with("lr", Param::float(0.0, 1.0))
        .with("act", Param::choice(["a", "b"]));
    let base = Hyperparams::new().with("lr", 0.5).with("act", "b");
    let empty = Pb2Data::new();
    let q = Query::new(&space, &empty, 0.0, 0.0, &base);
    for s in 0..50 {
        let d = decide(&q, &Config::default(), &mut rng(s));
        assert!(d.fallback);
        assert_eq!(d, decide(&q, &Config::default(), &mut rng(s)));
        let lr = d.h.f64("lr").unwrap();
        assert!((0.25..=0.75).contains(&lr), "{lr}");
        assert_eq!(d.h.get("act"), Some(&Value::from("b")));
    }
    // Constant rates cannot be standardised: fallback too.
    let data = synthetic(&space, 4, 3, 7, |_| 1.0);
    let mut flat = Pb2Data::new();
    for row in data.rows() {
        flat.push(Row {
            y: 1.0,
            ..row.clone()
        })
        .unwrap();
    }
    let q = Query::new(&space, &flat, 3.0, 3.0, &base);
    assert!(decide(&q, &Config::default(), &mut rng(1)).fallback);
}

#[test]
fn nan_rewards_and_donors_do_not_panic() {
    let space = lr_space();
    let mut data = synthetic(&space, 4, 4, 8, peak);
    let h = Hyperparams::new().with("lr", 0.2);
    assert!(data.observe(0, 5.0, f64::NAN, &h).is_err());
    assert!(data.observe(1, f64::INFINITY, 1.0, &h).is_err());
    let base = Hyperparams::new().with("lr", f64::NAN);
    let q = Query::new(&space, &data, f64::NAN, 1.0, &base);
    let s = decide(&q, &Config::default(), &mut rng(1));
    assert!(s.fallback && space.contains(&s.h));
    let q = Query::new(&space, &data, 4.0, 1.0, &base);
    let s = decide(&q, &Config::default(), &mut rng(1));
    assert!(!s.fallback && space.contains(&s.h));
}

#[test]
fn the_window_is_chosen_among_the_allowed_lengths() {
    let space = lr_space();
    // 30 members × 8 intervals = 240 rows: lengths 200, 210, …, 240 are tried.
    let (data, best) = synthetic_best(&space, 30, 8, 10, peak);
    assert_eq!(data.len(), 240);
    let base = Hyperparams::new().with("lr", 0.5);
    let q = Query::new(&space, &data, 8.0, best, &base);
    for exact in [false, true] {
        let config = Config {
            exact_window_scan: exact,
            ..Config::default()
        };
        let s = decide(&q, &config, &mut rng(3));
        assert!(!s.fallback);
        assert!(
            s.window >= 200 && s.window <= 240 && s.window.is_multiple_of(10),
            "{}",
            s.window
        );
        let lr = s.h.f64("lr").unwrap();
        assert!((lr - 0.3).abs() < 0.15, "exact {exact}: {lr}");
    }
}

#[test]
fn a_decision_on_a_full_history_is_deterministic_and_in_the_space() {
    // 1,000 rows (the capacity), three continuous hyperparameters, one already chosen: the
    // benchmark's case, with the default settings (one factorisation of all rows).
    let space = Space::new()
        .with("lr", Param::log_float(1e-4, 1e-1))
        .with("momentum", Param::float(0.0, 0.99))
        .with("layers", Param::int(1, 8));
    let rate = |h: &Hyperparams| {
        let lr = h.f64("lr").unwrap_or(1e-3).log10();
        1.0 - 0.1 * (lr + 2.0).powi(2)
    };
    let (data, best) = synthetic_best(&space, 20, 50, 11, rate);
    assert_eq!(data.len(), 1000);
    let base = Hyperparams::new()
        .with("lr", 1e-3)
        .with("momentum", 0.9)
        .with("layers", 4i64);
    let chosen = [base.clone()];
    let q = Query::new(&space, &data, 50.0, best, &base).chosen(&chosen);
    let a = decide(&q, &Config::default(), &mut rng(1));
    assert!(!a.fallback && space.contains(&a.h));
    assert!(a.window >= 200 && a.window <= 1000 && a.window.is_multiple_of(10));
    assert_eq!(a, decide(&q, &Config::default(), &mut rng(1)));
    // The rate peaks at lr = 1e-2.
    let lr = a.h.f64("lr").unwrap().log10();
    assert!((lr + 2.0).abs() < 0.75, "lr 10^{lr}");
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        (-5.0f64..5.0, 0.01f64..10.0).prop_map(|(lo, w)| Param::float(lo, lo + w)),
        (1e-5f64..1.0, 1.5f64..1e4).prop_map(|(lo, f)| Param::log_float(lo, lo * f)),
        (-10i64..10, 1i64..20).prop_map(|(lo, w)| Param::int(lo, lo + w)),
        (1usize..5).prop_map(|k| Param::ordered((0..k as i64).map(|i| 1 << i))),
        (1usize..4).prop_map(|k| Param::choice(["a", "b", "c", "d"].into_iter().take(k))),
        Just(Param::fixed(7i64)),
    ]
}

fn space() -> impl Strategy<Value = Space> {
    prop::collection::vec(param(), 1..4).prop_map(|ps| {
        ps.into_iter()
            .enumerate()
            .fold(Space::new(), |s, (i, p)| s.with(&format!("p{i}"), p))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn suggestions_stay_in_the_space_and_repeat_with_the_seed(
        space in space(),
        members in 0usize..6,
        steps in 0usize..6,
        seed in any::<u64>(),
        mix in any::<bool>(),
        chosen in 0usize..3,
    ) {
        let mut r = rng(seed);
        let weights: Vec<f64> = (0..space.len()).map(|_| r.random_range(-1.0..1.0)).collect();
        let data = synthetic(&space, members, steps, seed, |h| {
            h.iter().zip(&weights).map(|((_, v), w)| w * v.as_f64().unwrap_or(1.0)).sum()
        });
        let base = space.sample(&mut r);
        let chosen: Vec<Hyperparams> = (0..chosen).map(|_| space.sample(&mut r)).collect();
        let q = Query::new(&space, &data, steps as f64, r.random(), &base)
            .chosen(&chosen)
            .mix(mix);
        let a = decide(&q, &Config::default(), &mut rng(seed ^ 1));
        prop_assert!(space.contains(&a.h), "{} not in the space", a.h);
        let b = decide(&q, &Config::default(), &mut rng(seed ^ 1));
        prop_assert_eq!(&a, &b);
        if !mix {
            for (name, p) in space.iter() {
                if !matches!(p, Param::Float { .. } | Param::Int { .. }) {
                    prop_assert_eq!(a.h.get(name), base.get(name));
                }
            }
        }
    }
}
