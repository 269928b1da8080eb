//! Experiment storage for poptune.
//!
//! One experiment lives in one directory: a database (the experiment's definition, its members,
//! every step's metrics, lineage events, the checkpoint index, faults) and a checkpoint folder
//! (see [`checkpoint`]). The [`Store`] trait is what the runners need, [`Leases`] what workers
//! on many machines need besides; [`SqliteStore`] is the embedded backend and [`MemoryStore`]
//! keeps everything in memory.

pub mod checkpoint;
#[doc(hidden)]
pub mod contract;
mod leases;
mod memory;
mod sqlite;
mod status;

use poptune::{Event, Hyperparams, Trail};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use checkpoint::Checkpoints;
pub use leases::Leases;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;
pub use status::{FaultKind, RunStatus, Tally};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// What to do about a database file that SQLite cannot read.
fn damaged_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            " (the file is damaged or is not a poptune database; restore it from a copy, or \
             start the experiment again in a new directory)"
        }
        _ => "",
    }
}

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database failed. (The driver's error is part of the message, not a separate
    /// cause: printed with its causes, it would be said twice.)
    #[error("database {path}: {error}{}", damaged_hint(error))]
    Db {
        /// The database file.
        path: String,
        /// The driver's error.
        error: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// A database server (PostgreSQL) failed or refused.
    #[error("database {location}: {message}")]
    Server {
        /// Where (a URL without its password).
        location: String,
        /// What happened.
        message: String,
    },
    /// Stored data is damaged.
    #[error("{path} is damaged: {reason}")]
    Corrupt {
        /// What is damaged.
        path: String,
        /// How.
        reason: String,
    },
    /// The experiment is not the expected one or the store is of another version.
    #[error("{0}")]
    Mismatch(String),
    /// The store's address (a `--store` URL) cannot be read: the user's to fix.
    #[error("{0}")]
    BadAddress(String),
}

impl StoreError {
    /// Whether the user gave a wrong input (exit code 2) rather than the store failing.
    pub fn is_usage(&self) -> bool {
        matches!(self, StoreError::BadAddress(_))
    }
}

/// A member's durable state: what it trains with and where its latest checkpoint is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    /// Member id.
    pub id: usize,
    /// Current hyperparameters.
    pub h: Hyperparams,
    /// The training steps behind its state (after an exploit: the donor checkpoint's step).
    pub step: u64,
    /// Score of its latest checkpoint (a donor's, after an exploit).
    pub score: Option<f64>,
    /// Recent step scores as ranking keys, for the t-test.
    pub recent: Vec<f64>,
    /// The checkpoint it trains on from (relative name), `None` before its first segment.
    pub checkpoint: Option<String>,
    /// Ready decisions made so far.
    pub decisions: u64,
    /// Faults since its last successful segment.
    pub failures: u32,
    /// Whether it has finished.
    pub done: bool,
    /// What the algorithm keeps of its past (PB2's intervals, FIRE-PBT's curve; empty for
    /// PBT).
    pub trail: Trail,
}

impl MemberRow {
    /// Member `id` before its first segment, with hyperparameters `h`.
    pub fn new(id: usize, h: Hyperparams) -> Self {
        MemberRow {
            id,
            h,
            step: 0,
            score: None,
            recent: vec![],
            checkpoint: None,
            decisions: 0,
            failures: 0,
            done: false,
            trail: Trail::default(),
        }
    }
}

/// Whether step record `r` comes after what `seen` says was seen of its member (see
/// [`Store::steps_after`]).
pub fn is_after(r: &StepRow, seen: &[Option<(u64, u64)>]) -> bool {
    match seen.get(r.member).copied().flatten() {
        Some(last) => (r.epoch, r.step) > last,
        None => true,
    }
}

/// The member with the best score in `mode` (ties go to the lower id), `None` while no member
/// has a score.
pub fn best_member(mode: poptune::Mode, members: &[MemberRow]) -> Option<usize> {
    members
        .iter()
        .filter_map(|m| m.score.map(|s| (m.id, mode.key(s))))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(id, _)| id)
}

/// One recorded step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Member.
    pub member: usize,
    /// Which stretch of the member's training it belongs to: the member's decision count when
    /// its segment began. After an exploit a member counts on from its donor's step, which
    /// may repeat step numbers it had trained before; the epoch tells them apart, and a step
    /// recorded twice in one epoch is refused.
    #[serde(default)]
    pub epoch: u64,
    /// The member's step count after this step (the training steps behind its state).
    pub step: u64,
    /// Score.
    pub score: f64,
    /// Other metrics.
    pub metrics: Vec<(String, f64)>,
}

/// An entry of the checkpoint index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRow {
    /// Name, relative to the checkpoint folder.
    pub name: String,
    /// The member that trained it.
    pub member: usize,
    /// Its step.
    pub step: u64,
    /// Checksum of its files.
    pub checksum: String,
    /// The score it reached.
    pub score: f64,
}

