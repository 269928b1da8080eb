//! The contract every [`Store`] backend keeps, as one test run against each (SQLite here,
//! PostgreSQL in `poptune-pg`). Not for use outside tests.

use poptune::{Event, Hyperparams};

use crate::{
    CheckpointRow, Commit, FaultKind, FaultRow, MemberRow, RunStatus, StepRow, Store, Tally,
};

fn member(id: usize) -> MemberRow {
    MemberRow::new(id, Hyperparams::new().with("lr", 0.1).with("batch", 32i64))
}

fn ckpt(name: &str, member: usize, step: u64) -> CheckpointRow {
    CheckpointRow {
        name: name.into(),
        member,
        step,
        checksum: format!("sum-{name}"),
        score: step as f64,
    }
}

/// Runs the contract on experiment `name`; `open` returns the same (initially empty) store each
/// time it is called, freshly opened. Panics on the first broken promise.
pub fn check(name: &str, open: &mut dyn FnMut() -> Box<dyn Store>) {
    let mut s = open();
    create(name, s.as_mut());
    let (c, event, m0) = first_segment(s.as_mut());
    drop(s);
    let mut s = open();
    reads_back(s.as_ref(), &c, &event, &m0);
    later_commits(s.as_mut(), &event);
    redefined(name, s.as_mut());
}

fn create(name: &str, s: &mut dyn Store) {
    assert!(
        s.definition().unwrap().is_none(),
        "a new store holds no experiment"
    );
    assert_eq!(s.status().unwrap().0, RunStatus::New);
    assert_eq!(s.tally().unwrap(), None);
    s.create(name, "{\"a\": 1}", &[member(0), member(1), member(2)])
        .unwrap();
    assert_eq!(
        s.definition().unwrap(),
        Some((name.to_string(), "{\"a\": 1}".into()))
    );
    assert_eq!(s.members().unwrap(), vec![member(0), member(1), member(2)]);
    assert_eq!(s.status().unwrap(), (RunStatus::Running, 0.0));
}

/// A segment: steps (one metric NaN), a checkpoint, the member, an exploit, a fault; then a
/// commit that records the same steps again, refused, and one that records them in a later
/// epoch. Returns the first commit, its event and its member.
fn first_segment(s: &mut dyn Store) -> (Commit, Event, MemberRow) {
    // A segment: steps (one metric NaN), a checkpoint, the member, an exploit, a fault.
    let mut m0 = member(0);
    m0.step = 5;
    m0.score = Some(0.5);
    m0.recent = vec![0.4, 0.5];
    m0.checkpoint = Some("m0-s5".into());
    m0.decisions = 1;
    // A trail (PB2's interval, FIRE-PBT's curve and evaluation) survives the store.
    m0.trail.push_interval(
        poptune::trail::Interval {
            t0: 0,
            r0: 0.25,
            t: 5,
            r: 0.5,
            h: Hyperparams::new().with("lr", 0.1),
        },
        10,
    );
    m0.trail.push_point(5, 0.5);
    m0.trail.evaluation = Some(poptune::trail::Evaluation {
        parent: 1,
        parent_epoch: 2,
        child: 0,
        child_epoch: 0,
        start: 3,
    });
    let event = Event {
        seq: 0,
        step: 5,
        recipient: 1,
        donor: Some(0),
        donor_step: 5,
        old_h: member(1).h,
        new_h: Hyperparams::new().with("lr", 0.12).with("batch", 32i64),
        recipient_score: f64::NAN,
        donor_score: Some(0.5),
    };
    let c = Commit {
        steps: (1..=5)
            .map(|i| StepRow {
                member: 0,
                epoch: 0,
                step: i,
                score: i as f64 / 10.0,
                metrics: vec![
                    ("loss".into(), 1.0 / i as f64),
                    ("grad".into(), if i == 3 { f64::NAN } else { 0.5 }),
                ],
            })
            .collect(),
        checkpoints: vec![ckpt("m0-s5", 0, 5), ckpt("m1-s5", 1, 5)],
        members: vec![m0.clone()],
        events: vec![event.clone()],
        faults: vec![FaultRow {
            member: 2,
            step: 0,
            kind: FaultKind::Crash,
            message: "exit status 1".into(),
            stderr: "Traceback…\nValueError: ünïcode".into(),
        }],
        elapsed: 1.5,
        ..Commit::default()
    };
    s.commit(&c).unwrap();

    // The same steps again are refused as a whole: nothing is counted twice, nothing of the
    // failed commit is kept.
    let mut again = c.clone();
    again.members[0].step = 99;
    again.status = Some(RunStatus::Failed("broken".into()));
    again.tally = Some(Tally::default());
    assert!(
        s.commit(&again).is_err(),
        "a step recorded twice must be refused"
    );

    // The same step numbers in a later epoch (a member that copied a donor behind it trains
    // them again) are new steps.
    let again_later = Commit {
        steps: c.steps[..2]
            .iter()
            .map(|r| StepRow {
                epoch: 1,
                ..r.clone()
            })
            .collect(),
        ..Commit::default()
    };
    s.commit(&again_later).unwrap();
    (c, event, m0)
}

