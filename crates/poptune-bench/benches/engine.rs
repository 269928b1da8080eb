//! Engine benchmarks: decision cost against population size, in-process throughput of a no-op
//! trainable, and the paper's toy. Run with `cargo bench -p poptune-bench`; the figures are
//! written down in `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use poptune::policy::{rng_for, Stream};
use poptune::toy::{ToyConfig, TOY_VARIANTS};
use poptune::{Experiment, Mode, Policy, Population, SyncMode};
use poptune_bench::{space, NoOp};
use poptune_run::Run;
use rand::Rng;

const SIZES: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];

fn population(n: usize) -> Population {
    let s = space();
    let initial = (0..n)
        .map(|i| s.sample(&mut rng_for(1, Stream::Initial, i, 0, 0)))
        .collect();
    let mut pop = Population::new(Mode::Max, initial, 0);
    let mut rng = rng_for(2, Stream::Decision, 0, 0, 0);
    for i in 0..n {
        pop.record(i, 5, &[rng.random::<f64>()]);
    }
    pop
}

fn decisions(c: &mut Criterion) {
    let s = space();
    let policy = Policy::default();
    let mut g = c.benchmark_group("decide");
    for n in SIZES {
        let pop = population(n);
        // A member in the bottom quarter (it exploits and explores: the expensive case) and
        // one in the middle (it continues).
        let bottom = pop.at_rank(n - 1).unwrap_or(0);
        let middle = pop.at_rank(n / 2 - 1).unwrap_or(0);
        let mut k = 0u64;
        g.bench_with_input(BenchmarkId::new("exploit", n), &n, |b, _| {
            b.iter(|| {
                k += 1;
                let mut rng = rng_for(3, Stream::Decision, bottom, k, 0);
                black_box(policy.decide(&s, black_box(&pop), bottom, &mut rng))
            })
        });
        g.bench_with_input(BenchmarkId::new("continue", n), &n, |b, _| {
            b.iter(|| {
                k += 1;
                let mut rng = rng_for(3, Stream::Decision, middle, k, 0);
                black_box(policy.decide(&s, black_box(&pop), middle, &mut rng))
            })
        });
    }
    g.finish();
    // Recording a score moves the member in the sorted ranking: O(log N) search plus a move
    // of the entries between its old and new rank.
    let mut g = c.benchmark_group("record");
    for n in SIZES {
        let mut pop = population(n);
        let mut rng = rng_for(4, Stream::Decision, 0, 0, 0);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let m = rng.random_range(0..n);
                pop.record(m, 10, &[rng.random::<f64>()]);
            })
        });
    }
    g.finish();
}

/// FIRE-PBT's decisions at a population of 12 and 120 (a third evaluators, each evaluating a
/// member of P2 with a 100-point curve): a member of P1 (it checks every evaluator for a win
/// against it, then ranks P1), a member of P2 (it ranks P2 by the evaluators' curves) and an
/// evaluator.
fn fire(c: &mut Criterion) {
    use poptune::fire::Fire;
    use poptune::trail::Evaluation;
    use poptune::Algorithm;
    let s = space();
    let mut g = c.benchmark_group("fire_decide");
    for n in [12usize, 120] {
        let Some(fire) = Fire::for_population(n) else {
            continue;
        };
        let policy = Policy {
            algorithm: Algorithm::Fire(fire.clone()),
            ..Policy::default()
        };
        let mut pop = population(n);
        let mut rng = rng_for(5, Stream::Decision, 0, 0, 0);
        for m in 0..n {
            for t in 0..100u64 {
                let r = t as f64 / 100.0 + 0.1 * rng.random::<f64>();
                pop.trail_mut(m).push_point(t + 1, r);
            }
        }
        let p2 = fire.sub(1);
        for (i, e) in fire.evaluator_ids().enumerate() {
            pop.trail_mut(e).evaluation = Some(Evaluation {
                parent: p2.start + i % p2.len(),
                parent_epoch: 0,
                child: 0,
                child_epoch: 0,
                start: 0,
            });
        }
        for (name, m) in [("p1", 1), ("p2", p2.start), ("evaluator", n - 1)] {
            let mut k = 0u64;
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    k += 1;
                    let mut rng = rng_for(3, Stream::Decision, m, k, 0);
                    black_box(policy.decide(&s, black_box(&pop), m, &mut rng))
                })
            });
        }
    }
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("noop_throughput");
    g.sample_size(20);
    for (n, sync) in [
        (32, SyncMode::Asynchronous),
        (1_000, SyncMode::Asynchronous),
        (32, SyncMode::Synchronous),
        (1_000, SyncMode::Synchronous),
    ] {
        let e = Experiment::new(space())
            .policy(Policy {
                interval: 5,
                sync,
                ..Policy::default()
            })
            .population(n)
            .steps(100)
            .workers(2)
            .seed(9);
        g.throughput(Throughput::Elements(n as u64 * 100));
        let label = match sync {
            SyncMode::Asynchronous => "async",
            SyncMode::Synchronous => "sync",
        };
        g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
            b.iter(|| black_box(e.run(NoOp::new).map(|o| o.events.len())))
        });
    }
    g.finish();
}

fn toy(c: &mut Criterion) {
    let cfg = ToyConfig::default();
    let mut seed = 0;
    c.bench_function("toy_seed_four_variants", |b| {
        b.iter(|| {
            seed += 1;
            for v in TOY_VARIANTS {
                black_box(
                    poptune_run::toy::run(&cfg, v, seed)
                        .map(|o| o.best_score())
                        .ok(),
                );
            }
        })
    });
}

criterion_group!(benches, decisions, fire, throughput, toy);
criterion_main!(benches);
