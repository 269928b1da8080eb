//! Property tests of the policy core: spaces, explore and exploit strategies.

use poptune::exploit::welch_better;
use poptune::policy::{rng_for, Stream};
use poptune::{
    Decision, Exploit, Explore, Hyperparams, Mode, Param, Policy, Population, Space, Value, Variant,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

fn population(scores: &[f64], mode: Mode, window: usize) -> Population {
    let h = Hyperparams::new().with("x", 0.5);
    let mut p = Population::new(mode, vec![h; scores.len()], window);
    for (i, &s) in scores.iter().enumerate() {
        // A few recent scores around the latest, so that the t-test has something to test.
        p.record(i, 10, &[s - 0.01, s + 0.01, s - 0.02, s + 0.02, s]);
    }
    p
}

fn strategies() -> impl Strategy<Value = Exploit> {
    prop_oneof![
        (0.01f64..=1.0).prop_map(|fraction| Exploit::Truncation { fraction }),
        Just(Exploit::Tournament),
        (2usize..12, 0.01f64..0.5).prop_map(|(window, alpha)| Exploit::TTest { window, alpha }),
        Just(Exploit::WinnerTakesAll),
    ]
}

fn scores() -> impl Strategy<Value = Vec<f64>> {
    // Few distinct values, so that ties happen often.
    prop::collection::vec((0i32..20).prop_map(|x| x as f64 / 4.0), 1..60)
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Max), Just(Mode::Min)]
}

proptest! {
    #[test]
    fn no_member_copies_a_worse_one(
        scores in scores(),
        mode in mode(),
        strategy in strategies(),
        seed in any::<u64>(),
    ) {
        let pop = population(&scores, mode, strategy.window());
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        for m in 0..scores.len() {
            if let Some(d) = strategy.select(&pop, m, &mut rng) {
                prop_assert_ne!(d, m);
                prop_assert!(
                    mode.key(scores[d]) >= mode.key(scores[m]),
                    "{:?}: member {} ({}) copied worse member {} ({})",
                    strategy, m, scores[m], d, scores[d]
                );
                prop_assert!(pop.rank(d) < pop.rank(m));
            }
        }
    }

    #[test]
    fn truncation_bottom_and_top_sets(
        scores in scores(),
        mode in mode(),
        fraction in 0.01f64..=1.0,
        seed in any::<u64>(),
    ) {
        let n = scores.len();
        let pop = population(&scores, mode, 0);
        let strategy = Exploit::Truncation { fraction };
        let k = ((n as f64 * fraction).ceil() as usize).min(n / 2);
        // Ranks by hand: better score first, ties to the lower id.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            mode.key(scores[b]).total_cmp(&mode.key(scores[a])).then(a.cmp(&b))
        });
        let top: Vec<usize> = order[..k].to_vec();
        let bottom: Vec<usize> = order[n - k..].to_vec();
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let mut donors = std::collections::BTreeSet::new();
        for m in 0..n {
            for _ in 0..8 {
                let d = strategy.select(&pop, m, &mut rng);
                if bottom.contains(&m) {
                    let d = d.expect("a bottom member must exploit");
                    prop_assert!(top.contains(&d), "donor {} not in top {:?}", d, top);
                    donors.insert(d);
                } else {
                    prop_assert_eq!(d, None, "member {} is not in the bottom {:?}", m, bottom);
                }
            }
        }
        // Donors are drawn from the whole top set, not from a part of it.
        if k >= 2 && n >= 8 {
            prop_assert!(donors.len() >= 2, "donors {:?} of top {:?}", donors, top);
        }
    }

    #[test]
    fn winner_takes_all_copies_the_best(scores in scores(), mode in mode()) {
        let pop = population(&scores, mode, 0);
        let best = pop.best().unwrap();
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        for m in 0..scores.len() {
            let d = Exploit::WinnerTakesAll.select(&pop, m, &mut rng);
            prop_assert_eq!(d, if m == best { None } else { Some(best) });
        }
    }

    #[test]
    fn same_seed_same_decisions(
        scores in scores(),
        strategy in strategies(),
        seed in any::<u64>(),
        step in 1u64..1000,
    ) {
        let space = Space::new().with("x", Param::float(0.0, 1.0));
        let policy = Policy { exploit: strategy.clone(), ..Policy::default() };
        let pop = population(&scores, Mode::Max, strategy.window());
        let decide = |m| {
            let mut rng = rng_for(seed, Stream::Decision, m, step, 1);
            policy.decide(&space, &pop, m, &mut rng)
        };
        for m in 0..scores.len() {
            prop_assert_eq!(decide(m), decide(m));
        }
    }
}

