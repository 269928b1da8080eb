//! The cost of one decision at 100 and 1,000 rows on the benchmark's data, best of several
//! runs (robust on a shared machine), with the window chosen and the time of each phase (of
//! the fastest run). `cargo run --release -p poptune-pb2 --features profile --example
//! profile [runs]`.

use std::time::Instant;

use poptune::{Hyperparams, Param, Space};
use poptune_pb2::{decide, phases, Config, Pb2Data, Query};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

fn space() -> Space {
    Space::new()
        .with("lr", Param::log_float(1e-4, 1e-1))
        .with("momentum", Param::float(0.0, 0.99))
        .with("layers", Param::int(1, 8))
}

/// The benchmark's data: `rows` intervals of a population of 20.
fn data(rows: usize) -> (Pb2Data, f64) {
    let s = space();
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    let mut d = Pb2Data::new();
    let members = 20;
    let mut reward = vec![0.0; members];
    let mut t = 0;
    for m in 0..members {
        d.observe(m, 0.0, 0.0, &s.sample(&mut rng)).unwrap_or(false);
    }
    while d.len() < rows {
        t += 1;
        for (m, r) in reward.iter_mut().enumerate() {
            let h = s.sample(&mut rng);
            let lr = h.f64("lr").unwrap_or(1e-3).log10();
            *r += 1.0 / t as f64 - 0.1 * (lr + 2.0).powi(2) + 0.05 * rng.random::<f64>();
            d.observe(m, t as f64, *r, &h).unwrap_or(false);
            if d.len() == rows {
                break;
            }
        }
    }
    (d, reward.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

fn main() {
    let s = space();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    for rows in [100, 1_000] {
        let (d, best) = data(rows);
        let base = Hyperparams::new()
            .with("lr", 1e-3)
            .with("momentum", 0.9)
            .with("layers", 4i64);
        let chosen = [base.clone()];
        let t = d.rows().last().map_or(0.0, |r| r.t + 1.0);
        let q = Query::new(&s, &d, t, best, &base).chosen(&chosen);
        for (name, config) in [
            ("default", Config::default()),
            (
                "fit_rows 200",
                Config {
                    fit_rows: 200,
                    ..Config::default()
                },
            ),
        ] {
            let mut best_ms = f64::INFINITY;
            let mut last = None;
            let mut split = Vec::new();
            for seed in 0..runs as u64 {
                let start = Instant::now();
                let out = decide(&q, &config, &mut Pcg64Mcg::seed_from_u64(seed));
                let ms = start.elapsed().as_secs_f64() * 1e3;
                let p = phases();
                if ms < best_ms {
                    (best_ms, split) = (ms, p);
                }
                last = Some(out);
            }
            if let Some(out) = last {
                println!(
                    "{rows} rows, {name}: best {best_ms:.2} ms; window {}, {:?}, {}",
                    out.window, out.hyper, out.h
                );
                let parts: Vec<String> = split.iter().map(|(p, t)| format!("{p} {t:.2}")).collect();
                println!("    phases (ms): {}", parts.join(", "));
            }
        }
    }
}
