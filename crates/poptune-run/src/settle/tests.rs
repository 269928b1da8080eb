//! The settle path against the memory store.

use std::path::PathBuf;

use poptune::{
    ExperimentDef, Hyperparams, Mode, Param, Policy, Space, StopRules, SyncMode, TrainableDef,
};
use poptune_store::{MemoryStore, RunStatus, Store};

use super::*;
use crate::fault::{Fault, FaultKind};
use crate::local::initial_members;

fn def(population: usize, sync: SyncMode, stop: StopRules) -> ExperimentDef {
    ExperimentDef {
        name: "t".into(),
        metric: "score".into(),
        mode: Mode::Max,
        population,
        seed: 3,
        slots: 2,
        initial: Default::default(),
        directory: PathBuf::from("/nonexistent"),
        policy: Policy {
            interval: 5,
            sync,
            ..Policy::default()
        },
        space: Space::new().with("lr", Param::log_float(0.01, 1.0)),
        stop,
        trainable: TrainableDef {
            max_failures: 1,
            ..TrainableDef::default()
        },
    }
}

/// A memory store holding a new experiment, and its books.
fn start(def: &ExperimentDef) -> (MemoryStore, Books) {
    let mut store = MemoryStore::new();
    let members = initial_members(def).unwrap();
    store.create(&def.name, &def.to_json(), &members).unwrap();
    let books = Books::new(def, store.members().unwrap(), None, 0, 0, 0);
    (store, books)
}

/// A segment of member `m` from its step to `stop`, every step scoring `score`.
fn trained(books: &Books, m: usize, stop: u64, score: f64) -> Finished {
    let start = books.members[m].step;
    Finished {
        member: m,
        stop,
        outcome: Ok(Trained {
            steps: (start + 1..=stop)
                .map(|step| Step {
                    step,
                    score,
                    metrics: vec![],
                })
                .collect(),
            checkpoint: CheckpointRow {
                name: format!("m{m}-s{stop}"),
                member: m,
                step: stop,
                checksum: "sum".into(),
                score: f64::NAN,
            },
        }),
    }
}

fn settle(
    def: &ExperimentDef,
    store: &mut MemoryStore,
    books: &mut Books,
    seg: Finished,
) -> Settled {
    let mut c = Commit::default();
    let out = books.settle(def, seg, 0.0, &mut c);
    store.commit(&c).unwrap();
    out
}

#[test]
fn a_segment_records_its_steps_checkpoint_member_and_tally() {
    let def = def(2, SyncMode::Asynchronous, StopRules::steps(10));
    let (mut store, mut books) = start(&def);
    let seg = trained(&books, 0, 5, 0.5);
    let out = settle(&def, &mut store, &mut books, seg);
    assert!(out.requeue && !out.finished && out.stopped.is_none());
    let steps = store.steps().unwrap();
    assert_eq!(
        steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let ck = store.checkpoints().unwrap();
    assert_eq!((ck[0].step, ck[0].score), (5, 0.5));
    let row = &store.members().unwrap()[0];
    assert_eq!(
        (row.step, row.score, row.checkpoint.as_deref()),
        (5, Some(0.5), Some("m0-s5"))
    );
    let t = store.tally().unwrap().unwrap();
    assert_eq!((t.compute, t.max_step, t.best), (5, 5, Some((0.5, 1))));
}

#[test]
fn a_weak_member_exploits_the_strong_one_and_the_event_is_recorded() {
    let def = def(2, SyncMode::Asynchronous, StopRules::steps(20));
    let (mut store, mut books) = start(&def);
    let strong = trained(&books, 0, 5, 0.9);
    settle(&def, &mut store, &mut books, strong);
    let weak = trained(&books, 1, 5, 0.1);
    settle(&def, &mut store, &mut books, weak);
    let events = store.events().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].recipient, events[0].donor), (1, Some(0)));
    let m1 = &store.members().unwrap()[1];
    assert_eq!(
        m1.checkpoint.as_deref(),
        Some("m0-s5"),
        "the donor's checkpoint"
    );
    assert_eq!(store.tally().unwrap().unwrap().exploits, 1);
    assert_eq!(books.seq, 1);
}

