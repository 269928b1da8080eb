//! `poptune status --json`: an experiment's state as one JSON object, the stable interface
//! that programs (the Python package) read. The schema is written down in docs/json.md;
//! `schema` is raised when a field changes meaning or goes away (new fields may be added
//! without raising it).

use std::path::Path;

use poptune::lineage::schedule;
use poptune::{ExperimentDef, Hyperparams, Value};
use poptune_run::local::CKPT_DIR;
use poptune_store::{FaultRow, MemberRow, RunStatus, StepRow, Store};
use serde_json::{json, Map, Value as Json};

use crate::CliError;

/// The version of the schema docs/json.md describes.
pub const SCHEMA: u64 = 1;

/// What the status is read with: the run's status and whether it is a run recorded as running
/// whose process is gone.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The status as `poptune status` shows it.
    pub status: RunStatus,
    /// Recorded as running, but no process holds the directory's lock.
    pub killed: bool,
}

/// A number for JSON: `null` when it is NaN or infinite (JSON has neither).
fn number(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// Hyperparameters as a JSON object: each value as its type (integers as integers).
pub fn hyperparams(h: &Hyperparams) -> Json {
    let map: Map<String, Json> = h
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Bool(b) => Json::Bool(*b),
                Value::Int(i) => Json::from(*i),
                Value::Float(x) => number(*x),
                Value::Str(s) => Json::String(s.clone()),
            };
            (k.to_string(), v)
        })
        .collect();
    Json::Object(map)
}

/// The one-word state: `new`, `running`, `killed`, `interrupted`, `finished`, `stopped` or
/// `failed`.
pub fn state(seen: &Seen) -> &'static str {
    if seen.killed {
        return "killed";
    }
    match seen.status {
        RunStatus::New => "new",
        RunStatus::Running => "running",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Finished => "finished",
        RunStatus::Stopped(_) => "stopped",
        RunStatus::Failed(_) => "failed",
    }
}

/// The text after `stopped: ` or `failed: ` in the status, else `None`.
fn reason(status: &RunStatus) -> Option<String> {
    let text = status.to_string();
    text.strip_prefix("stopped: ")
        .or_else(|| text.strip_prefix("failed: "))
        .map(str::to_string)
}

/// A checkpoint's absolute path, from its name in the index.
fn checkpoint(dir: &Path, name: Option<&String>) -> Json {
    name.map_or(Json::Null, |n| {
        Json::String(dir.join(CKPT_DIR).join(n).display().to_string())
    })
}

fn member(m: &MemberRow, dir: &Path, status: &RunStatus) -> Json {
    json!({
        "id": m.id,
        "step": m.step,
        "score": m.score.map_or(Json::Null, number),
        "state": crate::inspect::member_state(m, status),
        "h": hyperparams(&m.h),
        "checkpoint": checkpoint(dir, m.checkpoint.as_ref()),
        "failures": m.failures,
    })
}

fn fault(f: &FaultRow) -> Json {
    json!({
        "member": f.member,
        "step": f.step,
        "kind": f.kind.as_str(),
        "message": f.message,
        "stderr": f.stderr,
    })
}

/// The best member (best finite score; ties go to the lower id) and the schedule that
/// produced its state, or `null` before any score.
fn best(
    def: &ExperimentDef,
    dir: &Path,
    members: &[MemberRow],
    initial: &[Hyperparams],
    events: &[poptune::Event],
) -> Json {
    let scored: Vec<MemberRow> = members
        .iter()
        .filter(|m| m.score.is_some_and(f64::is_finite))
        .cloned()
        .collect();
    let Some(m) = poptune_store::best_member(def.mode, &scored)
        .and_then(|id| scored.iter().find(|m| m.id == id))
    else {
        return Json::Null;
    };
    // A schedule needs every member's initial hyperparameters; a store whose members
    // outnumber them (it cannot happen with a stored definition) has no schedule.
    let segments = if m.id < initial.len() {
        let sched = schedule(initial, events, m.id, m.step);
        let list: Vec<Json> = sched
            .segments
            .iter()
            .map(|s| json!({"start": s.start, "end": s.end, "h": hyperparams(&s.h)}))
            .collect();
        (Json::from(sched.origin), Json::Array(list))
    } else {
        (Json::Null, Json::Array(Vec::new()))
    };
    json!({
        "member": m.id,
        "score": m.score.map_or(Json::Null, number),
        "step": m.step,
        "checkpoint": checkpoint(dir, m.checkpoint.as_ref()),
        "h": hyperparams(&m.h),
        "origin": segments.0,
        "schedule": segments.1,
    })
}

