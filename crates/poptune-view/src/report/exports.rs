//! The report's data files: steps and events as CSV and as JSON lines.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use poptune::Event;
use poptune_store::StepRow;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(crate) fn write(out: &Path, steps: &[StepRow], events: &[Event]) -> std::io::Result<()> {
    let names: Vec<String> = {
        let mut set = std::collections::BTreeSet::new();
        for s in steps {
            for (k, _) in &s.metrics {
                set.insert(k.clone());
            }
        }
        set.into_iter().collect()
    };
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join("steps.csv"))?);
    write!(csv, "member,epoch,step,score")?;
    for n in &names {
        write!(csv, ",{}", csv_field(n))?;
    }
    writeln!(csv)?;
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(out.join("steps.jsonl"))?);
    for s in steps {
        write!(csv, "{},{},{},{}", s.member, s.epoch, s.step, s.score)?;
        let map: BTreeMap<&str, f64> = s.metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        for n in &names {
            match map.get(n.as_str()) {
                Some(v) => write!(csv, ",{v}")?,
                None => write!(csv, ",")?,
            }
        }
        writeln!(csv)?;
        writeln!(
            jsonl,
            "{}",
            serde_json::json!({"member": s.member, "epoch": s.epoch, "step": s.step, "score": s.score, "metrics": map})
        )?;
    }
    csv.flush()?;
    jsonl.flush()?;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join("events.csv"))?);
    writeln!(
        csv,
        "seq,step,recipient,donor,donor_step,recipient_score,donor_score,old_h,new_h"
    )?;
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(out.join("events.jsonl"))?);
    for e in events {
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            e.seq,
            e.step,
            e.recipient,
            e.donor.map_or(String::new(), |d| d.to_string()),
            e.donor_step,
            e.recipient_score,
            e.donor_score.map_or(String::new(), |d| d.to_string()),
            csv_field(&e.old_h.to_string()),
            csv_field(&e.new_h.to_string())
        )?;
        writeln!(
            jsonl,
            "{}",
            serde_json::to_string(e).map_err(std::io::Error::other)?
        )?;
    }
    csv.flush()?;
    jsonl.flush()?;
    Ok(())
}