#[test]
fn the_target_stops_the_run() {
    let stop = StopRules {
        target: Some(0.8),
        ..StopRules::steps(20)
    };
    let def = def(2, SyncMode::Asynchronous, stop);
    let (mut store, mut books) = start(&def);
    let low = trained(&books, 0, 5, 0.5);
    assert_eq!(settle(&def, &mut store, &mut books, low).stopped, None);
    let high = trained(&books, 1, 5, 0.85);
    let out = settle(&def, &mut store, &mut books, high);
    let why = out.stopped.expect("the target fired");
    assert!(why.contains("member 1 reached the target"), "{why}");
    assert_eq!(books.stop.as_deref(), Some(why.as_str()));
}

#[test]
fn the_plateau_stops_the_run_and_a_resume_sees_the_same_tally() {
    let stop = StopRules {
        plateau: Some((10, 0.0)),
        ..StopRules::steps(100)
    };
    let def = def(1, SyncMode::Asynchronous, stop);
    let (mut store, mut books) = start(&def);
    let mut stopped = None;
    let mut stop_at = 0;
    while stopped.is_none() {
        stop_at += 5;
        let seg = trained(&books, 0, stop_at, 0.5);
        stopped = settle(&def, &mut store, &mut books, seg).stopped;
        assert!(stop_at <= 15, "no plateau after {stop_at} steps");
    }
    // The best (0.5) came at step 1: 10 steps later, at the segment ending at 15.
    assert_eq!(stop_at, 15);
    let again = Books::new(
        &def,
        store.members().unwrap(),
        store.tally().unwrap(),
        0,
        0,
        0,
    );
    assert_eq!(again.tally, books.tally);
}

#[test]
fn the_time_budget_stops_the_run() {
    let stop = StopRules {
        max_seconds: Some(2.0),
        ..StopRules::steps(100)
    };
    let def = def(2, SyncMode::Asynchronous, stop);
    let (_, mut books) = start(&def);
    let mut c = Commit::default();
    let seg = trained(&books, 0, 5, 0.5);
    assert_eq!(books.settle(&def, seg, 1.0, &mut c).stopped, None);
    let seg = trained(&books, 1, 5, 0.5);
    let out = books.settle(&def, seg, 2.5, &mut c);
    assert_eq!(out.stopped.as_deref(), Some("time budget of 2 s used"));
}

#[test]
fn faults_are_recorded_retried_then_replaced_by_an_exploit() {
    let def = def(2, SyncMode::Asynchronous, StopRules::steps(20));
    let (mut store, mut books) = start(&def);
    let seg = trained(&books, 0, 5, 0.9);
    settle(&def, &mut store, &mut books, seg);
    let fault = || Finished {
        member: 1,
        stop: 5,
        outcome: Err((
            Fault::new(FaultKind::Crash, "died").at(3),
            "Traceback".into(),
        )),
    };
    let first = settle(&def, &mut store, &mut books, fault());
    assert!(first.requeue && first.fatal.is_none());
    assert_eq!(store.members().unwrap()[1].failures, 1);
    // max_failures = 1: the second fault in a row replaces it by the best member.
    let second = settle(&def, &mut store, &mut books, fault());
    assert!(second.requeue && second.fatal.is_none());
    let faults = store.faults().unwrap();
    assert_eq!(faults.len(), 2);
    assert_eq!((faults[0].step, faults[0].kind), (3, FaultKind::Crash));
    assert_eq!(faults[0].stderr, "Traceback");
    let m1 = &store.members().unwrap()[1];
    assert_eq!((m1.failures, m1.checkpoint.as_deref()), (0, Some("m0-s5")));
    let events = store.events().unwrap();
    assert_eq!(events.last().map(|e| e.donor), Some(Some(0)));
    assert_eq!(store.tally().unwrap().unwrap().faults, 2);
}

#[test]
fn a_fault_with_no_member_to_replace_it_is_fatal() {
    let def = def(2, SyncMode::Asynchronous, StopRules::steps(20));
    let (mut store, mut books) = start(&def);
    let fault = || Finished {
        member: 0,
        stop: 5,
        outcome: Err((
            Fault::new(FaultKind::Spawn, "no such program"),
            String::new(),
        )),
    };
    settle(&def, &mut store, &mut books, fault());
    let out = settle(&def, &mut store, &mut books, fault());
    assert!(out.fatal.is_some() && !out.requeue, "{out:?}");
}

