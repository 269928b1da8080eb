use super::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

fn space() -> Space {
    Space::new()
        .with("lr", Param::log_float(1e-4, 1e-1))
        .with("wd", Param::float(0.0, 0.1))
        .with("layers", Param::int(1, 4))
        .with("batch", Param::ordered([16i64, 32, 64, 128]))
        .with("act", Param::choice(["relu", "tanh"]))
        .with("seed", Param::fixed(7i64))
}

#[test]
fn samples_stay_in_domain() {
    let s = space();
    s.validate().unwrap();
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    for _ in 0..2000 {
        let h = s.sample(&mut rng);
        assert!(s.contains(&h), "{h}");
        s.check(&h).unwrap();
    }
}

#[test]
fn log_prior_is_log_uniform() {
    let p = Param::log_float(1e-4, 1.0);
    let mut rng = Pcg64Mcg::seed_from_u64(2);
    let below = (0..20000)
        .filter(|_| p.sample(&mut rng).as_f64().unwrap() < 1e-2)
        .count();
    // Half the log range lies below 1e-2.
    assert!((9000..11000).contains(&below), "{below}");
}

#[test]
fn validation_catches_bad_ranges() {
    assert!(Param::float(1.0, 1.0).validate("x").is_err());
    assert!(Param::float(2.0, 1.0).validate("x").is_err());
    assert!(Param::log_float(0.0, 1.0).validate("x").is_err());
    assert!(Param::float(0.0, f64::INFINITY).validate("x").is_err());
    assert!(Param::int(3, 3).validate("x").is_err());
    assert!(Param::choice(Vec::<i64>::new()).validate("x").is_err());
    let err = Param::log_float(-1.0, 1.0).validate("lr").unwrap_err();
    assert!(err.to_string().contains("lr"), "{err}");
}

#[test]
fn projection_clamps_and_rounds() {
    let s = space();
    let h = Hyperparams::new()
        .with("lr", 5.0)
        .with("wd", -1.0)
        .with("layers", 9.7)
        .with("batch", 50i64)
        .with("act", "sigmoid")
        .with("seed", 1i64);
    let p = s.project(&h);
    assert_eq!(p.f64("lr"), Some(1e-1));
    assert_eq!(p.f64("wd"), Some(0.0));
    assert_eq!(p.get("layers"), Some(&Value::Int(4)));
    assert_eq!(p.get("batch"), Some(&Value::Int(64)));
    assert_eq!(p.get("act"), Some(&Value::Str("relu".into())));
    assert_eq!(p.get("seed"), Some(&Value::Int(7)));
    assert!(s.contains(&p));
}

#[test]
fn serde_round_trip() {
    let s = space();
    let json = serde_json::to_string(&s).unwrap();
    let back: Space = serde_json::from_str(&json).unwrap();
    assert_eq!(s, back);
    let mut rng = Pcg64Mcg::seed_from_u64(3);
    let h = s.sample(&mut rng);
    let json = serde_json::to_string(&h).unwrap();
    let back: Hyperparams = serde_json::from_str(&json).unwrap();
    assert_eq!(h, back);
}

#[test]
fn grid_is_spread_and_bounded() {
    let s = Space::new()
        .with("a", Param::float(0.0, 1.0))
        .with("b", Param::choice(["x", "y"]));
    let g = s.grid(8);
    assert_eq!(g.len(), 8);
    for h in &g {
        assert!(s.contains(h));
    }
    let a: Vec<f64> = g.iter().map(|h| h.f64("a").unwrap()).collect();
    assert_eq!(a[0], 0.125);
    // Only two categories: the float takes the rest.
    let g = s.grid(9);
    assert_eq!(g.len(), 8);
    let g = Space::new().with("f", Param::fixed(1i64)).grid(5);
    assert_eq!(g.len(), 1);
}

#[test]
fn values_print_with_significant_digits() {
    let h = Hyperparams::new()
        .with("lr", 1e-6)
        .with("wd", 0.1)
        .with("batch", 32i64)
        .with("big", 3.82e276);
    assert_eq!(
        h.f64("lr").map(|x| Value::Float(x).to_string()),
        Some("1e-6".into())
    );
    assert_eq!(Value::Float(0.1).to_string(), "0.1");
    assert_eq!(Value::Float(0.123456789).to_string(), "0.123457");
    assert_eq!(Value::Float(3.82e276).to_string(), "3.82e276");
    assert_eq!(Value::Int(32).to_string(), "32");
    assert!(h.to_string().contains("lr=1e-6"), "{h}");
}