/// A trainable's fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRow {
    /// Member.
    pub member: usize,
    /// Its step when the fault happened.
    pub step: u64,
    /// What went wrong.
    pub kind: FaultKind,
    /// What happened.
    pub message: String,
    /// The end of the process's stderr.
    pub stderr: String,
}

/// Everything one commit writes, in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// New step records.
    pub steps: Vec<StepRow>,
    /// New checkpoints.
    pub checkpoints: Vec<CheckpointRow>,
    /// Checkpoints to drop from the index (their files are deleted after the commit).
    pub forget: Vec<String>,
    /// Members' new states.
    pub members: Vec<MemberRow>,
    /// New lineage events.
    pub events: Vec<Event>,
    /// New faults.
    pub faults: Vec<FaultRow>,
    /// A new experiment status, if it changes.
    pub status: Option<RunStatus>,
    /// The experiment's running totals after this commit, if they change.
    pub tally: Option<Tally>,
    /// A new definition (JSON), when a run changes the stop rules of a stored experiment.
    pub definition: Option<String>,
    /// Wall-clock seconds to add to the experiment's running time.
    pub elapsed: f64,
}

/// Step metrics as JSON; a NaN or infinite value is written as `null` (JSON has no NaN).
pub fn metrics_json(metrics: &[(String, f64)]) -> String {
    let v: Vec<(&str, Option<f64>)> = metrics
        .iter()
        .map(|(k, v)| (k.as_str(), v.is_finite().then_some(*v)))
        .collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".to_string())
}

/// Reads what [`metrics_json`] wrote; `null` comes back as NaN.
pub fn metrics_from_json(text: &str) -> Result<Vec<(String, f64)>, serde_json::Error> {
    let v: Vec<(String, Option<f64>)> = serde_json::from_str(text)?;
    Ok(v.into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// What the runners need from storage.
pub trait Store: Send {
    /// Creates the experiment: its definition (JSON text) and its members.
    fn create(
        &mut self,
        name: &str,
        definition: &str,
        members: &[MemberRow],
    ) -> Result<(), StoreError>;
    /// The experiment's name and definition, if it exists.
    fn definition(&self) -> Result<Option<(String, String)>, StoreError>;
    /// Every member's state.
    fn members(&self) -> Result<Vec<MemberRow>, StoreError>;
    /// Writes a commit atomically.
    fn commit(&mut self, c: &Commit) -> Result<(), StoreError>;
    /// Every step record, by member, epoch and step (each member's in the order trained).
    fn steps(&self) -> Result<Vec<StepRow>, StoreError>;
    /// The step records recorded after those a reader has seen: for each member `m`, its
    /// records after `(epoch, step)` = `seen[m]` (all of them when `seen[m]` is `None` or `m`
    /// is past `seen`), in the order of [`Store::steps`]. A member's records only ever come
    /// after its last one (its epoch and its step within an epoch only grow), so a reader that
    /// follows a run reads what is new and nothing else.
    fn steps_after(&self, seen: &[Option<(u64, u64)>]) -> Result<Vec<StepRow>, StoreError> {
        Ok(self
            .steps()?
            .into_iter()
            .filter(|r| is_after(r, seen))
            .collect())
    }
    /// Every lineage event, in order.
    fn events(&self) -> Result<Vec<Event>, StoreError>;
    /// Every checkpoint in the index.
    fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError>;
    /// Removes checkpoints from the index.
    fn forget_checkpoints(&mut self, names: &[String]) -> Result<(), StoreError>;
    /// Every fault.
    fn faults(&self) -> Result<Vec<FaultRow>, StoreError>;
    /// The experiment's status and its running time in seconds.
    fn status(&self) -> Result<(RunStatus, f64), StoreError>;
    /// The experiment's running totals, if a commit recorded them (stores written by
    /// releases before they existed have none).
    fn tally(&self) -> Result<Option<Tally>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(id: usize, score: Option<f64>) -> MemberRow {
        MemberRow {
            score,
            ..MemberRow::new(id, Hyperparams::new())
        }
    }

    #[test]
    fn the_best_member_follows_the_mode_and_ties_go_to_the_lower_id() {
        let members = vec![
            scored(0, Some(2.0)),
            scored(1, None),
            scored(2, Some(5.0)),
            scored(3, Some(-1.0)),
            scored(4, Some(5.0)),
        ];
        assert_eq!(best_member(poptune::Mode::Max, &members), Some(2));
        assert_eq!(best_member(poptune::Mode::Min, &members), Some(3));
        assert_eq!(best_member(poptune::Mode::Max, &[scored(0, None)]), None);
        assert_eq!(best_member(poptune::Mode::Min, &[]), None);
    }
}