/// What [`first_segment`] committed reads back from a freshly opened store.
fn reads_back(s: &dyn Store, c: &Commit, event: &Event, m0: &MemberRow) {
    assert_eq!(&s.members().unwrap()[0], m0);
    let all = s.steps().unwrap();
    let order: Vec<(u64, u64)> = all.iter().map(|r| (r.epoch, r.step)).collect();
    assert_eq!(
        order,
        [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 1), (1, 2)]
    );
    // What a reader that saw member 0 up to epoch 0, step 3 has not seen yet.
    let after: Vec<(u64, u64)> = s
        .steps_after(&[Some((0, 3))])
        .unwrap()
        .iter()
        .map(|r| (r.epoch, r.step))
        .collect();
    assert_eq!(after, [(0, 4), (0, 5), (1, 1), (1, 2)]);
    // (Compared by key: a NaN metric is not equal to itself.)
    let keys = |rows: &[StepRow]| -> Vec<(usize, u64, u64)> {
        rows.iter().map(|r| (r.member, r.epoch, r.step)).collect()
    };
    assert_eq!(keys(&s.steps_after(&[]).unwrap()), keys(&all));
    assert_eq!(keys(&s.steps_after(&[None, None]).unwrap()), keys(&all));
    assert!(s.steps_after(&[Some((1, 2))]).unwrap().is_empty());
    let steps: Vec<StepRow> = all.into_iter().filter(|r| r.epoch == 0).collect();
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[0], c.steps[0]);
    assert!(
        steps[2].metrics[1].1.is_nan(),
        "a NaN metric reads back as NaN"
    );
    assert_eq!(steps[4].score, 0.5);
    let events = s.events().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].new_h, event.new_h);
    assert_eq!(events[0].donor, Some(0));
    assert!(events[0].recipient_score.is_nan());
    assert_eq!(s.faults().unwrap(), c.faults);
    assert_eq!(s.checkpoints().unwrap(), c.checkpoints);
    assert_eq!(s.status().unwrap(), (RunStatus::Running, 1.5));

    assert_eq!(s.tally().unwrap(), None, "the refused commit left no tally");
}

/// Events keep their order; forgetting checkpoints; status, tally and running time.
fn later_commits(s: &mut dyn Store, event: &Event) {
    // Events keep their order; forgetting checkpoints; status, tally and running time.
    let tally = Tally {
        best: Some((0.5, 5)),
        max_step: 10,
        compute: 15,
        exploits: 1,
        faults: 1,
    };
    let later: Vec<Event> = (1..4)
        .map(|i| Event {
            seq: i,
            step: 10 * i,
            donor: None,
            ..event.clone()
        })
        .collect();
    s.commit(&Commit {
        events: later.clone(),
        checkpoints: vec![ckpt("m0-s10", 0, 10)],
        forget: vec!["m0-s5".into()],
        status: Some(RunStatus::Finished),
        tally: Some(tally.clone()),
        elapsed: 2.0,
        ..Commit::default()
    })
    .unwrap();
    let seqs: Vec<u64> = s.events().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    let names: Vec<String> = s
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["m0-s10", "m1-s5"]);
    s.forget_checkpoints(&["m1-s5".into(), "unknown".into()])
        .unwrap();
    assert_eq!(s.checkpoints().unwrap().len(), 1);
    assert_eq!(s.status().unwrap(), (RunStatus::Finished, 3.5));
    assert_eq!(s.tally().unwrap(), Some(tally));
}

/// A commit with a new definition (a run that changed the stop rules) replaces the stored
/// one, and nothing else.
fn redefined(name: &str, s: &mut dyn Store) {
    let members = s.members().unwrap();
    s.commit(&Commit {
        definition: Some("{\"a\": 2}".into()),
        status: Some(RunStatus::Running),
        ..Commit::default()
    })
    .unwrap();
    assert_eq!(
        s.definition().unwrap(),
        Some((name.to_string(), "{\"a\": 2}".into()))
    );
    assert_eq!(s.members().unwrap(), members);
    assert_eq!(s.status().unwrap().0, RunStatus::Running);
}
