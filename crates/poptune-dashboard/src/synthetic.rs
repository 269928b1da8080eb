//! A synthetic experiment written into a store, for the benchmarks and the tests: members
//! whose scores rise at a rate set by their `lr`, ready every `interval` steps, where the
//! bottom fifth takes a top-fifth member's checkpoint and perturbs its `lr`.

use std::path::Path;

use poptune::{Event, Experiment, ExperimentDef, Hyperparams, Param, Space};
use poptune_store::{Commit, FaultKind, FaultRow, MemberRow, RunStatus, StepRow, Store, Tally};

use crate::DashboardError;

/// The synthetic experiment's definition: `population` members, `steps` steps each.
pub fn definition(name: &str, population: usize, steps: u64) -> ExperimentDef {
    let space = Space::new()
        .with("lr", Param::log_float(1e-4, 1e-1))
        .with("momentum", Param::float(0.0, 0.99));
    Experiment::new(space)
        .population(population)
        .steps(steps)
        .seed(1)
        .definition(name, Path::new("/synthetic"))
}

/// A small deterministic generator (no dependency on the RNG's stream).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn lr(h: &Hyperparams) -> f64 {
    h.f64("lr").unwrap_or(0.01)
}

/// Creates the experiment in `store` and records `steps` steps of every member, ready every
/// `interval` steps, with one fault; `finished` says whether it ends as finished or running.
pub fn fill(
    store: &mut dyn Store,
    def: &ExperimentDef,
    interval: u64,
    finished: bool,
) -> Result<(), DashboardError> {
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(|e| DashboardError::Data(e.to_string()))?;
    let n = initial.len();
    let mut members: Vec<MemberRow> = initial
        .iter()
        .enumerate()
        .map(|(i, h)| MemberRow::new(i, h.clone()))
        .collect();
    store.create(&def.name, &def.to_json(), &members)?;
    let mut rng = Lcg(7);
    let mut level = vec![0.0f64; n];
    let mut seq = 0;
    let mut tally = Tally::default();
    let mut at = 0;
    while at < def.stop.steps {
        let end = (at + interval).min(def.stop.steps);
        let mut c = Commit::default();
        for (i, m) in members.iter_mut().enumerate() {
            for step in at + 1..=end {
                let gain = (lr(&m.h).log10() + 4.5).max(0.1) * 0.01;
                level[i] += gain * (1.0 - level[i]);
                let score = level[i] + 0.01 * (rng.next() - 0.5);
                c.steps.push(StepRow {
                    member: i,
                    epoch: m.decisions,
                    step,
                    score,
                    metrics: vec![],
                });
                m.step = step;
                m.score = Some(score);
                tally.compute += 1;
            }
        }
        at = end;
        exploit(&mut members, &mut level, &mut c, &mut seq, &mut rng, at);
        if at == interval {
            c.faults.push(FaultRow {
                member: 0,
                step: at,
                kind: FaultKind::Crash,
                message: "the trainable exited with status 1".into(),
                stderr: "Traceback (most recent call last):\n  File \"train.py\", line 3\nRuntimeError: synthetic".into(),
            });
            tally.faults += 1;
        }
        tally.max_step = at;
        tally.exploits += c.events.len() as u64;
        for m in &mut members {
            m.done = at >= def.stop.steps;
        }
        c.members = members.clone();
        c.tally = Some(tally.clone());
        c.status = Some(if finished && at >= def.stop.steps {
            RunStatus::Finished
        } else {
            RunStatus::Running
        });
        c.elapsed = 1.0;
        store.commit(&c)?;
    }
    Ok(())
}

/// The ready round at step `at`: the bottom fifth copies the top fifth.
fn exploit(
    members: &mut [MemberRow],
    level: &mut [f64],
    c: &mut Commit,
    seq: &mut u64,
    rng: &mut Lcg,
    at: u64,
) {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| level[b].total_cmp(&level[a]));
    let fifth = members.len() / 5;
    for k in 0..fifth {
        let (donor, recipient) = (order[k], order[members.len() - 1 - k]);
        let factor = if rng.next() < 0.5 { 0.8 } else { 1.25 };
        let new_lr = (lr(&members[donor].h) * factor).clamp(1e-4, 1e-1);
        let new_h = members[donor].h.clone().with("lr", new_lr);
        c.events.push(Event {
            seq: *seq,
            step: at,
            recipient,
            donor: Some(donor),
            donor_step: at,
            old_h: members[recipient].h.clone(),
            new_h: new_h.clone(),
            recipient_score: members[recipient].score.unwrap_or(f64::NAN),
            donor_score: members[donor].score,
        });
        level[recipient] = level[donor];
        let donor_score = members[donor].score;
        let m = &mut members[recipient];
        m.h = new_h;
        m.score = donor_score;
    }
    for m in members.iter_mut() {
        m.decisions += 1;
    }
    *seq += 1;
}
