//! The cost of one PB2 decision at 100 and 1,000 rows (plain PB2, three continuous
//! hyperparameters, one member already given hyperparameters at this time). Run with
//! `cargo bench -p poptune-pb2`; not part of the default build.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use poptune::Hyperparams;
use poptune_pb2::{decide, suggest, Config, Query};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

mod common;
use common::{data, space};

fn decision(c: &mut Criterion) {
    let s = space();
    let mut g = c.benchmark_group("pb2_decision");
    g.sample_size(10);
    for rows in [100, 1_000] {
        let (d, best) = data(rows);
        let base = Hyperparams::new()
            .with("lr", 1e-3)
            .with("momentum", 0.9)
            .with("layers", 4i64);
        let chosen = [base.clone()];
        let t = d.rows().last().map_or(0.0, |r| r.t + 1.0);
        let q = Query::new(&s, &d, t, best, &base).chosen(&chosen);
        let mut seed = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(rows), &q, |b, q| {
            b.iter(|| {
                seed += 1;
                black_box(suggest(q, &mut Pcg64Mcg::seed_from_u64(seed)))
            })
        });
        // The runner's settings (`fit_rows: 200`, which is now the default too; the default
        // used to fit on the whole window).
        let config = Config {
            fit_rows: 200,
            ..Config::default()
        };
        let id = BenchmarkId::new("fit_rows_200", rows);
        g.bench_with_input(id, &q, |b, q| {
            b.iter(|| {
                seed += 1;
                black_box(decide(q, &config, &mut Pcg64Mcg::seed_from_u64(seed)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
