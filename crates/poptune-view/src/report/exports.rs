//! The report's data files: steps and events as CSV and as JSON lines.
//!
//! `steps.csv` has one row per recorded step: `member,epoch,step,score`, one column per other
//! metric (its name), then one column per hyperparameter (`h.NAME`) with the value the step
//! was trained with; `steps.jsonl` holds the same as `{"member", "epoch", "step", "score",
//! "metrics": {..}, "h": {..}}`. `events.csv` has one row per lineage event, with the
//! hyperparameters before and after as text (`old_h`, `new_h`) and one column each
//! (`old.NAME`, `new.NAME`). Numbers are written so that they read back exactly and stay short
//! ([`crate::format::number`]); a NaN score is `NaN` in CSV and `null` in JSON.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use poptune::{Event, Hyperparams, Value};
use poptune_store::StepRow;

use super::history::{hyperparams_by_row, names};
use crate::format::number;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A hyperparameter's value as a CSV field (empty when the member has none of that name).
fn value_field(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Float(x)) => number(*x),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Str(s)) => csv_field(s),
    }
}

/// A number for JSON: `null` when it is NaN or infinite (JSON has neither).
fn json_number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Writes steps.csv, steps.jsonl, events.csv and events.jsonl into `out`; `initial` is every
/// member's first hyperparameters (to rebuild those of each step).
pub(crate) fn write(
    out: &Path,
    steps: &[StepRow],
    events: &[Event],
    initial: &[Hyperparams],
) -> std::io::Result<()> {
    let hnames = names(initial, events);
    write_steps(out, steps, events, initial, &hnames)?;
    write_events(out, events, &hnames)
}

fn write_steps(
    out: &Path,
    steps: &[StepRow],
    events: &[Event],
    initial: &[Hyperparams],
    hnames: &[String],
) -> std::io::Result<()> {
    let names: Vec<String> = {
        let mut set = std::collections::BTreeSet::new();
        for s in steps {
            for (k, _) in &s.metrics {
                set.insert(k.clone());
            }
        }
        set.into_iter().collect()
    };
    let hs = hyperparams_by_row(initial, events, steps);
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join("steps.csv"))?);
    write!(csv, "member,epoch,step,score")?;
    for n in &names {
        write!(csv, ",{}", csv_field(n))?;
    }
    for n in hnames {
        write!(csv, ",{}", csv_field(&format!("h.{n}")))?;
    }
    writeln!(csv)?;
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(out.join("steps.jsonl"))?);
    for (s, h) in steps.iter().zip(&hs) {
        write!(
            csv,
            "{},{},{},{}",
            s.member,
            s.epoch,
            s.step,
            number(s.score)
        )?;
        let map: BTreeMap<&str, f64> = s.metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        for n in &names {
            write!(
                csv,
                ",{}",
                map.get(n.as_str()).map_or(String::new(), |v| number(*v))
            )?;
        }
        for n in hnames {
            write!(csv, ",{}", value_field(h.get(n)))?;
        }
        writeln!(csv)?;
        let metrics: BTreeMap<&str, serde_json::Value> =
            map.iter().map(|(k, v)| (*k, json_number(*v))).collect();
        writeln!(
            jsonl,
            "{}",
            serde_json::json!({
                "member": s.member,
                "epoch": s.epoch,
                "step": s.step,
                "score": json_number(s.score),
                "metrics": metrics,
                "h": h,
            })
        )?;
    }
    csv.flush()?;
    jsonl.flush()
}

fn write_events(out: &Path, events: &[Event], hnames: &[String]) -> std::io::Result<()> {
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join("events.csv"))?);
    write!(
        csv,
        "seq,step,recipient,donor,donor_step,recipient_score,donor_score,old_h,new_h"
    )?;
    for which in ["old", "new"] {
        for n in hnames {
            write!(csv, ",{}", csv_field(&format!("{which}.{n}")))?;
        }
    }
    writeln!(csv)?;
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(out.join("events.jsonl"))?);
    for e in events {
        write!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            e.seq,
            e.step,
            e.recipient,
            e.donor.map_or(String::new(), |d| d.to_string()),
            e.donor_step,
            number(e.recipient_score),
            e.donor_score.map_or(String::new(), number),
            csv_field(&e.old_h.to_string()),
            csv_field(&e.new_h.to_string())
        )?;
        for h in [&e.old_h, &e.new_h] {
            for n in hnames {
                write!(csv, ",{}", value_field(h.get(n)))?;
            }
        }
        writeln!(csv)?;
        writeln!(
            jsonl,
            "{}",
            serde_json::to_string(e).map_err(std::io::Error::other)?
        )?;
    }
    csv.flush()?;
    jsonl.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(lr: f64, batch: i64) -> Hyperparams {
        Hyperparams::new().with("lr", lr).with("batch", batch)
    }

    fn row(member: usize, epoch: u64, step: u64, score: f64) -> StepRow {
        StepRow {
            member,
            epoch,
            step,
            score,
            metrics: vec![("test_accuracy".into(), 0.25)],
        }
    }

    #[test]
    fn the_exports_carry_each_steps_hyperparameters_and_short_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let initial = [h(0.1, 16), h(0.2, 32)];
        let events = [Event {
            seq: 1,
            step: 2,
            recipient: 0,
            donor: Some(1),
            donor_step: 2,
            old_h: initial[0].clone(),
            new_h: h(1e-7, 64),
            recipient_score: 3.82e276,
            donor_score: Some(1.0),
        }];
        let steps = [
            row(0, 0, 1, 1.0),
            row(0, 0, 2, 3.82e276),
            row(0, 1, 3, f64::NAN),
            row(1, 0, 1, 0.5),
        ];
        write(dir.path(), &steps, &events, &initial).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            [
                "member,epoch,step,score,test_accuracy,h.batch,h.lr",
                "0,0,1,1,0.25,16,0.1",
                "0,0,2,3.82e276,0.25,16,0.1",
                "0,1,3,NaN,0.25,64,1e-7",
                "1,0,1,0.5,0.25,32,0.2",
            ]
        );
        let jsonl = std::fs::read_to_string(dir.path().join("steps.jsonl")).unwrap();
        let rows: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[2]["h"], serde_json::json!({"lr": 1e-7, "batch": 64}));
        assert_eq!(rows[2]["score"], serde_json::Value::Null);
        assert_eq!(rows[1]["score"].as_f64(), Some(3.82e276));
        let events = std::fs::read_to_string(dir.path().join("events.csv")).unwrap();
        let lines: Vec<&str> = events.lines().collect();
        assert_eq!(
            lines[0],
            "seq,step,recipient,donor,donor_step,recipient_score,donor_score,old_h,new_h,\
             old.batch,old.lr,new.batch,new.lr"
        );
        assert!(
            lines[1].starts_with("1,2,0,1,2,3.82e276,1,"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(",16,0.1,64,1e-7"), "{}", lines[1]);
    }
}
