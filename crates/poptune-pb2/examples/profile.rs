//! The cost of one decision at 100 and 1,000 rows on the benchmark's data, best of several
//! runs (robust on a shared machine), with the window chosen and the time of each phase (of
//! the fastest run). `cargo run --release -p poptune-pb2 --features profile --example
//! profile [runs]`.

use std::time::Instant;

use poptune::Hyperparams;
use poptune_pb2::{decide, phases, Config, Query};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

#[path = "../benches/common/mod.rs"]
mod common;
use common::{data, space};

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
