//! Times one segment's commit (5 steps, a checkpoint, a member update):
//! `cargo run --release -p poptune-store --example commit_bench`.
use std::time::Instant;

use poptune::Hyperparams;
use poptune_store::{CheckpointRow, Commit, MemberRow, SqliteStore, StepRow, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("poptune-commit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut s = SqliteStore::open(&dir.join("experiment.db"))?;
    let h = Hyperparams::new().with("lr", 0.1).with("momentum", 0.9);
    let member = |id: usize, step: u64| MemberRow {
        id,
        h: h.clone(),
        step,
        score: Some(0.5),
        recent: vec![],
        checkpoint: Some(format!("m{id}-s{step}")),
        decisions: 0,
        failures: 0,
        done: false,
        trail: Default::default(),
    };
    s.create(
        "bench",
        "{}",
        &(0..32).map(|i| member(i, 0)).collect::<Vec<_>>(),
    )?;
    let n = 2000u64;
    let t = Instant::now();
    for i in 0..n {
        let m = (i % 32) as usize;
        let step = (i / 32 + 1) * 5;
        s.commit(&Commit {
            steps: (step - 4..=step)
                .map(|k| StepRow {
                    epoch: 0,
                    member: m,
                    step: k,
                    score: 0.5,
                    metrics: vec![],
                })
                .collect(),
            checkpoints: vec![CheckpointRow {
                name: format!("m{m}-s{step}"),
                member: m,
                step,
                checksum: "0".repeat(64),
                score: 0.5,
            }],
            forget: vec![format!("m{m}-s{}", step - 5)],
            members: vec![member(m, step)],
            elapsed: 0.001,
            ..Commit::default()
        })?;
    }
    println!(
        "{:.1} µs per commit",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