fn params() -> impl Strategy<Value = Param> {
    prop_oneof![
        (-100.0f64..100.0, 0.001f64..100.0).prop_map(|(lo, w)| Param::float(lo, lo + w)),
        (1e-6f64..1.0, 1.5f64..1e4).prop_map(|(lo, f)| Param::log_float(lo, lo * f)),
        (-50i64..50, 1i64..100).prop_map(|(lo, w)| Param::int(lo, lo + w)),
        (1i64..50, 2i64..100).prop_map(|(lo, f)| Param::Int {
            low: lo,
            high: lo * f,
            log: true
        }),
        // Distinct values, in any order (a value listed twice is an error).
        prop::collection::vec(-10i64..10, 1..6).prop_map(|mut v| {
            let mut seen = std::collections::HashSet::new();
            v.retain(|x| seen.insert(*x));
            Param::ordered(v)
        }),
        prop::collection::vec("[a-z]{1,4}", 1..5).prop_map(|mut v| {
            let mut seen = std::collections::HashSet::new();
            v.retain(|x| seen.insert(x.clone()));
            Param::choice(v.iter().map(String::as_str))
        }),
        (-5.0f64..5.0).prop_map(Param::fixed),
    ]
}

fn explores() -> impl Strategy<Value = Explore> {
    prop_oneof![
        (prop::collection::vec(0.1f64..3.0, 1..4), 0.0f64..=1.0)
            .prop_map(|(f, p)| Explore::perturb(f).with_resample_probability(p)),
        (0.0f64..50.0, 0.0f64..=1.0)
            .prop_map(|(s, p)| Explore::gaussian(s).with_resample_probability(p)),
        Just(Explore::resample()),
        Just(Explore::custom(|_, h, _| {
            // A careless custom function: pushes every number far out of range.
            let mut out = Hyperparams::new();
            for (k, v) in h.iter() {
                let v = match v {
                    Value::Float(x) => Value::Float(x * 1e9 + 1e9),
                    Value::Int(i) => Value::Int(i.saturating_mul(1000) - 7),
                    other => other.clone(),
                };
                out.insert(k, v);
            }
            out
        })),
    ]
}

proptest! {
    #[test]
    fn explored_values_stay_in_bounds(
        params in prop::collection::vec(params(), 1..6),
        explore in explores(),
        seed in any::<u64>(),
    ) {
        let mut space = Space::new();
        for (i, p) in params.into_iter().enumerate() {
            space.insert(&format!("p{i}"), p);
        }
        prop_assert!(space.validate().is_ok());
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let mut h = space.sample(&mut rng);
        for _ in 0..20 {
            h = explore.apply(&space, &h, &mut rng);
            prop_assert!(space.contains(&h), "{} left {:?}", h, space);
            for (name, param) in space.iter() {
                if matches!(param, Param::Int { .. }) {
                    prop_assert!(matches!(h.get(name), Some(Value::Int(_))));
                }
            }
        }
    }

    #[test]
    fn grid_points_lie_in_the_space(
        params in prop::collection::vec(params(), 1..4),
        n in 1usize..50,
    ) {
        let mut space = Space::new();
        for (i, p) in params.into_iter().enumerate() {
            space.insert(&format!("p{i}"), p);
        }
        let g = space.grid(n);
        prop_assert!(!g.is_empty() && g.len() <= n);
        for h in &g {
            prop_assert!(space.contains(h));
        }
    }

    #[test]
    fn welch_is_antisymmetric(
        a in prop::collection::vec(-10.0f64..10.0, 2..12),
        b in prop::collection::vec(-10.0f64..10.0, 2..12),
    ) {
        prop_assert!(!(welch_better(&a, &b, 0.05) && welch_better(&b, &a, 0.05)));
    }
}

#[test]
fn ablations_decide_as_documented() {
    let space = Space::new().with("x", Param::float(0.0, 1.0));
    let pop = population(&[0.0, 1.0], Mode::Max, 0);
    let mut policy = Policy {
        exploit: Exploit::WinnerTakesAll,
        ..Policy::default()
    };
    let mut rng = Pcg64Mcg::seed_from_u64(0);
    assert!(matches!(
        policy.decide(&space, &pop, 0, &mut rng),
        Decision::Exploit { donor: 1, .. }
    ));
    policy.variant = Variant::ExploitOnly;
    assert_eq!(
        policy.decide(&space, &pop, 0, &mut rng),
        Decision::Exploit {
            donor: 1,
            h: pop.member(1).h.clone()
        }
    );
    policy.variant = Variant::ExploreOnly;
    assert!(matches!(
        policy.decide(&space, &pop, 0, &mut rng),
        Decision::Explore { .. }
    ));
    assert_eq!(policy.decide(&space, &pop, 1, &mut rng), Decision::Continue);
    policy.variant = Variant::Frozen;
    assert_eq!(policy.decide(&space, &pop, 0, &mut rng), Decision::Continue);
}
