//! TensorBoard event files of a run: each member is a TensorBoard run (a folder
//! `member-NNNN` of the log directory) with, at each of its steps, its score under the
//! metric's name, each of its metrics under its own name, and each numeric hyperparameter
//! under `h/<name>`; at each exploit, `exploit/donor` (the donor's id) and
//! `exploit/donor_step` (the donor's step) at the step the member was ready.
//!
//! - [`Live`]: an observer that appends them while a run goes (`poptune run`);
//! - [`write`]: the same from a store, after the fact (`poptune report --tensorboard`).
//!
//! Files are written without a protobuf library ([`record`]); docs/tensorboard.md has the
//! details.

mod live;
mod record;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use poptune::{Event, ExperimentDef, Hyperparams};
use poptune_store::{StepRow, Store};

use crate::ViewError;
pub use live::Live;

/// The tag of an exploit's donor.
pub const DONOR: &str = "exploit/donor";
/// The tag of an exploit's donor step.
pub const DONOR_STEP: &str = "exploit/donor_step";
/// The prefix of the hyperparameters' tags.
pub const H_PREFIX: &str = "h/";

/// The folder of member `m` in a log directory: one TensorBoard run.
pub fn member_dir(logdir: &Path, m: usize) -> PathBuf {
    logdir.join(format!("member-{m:04}"))
}

/// A new event file's name: `events.out.tfevents.<unix seconds>.<host>.<writer>.<pid>`.
fn file_name(writer: &str) -> String {
    format!(
        "events.out.tfevents.{}.{}.{writer}.{}",
        now().floor() as u64,
        host(),
        std::process::id()
    )
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name, as a file name may hold it.
fn host() -> String {
    let name = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// The scalars of one recorded step: the score, the metrics (one named like the score is left
/// out) and the numeric hyperparameters (integers and booleans as floats; categories left out).
fn step_scalars(metric: &str, row: &StepRow, h: &Hyperparams) -> Vec<(String, f32)> {
    let mut v = Vec::with_capacity(1 + row.metrics.len() + h.len());
    v.push((metric.to_string(), row.score as f32));
    for (name, x) in &row.metrics {
        if name != metric {
            v.push((name.clone(), *x as f32));
        }
    }
    for (name, x) in h.iter() {
        let x = match x {
            poptune::Value::Bool(b) => Some(f64::from(u8::from(*b))),
            x => x.as_f64(),
        };
        if let Some(x) = x {
            v.push((format!("{H_PREFIX}{name}"), x as f32));
        }
    }
    v
}

/// The scalars of a lineage event: the donor and its step, for an exploit; `None` for an
/// explore without a donor.
fn exploit_scalars(e: &Event) -> Option<Vec<(String, f32)>> {
    let donor = e.donor?;
    Some(vec![
        (DONOR.to_string(), donor as f32),
        (DONOR_STEP.to_string(), e.donor_step as f32),
    ])
}

/// What [`write`] wrote.
#[derive(Debug, Clone)]
pub struct TensorBoardFiles {
    /// The log directory.
    pub logdir: PathBuf,
    /// One event file per member.
    pub files: Vec<PathBuf>,
    /// Steps written, over all members.
    pub steps: usize,
    /// Exploits written.
    pub exploits: usize,
}

impl std::fmt::Display for TensorBoardFiles {
    /// What a command prints: where, what, and the command that shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "TensorBoard files written to {} ({} member{}, {} steps, {} exploits); see them \
             with `tensorboard --logdir {}`",
            self.logdir.display(),
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
            self.steps,
            self.exploits,
            self.logdir.display()
        )
    }
}

/// Writes the TensorBoard files of the experiment `def` kept in `store` into `logdir`: one
/// run folder per member, holding one new event file with the whole recorded history (the
/// hyperparameters of each step rebuilt from the lineage). `place` names the experiment in
/// messages. A member folder that already holds event files is refused: TensorBoard would
/// show both.
pub fn write(
    store: &dyn Store,
    def: &ExperimentDef,
    logdir: &Path,
    place: &str,
) -> Result<TensorBoardFiles, ViewError> {
    let crate::report::History {
        steps,
        events,
        initial,
    } = crate::report::read_history(store, def, place)?;
    let hs = crate::report::hyperparams_by_row(&initial, &events, &steps);
    let members = steps
        .iter()
        .map(|s| s.member + 1)
        .chain(events.iter().map(|e| e.recipient + 1))
        .max()
        .unwrap_or(0);
    let wall = now();
    let mut bytes: Vec<Vec<u8>> = vec![Vec::new(); members];
    for b in &mut bytes {
        record::version_record(b, wall);
    }
    for (row, h) in steps.iter().zip(&hs) {
        let values = step_scalars(&def.metric, row, h);
        record::scalars_record(&mut bytes[row.member], wall, row.step, &values);
    }
    let mut exploits = 0;
    for e in &events {
        if let Some(values) = exploit_scalars(e) {
            record::scalars_record(&mut bytes[e.recipient], wall, e.step, &values);
            exploits += 1;
        }
    }
    for m in 0..members {
        refuse_existing(&member_dir(logdir, m))?;
    }
    let name = file_name("poptune-report");
    let mut files = Vec::with_capacity(members);
    for (m, b) in bytes.iter().enumerate() {
        let dir = member_dir(logdir, m);
        std::fs::create_dir_all(&dir).map_err(ViewError::io(&dir))?;
        let path = dir.join(&name);
        let mut f = std::fs::File::create(&path).map_err(ViewError::io(&path))?;
        f.write_all(b).map_err(ViewError::io(&path))?;
        files.push(path);
    }
    Ok(TensorBoardFiles {
        logdir: logdir.to_path_buf(),
        files,
        steps: steps.len(),
        exploits,
    })
}

/// An error if `dir` holds event files already.
fn refuse_existing(dir: &Path) -> Result<(), ViewError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().contains("tfevents") {
            return Err(ViewError::Exists(entry.path()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
