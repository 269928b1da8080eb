//! The event files, read back by a small decoder that checks every checksum.

use std::path::{Path, PathBuf};

use poptune::{Event, ExperimentDef, Hyperparams, Mode, Param, Policy, Space, StopRules};
use poptune_run::{Observer, RunEvent};
use poptune_store::{Commit, MemberRow, MemoryStore, StepRow, Store};

use super::record::masked_crc;
use super::{member_dir, write, Live, DONOR, DONOR_STEP};

/// One decoded event: its step, and its scalars (tag, value); `version` for the first.
#[derive(Debug, Default)]
struct Decoded {
    step: u64,
    version: Option<String>,
    values: Vec<(String, f32)>,
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let x = b[*i];
        *i += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// The fields of a message: (field number, varint or fixed value, bytes).
fn fields(b: &[u8]) -> Vec<(u64, u64, &[u8])> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let k = varint(b, &mut i);
        match k & 7 {
            0 => out.push((k >> 3, varint(b, &mut i), &b[..0])),
            1 => {
                let v = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
                i += 8;
                out.push((k >> 3, v, &b[..0]));
            }
            2 => {
                let n = varint(b, &mut i) as usize;
                out.push((k >> 3, 0, &b[i..i + n]));
                i += n;
            }
            5 => {
                let v = u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
                i += 4;
                out.push((k >> 3, u64::from(v), &b[..0]));
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

fn decode(path: &Path) -> Vec<Decoded> {
    let b = std::fs::read(path).unwrap();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let len = &b[i..i + 8];
        let n = u64::from_le_bytes(len.try_into().unwrap()) as usize;
        assert_eq!(b[i + 8..i + 12], masked_crc(len).to_le_bytes());
        let data = &b[i + 12..i + 12 + n];
        assert_eq!(b[i + 12 + n..i + 16 + n], masked_crc(data).to_le_bytes());
        i += 16 + n;
        let mut d = Decoded::default();
        for (f, v, bytes) in fields(data) {
            match f {
                2 => d.step = v,
                3 => d.version = Some(String::from_utf8(bytes.to_vec()).unwrap()),
                5 => {
                    for (_, _, value) in fields(bytes) {
                        let fs = fields(value);
                        let tag = String::from_utf8(fs[0].2.to_vec()).unwrap();
                        d.values.push((tag, f32::from_bits(fs[1].1 as u32)));
                    }
                }
                _ => {}
            }
        }
        out.push(d);
    }
    out
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn value(d: &Decoded, tag: &str) -> Option<f32> {
    d.values.iter().find(|(t, _)| t == tag).map(|(_, v)| *v)
}

fn def() -> ExperimentDef {
    ExperimentDef {
        name: "tb".into(),
        metric: "val_accuracy".into(),
        mode: Mode::Max,
        population: 2,
        seed: 1,
        slots: 1,
        initial: Default::default(),
        directory: PathBuf::from("/nonexistent"),
        policy: Policy::default(),
        space: Space::new()
            .with("lr", Param::log_float(1e-4, 0.1))
            .with("batch", Param::ordered([16i64, 32]))
            .with("opt", Param::choice(["sgd", "adam"])),
        stop: StopRules::steps(4),
        trainable: Default::default(),
    }
}

fn row(member: usize, epoch: u64, step: u64) -> StepRow {
    StepRow {
        member,
        epoch,
        step,
        score: 0.5 + 0.1 * step as f64,
        metrics: vec![("loss".into(), 1.0 / step as f64)],
    }
}

/// Member 0 copies member 1 at step 2 (member 1's step 2), with lr 0.05; both train to 4.
fn exploit(initial: &[Hyperparams]) -> Event {
    Event {
        seq: 1,
        step: 2,
        recipient: 0,
        donor: Some(1),
        donor_step: 2,
        old_h: initial[0].clone(),
        new_h: initial[1].clone().with("lr", 0.05),
        recipient_score: 0.7,
        donor_score: Some(0.7),
    }
}

#[test]
fn the_history_of_a_store_is_one_file_per_member() {
    let def = def();
    let initial = def.experiment().initial_hyperparams().unwrap();
    let mut store = MemoryStore::new();
    let members: Vec<MemberRow> = (0..2)
        .map(|m| MemberRow::new(m, initial[m].clone()))
        .collect();
    store.create(&def.name, &def.to_json(), &members).unwrap();
    let mut c = Commit::default();
    // Member 0's steps 3-4 come after its exploit (epoch 1).
    c.steps.extend((1..=4).map(|s| row(0, u64::from(s > 2), s)));
    c.steps.extend((1..=4).map(|s| row(1, 0, s)));
    c.events.push(exploit(&initial));
    store.commit(&c).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let out = write(&store, &def, tmp.path(), "tb").unwrap();
    assert_eq!((out.files.len(), out.steps, out.exploits), (2, 8, 1));
    let m0 = decode(&files(&member_dir(tmp.path(), 0))[0]);
    assert_eq!(m0[0].version.as_deref(), Some("brain.Event:2"));
    let steps: Vec<&Decoded> = m0[1..].iter().filter(|d| d.values.len() > 2).collect();
    assert_eq!(
        steps.iter().map(|d| d.step).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(value(steps[0], "val_accuracy"), Some(0.6));
    assert_eq!(value(steps[0], "loss"), Some(1.0));
    let lr0 = initial[0].f64("lr").unwrap() as f32;
    assert_eq!(value(steps[1], "h/lr"), Some(lr0));
    assert_eq!(value(steps[2], "h/lr"), Some(0.05));
    assert!(value(steps[0], "h/batch").is_some());
    assert_eq!(value(steps[0], "h/opt"), None);
    let ex = m0.iter().find(|d| value(d, DONOR).is_some()).unwrap();
    assert_eq!(
        (ex.step, value(ex, DONOR), value(ex, DONOR_STEP)),
        (2, Some(1.0), Some(2.0))
    );
    // Written again into the same folders: refused, TensorBoard would show both.
    assert!(matches!(
        write(&store, &def, tmp.path(), "tb"),
        Err(crate::ViewError::Exists(_))
    ));
}

#[test]
fn the_live_writer_appends_recorded_steps_and_exploits() {
    let def = def();
    let initial = def.experiment().initial_hyperparams().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let live = Live::start(tmp.path(), &def.metric);
    live.event(&RunEvent::Recorded {
        member: 0,
        h: initial[0].clone(),
        steps: vec![row(0, 0, 1), row(0, 0, 2)],
    });
    live.event(&RunEvent::Lineage(exploit(&initial)));
    live.event(&RunEvent::Recorded {
        member: 1,
        h: initial[1].clone(),
        steps: vec![row(1, 0, 1)],
    });
    live.finish();
    let m0 = decode(&files(&member_dir(tmp.path(), 0))[0]);
    assert_eq!(m0.len(), 4);
    assert_eq!(m0[0].version.as_deref(), Some("brain.Event:2"));
    assert_eq!((m0[2].step, value(&m0[2], "val_accuracy")), (2, Some(0.7)));
    assert_eq!((m0[3].step, value(&m0[3], DONOR)), (2, Some(1.0)));
    assert_eq!(decode(&files(&member_dir(tmp.path(), 1))[0]).len(), 2);
}

#[test]
fn a_live_writer_that_cannot_write_lets_the_run_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    // The log directory is a file: every write fails.
    let bad = tmp.path().join("file");
    std::fs::write(&bad, "x").unwrap();
    let live = Live::start(&bad, "score");
    for s in 1..=3 {
        live.event(&RunEvent::Recorded {
            member: 0,
            h: Hyperparams::new(),
            steps: vec![row(0, 0, s)],
        });
    }
    live.finish();
    assert!(bad.is_file());
}