/// Every recorded step with the hyperparameters it was trained with.
fn history(steps: &[StepRow], initial: &[Hyperparams], events: &[poptune::Event]) -> Json {
    let hs = poptune_view::report::hyperparams_by_row(initial, events, steps);
    let rows: Vec<Json> = steps
        .iter()
        .zip(&hs)
        .map(|(s, h)| {
            let metrics: Map<String, Json> = s
                .metrics
                .iter()
                .map(|(k, v)| (k.clone(), number(*v)))
                .collect();
            json!({
                "member": s.member,
                "epoch": s.epoch,
                "step": s.step,
                "score": number(s.score),
                "metrics": metrics,
                "h": hyperparams(h),
            })
        })
        .collect();
    Json::Array(rows)
}

/// The status object of the experiment `def` kept in `store`, whose directory (absolute) is
/// `dir`; with `steps`, every recorded step too (as `history`).
pub fn status(
    store: &dyn Store,
    def: &ExperimentDef,
    dir: &Path,
    seen: &Seen,
    steps: bool,
) -> Result<Json, CliError> {
    let (_, elapsed) = store.status()?;
    let members = store.members()?;
    let events = store.events()?;
    let faults = store.faults()?;
    let tally = store.tally()?;
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(CliError::usage)?;
    // A store of release 0.1.0 has no tally: every recorded step was trained once.
    let compute = match &tally {
        Some(t) => t.compute,
        None => store.steps()?.len() as u64,
    };
    let mut out = json!({
        "schema": SCHEMA,
        "name": def.name,
        "directory": dir.display().to_string(),
        "metric": def.metric,
        "mode": poptune::format::mode(def.mode),
        "status": seen.status.to_string(),
        "state": state(seen),
        "reason": reason(&seen.status),
        "elapsed_seconds": number(elapsed),
        "population": def.population,
        "steps": def.stop.steps,
        "compute": compute,
        "exploits": events.iter().filter(|e| e.donor.is_some()).count(),
        "faults_count": faults.len(),
        "best": best(def, dir, &members, &initial, &events),
        "members": members.iter().map(|m| member(m, dir, &seen.status)).collect::<Vec<_>>(),
        "faults": faults.iter().map(fault).collect::<Vec<_>>(),
    });
    if steps {
        let rows = history(&store.steps()?, &initial, &events);
        if let Some(map) = out.as_object_mut() {
            map.insert("history".into(), rows);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use poptune::{Event, Mode, Param, Policy, Space, StopRules, TrainableDef};
    use poptune_store::{Commit, FaultKind, MemoryStore, Tally};

    use super::*;

    fn def() -> ExperimentDef {
        ExperimentDef {
            name: "tiny".into(),
            metric: "reward".into(),
            mode: Mode::Min,
            population: 2,
            seed: 1,
            slots: 1,
            initial: Default::default(),
            directory: PathBuf::from("/exp"),
            policy: Policy::default(),
            space: Space::new()
                .with("lr", Param::float(0.0, 1.0))
                .with("batch", Param::int(1, 64)),
            stop: StopRules::steps(4),
            trainable: TrainableDef::default(),
        }
    }

    fn h(lr: f64, batch: i64) -> Hyperparams {
        Hyperparams::new().with("lr", lr).with("batch", batch)
    }

    fn store(def: &ExperimentDef) -> (MemoryStore, Vec<MemberRow>) {
        let mut store = MemoryStore::new();
        let initial = def.experiment().initial_hyperparams().unwrap();
        let members: Vec<MemberRow> = initial
            .iter()
            .enumerate()
            .map(|(m, h)| MemberRow::new(m, h.clone()))
            .collect();
        store.create(&def.name, &def.to_json(), &members).unwrap();
        (store, members)
    }

    fn seen(status: RunStatus) -> Seen {
        Seen {
            status,
            killed: false,
        }
    }

    fn step(member: usize, epoch: u64, step: u64, score: f64) -> StepRow {
        StepRow {
            member,
            epoch,
            step,
            score,
            metrics: vec![("loss".into(), score * 2.0)],
        }
    }

    #[test]
    fn before_any_score_best_is_null_and_members_have_no_checkpoint() {
        let def = def();
        let (store, _) = store(&def);
        let v = status(
            &store,
            &def,
            Path::new("/exp"),
            &seen(RunStatus::New),
            false,
        )
        .unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["state"], "new");
        assert_eq!(v["status"], "new");
        assert_eq!(v["reason"], Json::Null);
        assert_eq!(v["mode"], "min");
        assert_eq!(v["best"], Json::Null);
        assert_eq!(v["steps"], 4);
        assert_eq!(v["compute"], 0);
        assert_eq!(v["faults"], json!([]));
        let members = v["members"].as_array().unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0]["score"], Json::Null);
        assert_eq!(members[0]["checkpoint"], Json::Null);
        assert_eq!(members[0]["state"], "stopped");
        // Integers stay integers, floats floats.
        assert!(members[0]["h"]["batch"].is_i64(), "{}", members[0]["h"]);
        assert!(members[0]["h"]["lr"].is_f64(), "{}", members[0]["h"]);
        assert!(v.get("history").is_none());
    }

    #[test]
    fn nan_scores_are_null_and_the_best_member_has_a_finite_score() {
        let def = def();
        let (mut store, members) = store(&def);
        let mut c = Commit::default();
        for (m, score) in [(0, f64::NAN), (1, 0.25)] {
            let mut row = members[m].clone();
            row.h = h(0.5, 8);
            row.step = 2;
            row.score = Some(score);
            row.checkpoint = Some(format!("m000{m}-e000000-s00000002"));
            c.members.push(row);
            c.steps.push(step(m, 0, 1, f64::INFINITY));
            c.steps.push(step(m, 0, 2, score));
        }
        c.tally = Some(Tally {
            compute: 4,
            ..Tally::default()
        });
        c.elapsed = 1.5;
        store.commit(&c).unwrap();
        let v = status(
            &store,
            &def,
            Path::new("/exp"),
            &seen(RunStatus::Running),
            true,
        )
        .unwrap();
        assert_eq!(v["members"][0]["score"], Json::Null);
        assert_eq!(v["members"][1]["score"], 0.25);
        assert_eq!(v["members"][1]["state"], "training");
        assert_eq!(v["best"]["member"], 1);
        assert_eq!(v["best"]["score"], 0.25);
        assert_eq!(
            v["best"]["checkpoint"],
            "/exp/checkpoints/m0001-e000000-s00000002"
        );
        assert_eq!(v["best"]["h"], json!({"lr": 0.5, "batch": 8}));
        assert_eq!(v["best"]["origin"], 1);
        let sched = v["best"]["schedule"].as_array().unwrap();
        assert_eq!(sched.len(), 1);
        assert_eq!(
            (&sched[0]["start"], &sched[0]["end"]),
            (&json!(0), &json!(2))
        );
        assert_eq!(v["compute"], 4);
        assert_eq!(v["elapsed_seconds"], 1.5);
        let rows = v["history"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0]["score"], Json::Null);
        assert_eq!(rows[0]["metrics"]["loss"], Json::Null);
        assert_eq!(rows[1]["score"], Json::Null);
        assert_eq!(rows[3]["score"], 0.25);
        assert_eq!(rows[3]["metrics"], json!({"loss": 0.5}));
        assert_eq!(rows[3]["epoch"], 0);
        // The whole object is valid JSON text (no NaN).
        let text = v.to_string();
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    }

    #[test]
    fn a_failed_run_gives_its_reason_and_faults() {
        let def = def();
        let (mut store, members) = store(&def);
        let mut c = Commit::default();
        let mut row = members[1].clone();
        row.failures = 2;
        c.members.push(row);
        c.faults.push(FaultRow {
            member: 1,
            step: 0,
            kind: FaultKind::Crash,
            message: "exited with code 1".into(),
            stderr: "Traceback ...".into(),
        });
        c.status = Some(RunStatus::Failed("no member ever trained".into()));
        store.commit(&c).unwrap();
        let (status_now, _) = store.status().unwrap();
        let v = status(&store, &def, Path::new("/exp"), &seen(status_now), false).unwrap();
        assert_eq!(v["state"], "failed");
        assert_eq!(v["status"], "failed: no member ever trained");
        assert_eq!(v["reason"], "no member ever trained");
        assert_eq!(v["faults_count"], 1);
        assert_eq!(
            v["faults"],
            json!([{"member": 1, "step": 0, "kind": "crash",
                    "message": "exited with code 1", "stderr": "Traceback ..."}])
        );
        assert_eq!(v["members"][1]["failures"], 2);
        assert_eq!(v["members"][1]["state"], "failing");
        assert_eq!(v["best"], Json::Null);
    }

    #[test]
    fn states_and_reasons() {
        let stopped = RunStatus::Stopped("time budget of 10 s used".into());
        assert_eq!(state(&seen(stopped.clone())), "stopped");
        assert_eq!(
            reason(&stopped).as_deref(),
            Some("time budget of 10 s used")
        );
        assert_eq!(state(&seen(RunStatus::Finished)), "finished");
        assert_eq!(reason(&RunStatus::Finished), None);
        assert_eq!(state(&seen(RunStatus::Interrupted)), "interrupted");
        let killed = Seen {
            status: RunStatus::Interrupted,
            killed: true,
        };
        assert_eq!(state(&killed), "killed");
    }

    #[test]
    fn each_step_carries_the_hyperparameters_it_was_trained_with() {
        let def = def();
        let (mut store, members) = store(&def);
        let initial = def.experiment().initial_hyperparams().unwrap();
        let mut c = Commit::default();
        for s in 1..=2 {
            c.steps.push(step(0, 0, s, 0.5));
            c.steps.push(step(1, 0, s, 0.1));
        }
        // Member 0 copies member 1 at step 2 and explores to lr 0.3; trains 3 and 4.
        c.events.push(Event {
            seq: 1,
            step: 2,
            recipient: 0,
            donor: Some(1),
            donor_step: 2,
            old_h: initial[0].clone(),
            new_h: h(0.3, 16),
            recipient_score: 0.5,
            donor_score: Some(0.1),
        });
        c.steps.push(step(0, 1, 3, 0.05));
        c.steps.push(step(0, 1, 4, 0.04));
        let mut row = members[0].clone();
        row.h = h(0.3, 16);
        row.step = 4;
        row.score = Some(0.04);
        c.members.push(row);
        store.commit(&c).unwrap();
        let v = status(
            &store,
            &def,
            Path::new("/exp"),
            &seen(RunStatus::Finished),
            true,
        )
        .unwrap();
        assert_eq!(v["exploits"], 1);
        let rows = v["history"].as_array().unwrap();
        let last = rows
            .iter()
            .find(|r| r["member"] == 0 && r["step"] == 4)
            .unwrap();
        assert_eq!(last["h"], json!({"lr": 0.3, "batch": 16}));
        assert_eq!(last["epoch"], 1);
        let first = rows.iter().find(|r| r["member"] == 0).unwrap();
        assert_eq!(first["h"], hyperparams(&initial[0]));
        // The best's schedule: member 1's initial h for steps 1-2, then 0.3/16 for 3-4.
        assert_eq!(v["best"]["member"], 0);
        assert_eq!(v["best"]["origin"], 1);
        assert_eq!(
            v["best"]["schedule"],
            json!([
                {"start": 0, "end": 2, "h": hyperparams(&initial[1])},
                {"start": 2, "end": 4, "h": {"lr": 0.3, "batch": 16}},
            ])
        );
    }
}