#[test]
fn a_synchronous_round_decides_once_everyone_is_at_the_boundary() {
    let def = def(4, SyncMode::Synchronous, StopRules::steps(10));
    let (mut store, mut books) = start(&def);
    for m in 0..3 {
        let seg = trained(&books, m, 5, m as f64);
        let out = settle(&def, &mut store, &mut books, seg);
        assert!(!out.round_done, "member {m} is not the last");
        assert!(store.events().unwrap().is_empty());
    }
    let seg = trained(&books, 3, 5, 3.0);
    let out = settle(&def, &mut store, &mut books, seg);
    assert!(out.round_done);
    let events = store.events().unwrap();
    assert!(events.iter().any(|e| e.donor.is_some()), "{events:?}");
    assert!(
        events.iter().all(|e| e.seq == 5),
        "numbered by the round's step"
    );
    // Every member's row as the round left it is recorded.
    let stored = store.members().unwrap();
    assert_eq!(stored, books.members);
    let (stop, ids) = books.next_round(&def).unwrap();
    assert_eq!((stop, ids.len()), (10, 4));
    for m in 0..4 {
        let seg = trained(&books, m, 10, 1.0);
        settle(&def, &mut store, &mut books, seg);
    }
    assert!(books.members.iter().all(|r| r.done));
    assert_eq!(
        store.status().unwrap().0,
        RunStatus::Running,
        "the runner records the end"
    );
}

#[test]
fn a_trainable_that_fails_at_every_start_stops_the_run_with_its_stderr() {
    let mut def = def(8, SyncMode::Asynchronous, StopRules::steps(20));
    def.trainable.max_failures = 3;
    let (mut store, mut books) = start(&def);
    let fault = |m: usize| {
        Finished {
        member: m,
        stop: 5,
        outcome: Err((
            Fault::new(FaultKind::Exited, "exit status: 1"),
            "old line\nTraceback (most recent call last):\nModuleNotFoundError: No module named 'torch'\n".into(),
        )),
    }
    };
    // Each of four members fails once: no member is over its limit, but none ever trained.
    for m in 0..3 {
        let out = settle(&def, &mut store, &mut books, fault(m));
        assert!(out.fatal.is_none() && out.requeue, "fault {m}: {out:?}");
    }
    let out = settle(&def, &mut store, &mut books, fault(3));
    let why = out
        .fatal
        .expect("the fourth fault with nothing trained is fatal");
    assert!(!out.requeue);
    assert!(why.contains("failed 4 times"), "{why}");
    assert!(why.contains("No module named 'torch'"), "{why}");
    assert_eq!(store.faults().unwrap().len(), 4, "every fault is recorded");
}

#[test]
fn faults_after_a_member_trained_are_left_to_retries_and_replacement() {
    let mut def = def(8, SyncMode::Asynchronous, StopRules::steps(20));
    def.trainable.max_failures = 3;
    let (mut store, mut books) = start(&def);
    let seg = trained(&books, 0, 5, 0.5);
    settle(&def, &mut store, &mut books, seg);
    for m in 1..8 {
        let seg = Finished {
            member: m,
            stop: 5,
            outcome: Err((Fault::new(FaultKind::Crash, "died"), String::new())),
        };
        let out = settle(&def, &mut store, &mut books, seg);
        assert!(out.fatal.is_none() && out.requeue, "member {m}: {out:?}");
    }
}

#[test]
fn last_lines_keeps_the_end_of_a_text() {
    assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
    assert_eq!(last_lines("a\nb", 5), "a\nb");
    assert_eq!(last_lines("", 3), "");
    assert_eq!(last_lines("é\nü\n", 1), "ü");
}

/// A PB2 experiment of two members, asynchronous: the weak one exploits the strong one at
/// step 5. The books are read back from the store, as a worker's ready transaction reads them.
fn pb2_at_the_weak_members_ready_point() -> (ExperimentDef, MemoryStore, Finished) {
    let mut def = def(2, SyncMode::Asynchronous, StopRules::steps(20));
    def.policy.algorithm = poptune::Algorithm::Pb2;
    let (mut store, mut books) = start(&def);
    let strong = trained(&books, 0, 5, 0.9);
    settle(&def, &mut store, &mut books, strong);
    let weak = trained(&books, 1, 5, 0.1);
    (def, store, weak)
}

