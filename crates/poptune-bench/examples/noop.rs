//! Times the no-op trainable in process: `cargo run --release -p poptune-bench --example noop --
//! POPULATION WORKERS [sync]`.
use std::time::Instant;

use poptune::{Experiment, Policy, SyncMode};
use poptune_bench::{space, NoOp};
use poptune_run::Run;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let workers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let sync = if args.get(3).map(String::as_str) == Some("sync") {
        SyncMode::Synchronous
    } else {
        SyncMode::Asynchronous
    };
    let e = Experiment::new(space())
        .policy(Policy {
            interval: 5,
            sync,
            ..Policy::default()
        })
        .population(n)
        .steps(100)
        .workers(workers)
        .seed(9);
    for _ in 0..5 {
        let t = Instant::now();
        let o = e.run(NoOp::new).expect("run");
        let dt = t.elapsed().as_secs_f64();
        println!(
            "population {n}, {workers} workers, {sync:?}: {:.1} ms, {:.2} M member-steps/s, {} events",
            dt * 1e3,
            (n * 100) as f64 / dt / 1e6,
            o.events.len()
        );
    }
}