fn books_from(def: &ExperimentDef, store: &MemoryStore) -> Books {
    let events = store.events().unwrap().len() as u64;
    Books::new(
        def,
        store.members().unwrap(),
        store.tally().unwrap(),
        events,
        0,
        0,
    )
}

#[test]
fn a_guided_decision_made_ahead_is_the_one_made_inside_when_nothing_changed() {
    let (def, store, weak) = pb2_at_the_weak_members_ready_point();
    let ahead = decide_ahead(
        &def,
        store.members().unwrap(),
        store.tally().unwrap(),
        0,
        &weak,
        0.0,
    )
    .expect("the weak member is at a ready point");
    let poptune::Decision::Exploit { donor, h } = &ahead else {
        panic!("the weak member should exploit: {ahead:?}");
    };
    assert_eq!(*donor, 0);
    // Inside: the same decision, from the same state and the same decision RNG.
    let mut books = books_from(&def, &store);
    let mut c = Commit::default();
    books.settle_decided(&def, weak.clone(), 0.0, None, &mut c);
    assert_eq!(c.events.len(), 1, "{:?}", c.events);
    assert_eq!(&c.events[0].new_h, h);
    // Nothing is decided ahead for a PBT experiment, or for a fault.
    let mut pbt = def.clone();
    pbt.policy.algorithm = poptune::Algorithm::Pbt;
    let members = store.members().unwrap();
    assert_eq!(
        decide_ahead(&pbt, members.clone(), None, 0, &weak, 0.0),
        None
    );
    let fault = Finished {
        outcome: Err((Fault::new(FaultKind::Crash, "x"), String::new())),
        ..weak
    };
    assert_eq!(decide_ahead(&def, members, None, 0, &fault, 0.0), None);
}

#[test]
fn a_segment_settled_with_a_decision_made_ahead_applies_that_decision() {
    let (def, mut store, weak) = pb2_at_the_weak_members_ready_point();
    let given = Hyperparams::new().with("lr", 0.123);
    let mut books = books_from(&def, &store);
    let decisions = books.members[1].decisions;
    let mut c = Commit::default();
    let out = books.settle_decided(
        &def,
        weak,
        0.0,
        Some(poptune::Decision::Exploit {
            donor: 0,
            h: given.clone(),
        }),
        &mut c,
    );
    assert!(out.requeue && !out.finished && out.deferred.is_none());
    assert_eq!(c.events.len(), 1, "{:?}", c.events);
    assert_eq!((c.events[0].donor, &c.events[0].new_h), (Some(0), &given));
    // The member's row is written once, with the decision in it.
    let rows: Vec<_> = c.members.iter().filter(|r| r.id == 1).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].h, given);
    assert_eq!(rows[0].decisions, decisions + 1);
    assert_eq!(rows[0].checkpoint.as_deref(), Some("m0-s5"), "the donor's");
    store.commit(&c).unwrap();
    assert_eq!(store.members().unwrap()[1].h, given);
    assert_eq!(store.tally().unwrap().unwrap().exploits, 1);
}

#[test]
fn a_decision_made_ahead_against_a_donor_that_fell_behind_is_not_applied() {
    let (def, store, weak) = pb2_at_the_weak_members_ready_point();
    let mut books = books_from(&def, &store);
    // Member 1 trains past the donor before the decision lands.
    let weak = Finished { stop: 10, ..weak };
    let weak = match weak.outcome {
        Ok(t) => Finished {
            outcome: Ok(Trained {
                steps: (1..=10)
                    .map(|step| Step {
                        step,
                        score: 0.1,
                        metrics: vec![],
                    })
                    .collect(),
                ..t
            }),
            ..weak
        },
        Err(_) => unreachable!(),
    };
    let mut c = Commit::default();
    let stale = poptune::Decision::Exploit {
        donor: 0,
        h: Hyperparams::new().with("lr", 0.5),
    };
    books.settle_decided(&def, weak, 0.0, Some(stale), &mut c);
    assert!(
        c.events.is_empty(),
        "copied a member behind it: {:?}",
        c.events
    );
    assert_eq!(books.members[1].step, 10);
}
